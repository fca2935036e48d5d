"""kdteach.widgets.dkd driven headlessly: the DKD explorer's state against numbers computed here,
and kdteach.viz.plot_decoupled_distributions (the figure it shows)."""

from __future__ import annotations

import base64

import pytest
import torch

from kdteach import widgets as kw
from kdteach.viz import plot_decoupled_distributions


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    z_t = 3.0 * torch.randn(5, 4, generator=g)
    z_s = 0.5 * z_t + torch.randn(5, 4, generator=g)
    return z_s, z_t


LABELS = torch.tensor([0, 1, 2, 3, 1])


def _soft(z, t):
    e = torch.exp(z / t - (z / t).max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _parts(zs, zt, y, t):
    """Reference TCKD, NCKD, KD per image (times T²), written out from b and p-hat, in float64."""
    ps, pt = _soft(zs.double(), t), _soft(zt.double(), t)
    out = []
    for i in range(len(y)):
        k = int(y[i])
        bs = torch.stack([ps[i, k], 1 - ps[i, k]])
        bt = torch.stack([pt[i, k], 1 - pt[i, k]])
        keep = [j for j in range(zs.shape[1]) if j != k]
        hs, ht = ps[i, keep] / (1 - ps[i, k]), pt[i, keep] / (1 - pt[i, k])
        kl = lambda a, b: (a * (a.log() - b.log())).sum().item()   # noqa: E731
        out.append((t * t * kl(bt, bs), t * t * kl(ht, hs), t * t * kl(pt[i], ps[i]), 1 - pt[i, k].item()))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("alpha, beta, t", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.0, 10.0)])
def test_state_matches_reference(logits, alpha, beta, t):
    zs, zt = logits
    state = kw.dkd_explorer_state(zs, zt, LABELS, alpha, beta, t)
    ref = _parts(zs, zt, LABELS, t)
    assert (state["alpha"], state["beta"], state["temperature"]) == (alpha, beta, t)
    assert state["tckd"] == pytest.approx(ref[:, 0].mean().item(), rel=1e-3)
    assert state["nckd"] == pytest.approx(ref[:, 1].mean().item(), rel=1e-3)
    assert state["kd"] == pytest.approx(ref[:, 2].mean().item(), rel=1e-4)
    assert state["weighted_tckd"] == pytest.approx(alpha * state["tckd"])
    assert state["weighted_nckd"] == pytest.approx(beta * state["nckd"])
    assert state["dkd"] == pytest.approx(alpha * state["tckd"] + beta * state["nckd"], rel=1e-5)
    assert torch.allclose(state["kd_nckd_weight"].double(), ref[:, 3], atol=1e-6)
    assert torch.allclose(state["tckd_per_image"].double(), ref[:, 0], rtol=1e-3, atol=1e-5)
    assert torch.allclose(state["nckd_per_image"].double(), ref[:, 1], rtol=1e-3, atol=1e-5)
    assert torch.allclose(state["teacher_probs"], _soft(zt, t), atol=1e-6)
    assert torch.allclose(state["student_binary"][:, 0], _soft(zs, t)[torch.arange(5), LABELS], atol=1e-6)
    assert torch.all(state["teacher_nontarget"][torch.arange(5), LABELS] == 0)
    assert torch.allclose(state["teacher_nontarget"].sum(1), torch.ones(5), atol=1e-6)


def test_kd_is_tckd_plus_the_teachers_weight_on_nckd(logits):
    zs, zt = logits
    state = kw.dkd_explorer_state(zs, zt, LABELS, 1.0, 8.0, 4.0)
    coupled = (state["tckd_per_image"] + state["kd_nckd_weight"] * state["nckd_per_image"]).mean().item()
    assert coupled == pytest.approx(state["kd"], rel=1e-5)
    # DKD with beta = 8 weighs NCKD more than KD does (KD's weight 1 - p_t is below 1)
    assert state["weighted_nckd"] > state["mean_kd_nckd_weight"] * state["nckd"]


