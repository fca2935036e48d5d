"""kdteach.widgets.dot driven headlessly: the 2-D toy of SGD (one momentum) against DOT (two momenta)."""

from __future__ import annotations

import json

import pytest
import torch

from kdteach import widgets as kw
from kdteach.optim import dot_momenta


def test_delta_zero_is_sgd_and_the_paths_start_together():
    st = kw.dot_toy_state(delta=0.0, lr=0.05, steps=40)
    assert st["momenta"] == (0.9, 0.9)
    assert torch.allclose(st["sgd"]["path"], st["dot"]["path"], atol=1e-12)
    assert st["sgd"]["path"].shape == (41, 2) and len(st["dot"]["task"]) == 41
    assert torch.equal(st["sgd"]["path"][0], torch.tensor([2.5, 2.5], dtype=torch.float64))
    assert torch.allclose(st["sgd_fixed_point"], st["dot_fixed_point"])


def test_losses_are_the_toy_quadratics():
    st = kw.dot_toy_state(steps=5)
    a, b, c, d = (st[k] for k in ("task_center", "distill_center", "task_curvature", "distill_curvature"))
    for key in ("sgd", "dot"):
        for w, lt, ld, tot in zip(st[key]["path"], st[key]["task"], st[key]["distill"], st[key]["total"]):
            assert lt == pytest.approx(float(0.5 * (c * (w - a) ** 2).sum()))
            assert ld == pytest.approx(float(0.5 * (d * (w - b) ** 2).sum()))
            assert tot == pytest.approx(lt + ld)


def test_first_dot_step_by_hand():
    st = kw.dot_toy_state(delta=0.075, lr=0.1, steps=2)
    a, b, c, d, w0 = (st[k] for k in ("task_center", "distill_center", "task_curvature", "distill_curvature", "start"))
    g_t, g_d = c * (w0 - a), d * (w0 - b)
    w1 = w0 - 0.1 * (g_t + g_d)                         # both buffers start as their gradients
    assert torch.allclose(st["dot"]["path"][1], w1)
    g_t1, g_d1 = c * (w1 - a), d * (w1 - b)
    w2 = w1 - 0.1 * (0.825 * g_t + g_t1) - 0.1 * (0.975 * g_d + g_d1)
    assert torch.allclose(st["dot"]["path"][2], w2)


def test_long_runs_rest_at_the_reweighted_minimum():
    st = kw.dot_toy_state(delta=0.075, lr=0.05, steps=600)
    m_t, m_d = dot_momenta(0.9, 0.075)
    c, d, a, b = st["task_curvature"], st["distill_curvature"], st["task_center"], st["distill_center"]
    want = (c * a / (1 - m_t) + d * b / (1 - m_d)) / (c / (1 - m_t) + d / (1 - m_d))
    assert torch.allclose(st["dot_fixed_point"], want)
    assert torch.allclose(st["dot"]["path"][-1], want, atol=1e-6)
    assert torch.allclose(st["sgd"]["path"][-1], st["sgd_fixed_point"], atol=1e-6)
    # at rest DOT trades task loss for distillation loss against SGD
    assert st["dot"]["distill"][-1] < st["sgd"]["distill"][-1] and st["dot"]["task"][-1] > st["sgd"]["task"][-1]


def test_default_toy_early_steps_lower_both_losses():
    st = kw.dot_toy_state()                              # 30 steps: neither has converged
    assert st["dot"]["task"][-1] < st["sgd"]["task"][-1] and st["dot"]["distill"][-1] < st["sgd"]["distill"][-1]


def test_noise_is_seeded_and_shared():
    a = kw.dot_toy_state(steps=20, noise=0.5, seed=3)
    b = kw.dot_toy_state(steps=20, noise=0.5, seed=3)
    c = kw.dot_toy_state(steps=20, noise=0.5, seed=4)
    assert torch.equal(a["dot"]["path"], b["dot"]["path"]) and not torch.equal(a["dot"]["path"], c["dot"]["path"])
    z = kw.dot_toy_state(delta=0.0, steps=20, noise=0.5, seed=3)   # same draws: DOT at delta 0 is still SGD
    assert torch.allclose(z["sgd"]["path"], z["dot"]["path"], atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"delta": 0.2}, r"momentum \+ delta must both lie in \[0, 1\)"),
    ({"lr": 0.0}, r"lr must be > 0, got 0.0"),
    ({"steps": 0}, r"steps must be an int from 1 to 2000, got 0"),
    ({"steps": 2.5}, r"steps must be an int"),
    ({"noise": -1.0}, r"noise must be >= 0"),
    ({"task_curvature": (1.0, 0.0)}, r"task_curvature must be two finite numbers > 0"),
    ({"start": (1.0, 2.0, 3.0)}, r"start must be two finite numbers"),
    ({"distill_center": "ab"}, r"distill_center must be two finite numbers"),
])
def test_state_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kw.dot_toy_state(**kwargs)


def test_figure_has_two_panels():
    fig = kw.dot_toy_figure(kw.dot_toy_state(steps=10))
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    assert len(fig.axes[0].get_legend().get_texts()) == 7


def test_explorer_sliders_update_state_and_never_print(capsys):
    ex = kw.DOTTrajectoryExplorer()
    assert (ex.delta.value, ex.lr.value, ex.steps.value, ex.noise.value) == (0.075, 0.05, 30, 0.0)
    assert ex.state["momenta"] == pytest.approx((0.825, 0.975))
    ex.delta.value = 0.0
    assert torch.allclose(ex.state["sgd"]["path"], ex.state["dot"]["path"], atol=1e-12)
    ex.steps.value = 12
    assert ex.state["dot"]["path"].shape == (13, 2)
    outs = ex.output.outputs
    assert [sorted(o["data"]) for o in outs] == [["image/png", "text/plain"], ["text/html", "text/plain"]]
    assert "final distillation loss" in outs[1]["data"]["text/html"] and "12 steps" in outs[1]["data"]["text/plain"]
    json.dumps(outs)                                     # display data only, serialisable
    assert len(ex.last_figure.axes) == 2
    assert capsys.readouterr().out == ""


def test_explorer_bad_input():
    with pytest.raises(ValueError, match="delta"):
        kw.DOTTrajectoryExplorer(delta=0.5)
    with pytest.raises(ValueError, match="steps must be an int from 1 to 300"):
        kw.DOTTrajectoryExplorer(steps=1000)
    with pytest.raises(ValueError, match="lr must be > 0"):
        kw.DOTTrajectoryExplorer(lr=-0.1)