@pytest.mark.parametrize("args, error, match", [
    (dict(alpha=-1.0), ValueError, "alpha must be a finite number >= 0"),
    (dict(beta=float("inf")), ValueError, "beta must be a finite number >= 0"),
    (dict(temperature=0.0), ValueError, "temperature must be a finite number > 0"),
    (dict(labels=torch.tensor([0, 1])), ValueError, r"target must have shape \(5,\)"),
    (dict(labels=torch.tensor([0, 1, 2, 3, 4])), ValueError, r"class indices in \[0, 4\)"),
    (dict(labels=torch.zeros(5)), TypeError, "integer tensor"),
    (dict(student=torch.randn(5, 3)), ValueError, "must have the same shape"),
    (dict(student=torch.randn(5)), ValueError, r"student_logits must have shape \(B, C\)"),
])
def test_state_bad_input(logits, args, error, match):
    zs, zt = logits
    kwargs = dict(student=zs, teacher=zt, labels=LABELS, alpha=1.0, beta=8.0, temperature=4.0) | args
    with pytest.raises(error, match=match):
        kw.dkd_explorer_state(kwargs["student"], kwargs["teacher"], kwargs["labels"], kwargs["alpha"],
                              kwargs["beta"], kwargs["temperature"])


def test_widget_updates_headlessly(logits):
    zs, zt = logits
    w = kw.DKDExplorer(zs, zt, LABELS, ["a", "b", "c", "d"])
    assert (w.alpha.value, w.beta.value, w.temperature.value) == (1.0, 8.0, 4.0)   # the dkd method's defaults
    assert len(w.output.outputs) == 3
    for out in w.output.outputs[:2]:
        assert base64.b64decode(out["data"]["image/png"])[:4] == b"\x89PNG"
    assert "KD weights NCKD by 1 - p_t" in w.output.outputs[2]["data"]["text/html"]
    before = w.state["dkd"]
    w.beta.value = 1.0                                    # a slider change recomputes the state
    assert w.state["beta"] == 1.0 and w.state["dkd"] < before
    assert w.state["dkd"] == pytest.approx(w.state["tckd"] + w.state["nckd"], rel=1e-5)
    w.temperature.value = 8.0
    ref = _parts(zs, zt, LABELS, 8.0)
    assert w.state["kd"] == pytest.approx(ref[:, 2].mean().item(), rel=1e-4)
    w.sample.value = 4
    assert w.last_figure is not None
    with pytest.raises(ValueError, match="class_names has 2 names, expected C = 4"):
        kw.DKDExplorer(zs, zt, LABELS, ["a", "b"])
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        kw.DKDExplorer(zs, zt, LABELS, list("abcd"), beta=-2.0)


def test_plot_decoupled_distributions(logits):
    zs, zt = logits
    fig = plot_decoupled_distributions(zt[:3], LABELS[:3], 4.0, list("abcd"), student_logits=zs[:3], title="x")
    axes = fig.get_axes()
    assert len(axes) == 9
    # the binary panel of row 0 holds b = [p_t, 1 - p_t] of teacher and student
    heights = sorted(round(p.get_height(), 5) for p in axes[1].patches)
    p_t, p_s = _soft(zt, 4.0)[0, 0].item(), _soft(zs, 4.0)[0, 0].item()
    assert heights == sorted(round(v, 5) for v in (p_t, 1 - p_t, p_s, 1 - p_s))
    # the non-target panel leaves the target class empty
    assert all(p.get_height() == 0 for p in axes[2].patches[:1])
    one = plot_decoupled_distributions(zt[0], 2, 4.0)
    assert len(one.get_axes()) == 3
    with pytest.raises(ValueError, match="target must hold 3 integer labels"):
        plot_decoupled_distributions(zt[:3], LABELS[:2])
    with pytest.raises(ValueError, match="class_names must have 4 names"):
        plot_decoupled_distributions(zt, LABELS, class_names=["a"])
    with pytest.raises(ValueError, match="C >= 2"):
        plot_decoupled_distributions(torch.randn(3, 1), torch.zeros(3, dtype=torch.long))
