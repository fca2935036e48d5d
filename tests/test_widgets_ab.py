"""kdteach.widgets.ab driven headlessly: the boundary explorer's state against a loop computed here."""

from __future__ import annotations

import pytest
import torch

from kdteach.widgets.ab import BoundaryExplorer, boundary_explorer_state


@pytest.fixture
def pre():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 4, 5, 5, generator=g)
    return t, {"student alone": torch.randn(3, 4, 5, 5, generator=g), "AB student": 2.0 * t.sign()}


def test_state_matches_loop(pre):
    t, students = pre
    state = boundary_explorer_state(t, students, image=1, channel=2, margin=0.7)
    tv = t[1, 2].double()
    for name, feat in students.items():
        sv, st = feat[1, 2].double(), state["students"][name]
        loss, n_pen, n_dis = 0.0, 0, 0
        for a, b in zip(sv.flatten().tolist(), tv.flatten().tolist()):
            ell = max(0.0, 0.7 - a) ** 2 if b > 0 else max(0.0, a + 0.7) ** 2
            loss += ell
            n_pen += ell > 0
            n_dis += (a > 0) != (b > 0)
        assert st["ab_loss"] == pytest.approx(loss, rel=1e-9)
        assert st["penalised_share"] == pytest.approx(n_pen / 25)
        assert st["disagree_share"] == pytest.approx(n_dis / 25)
        assert st["l2_loss"] == pytest.approx(float(((sv - tv) ** 2).sum()), rel=1e-9)
        # the AB gradient is 2 * hinge * (-1 if t > 0 else +1), zero off the penalised positions
        expected = torch.where(tv > 0, -2 * (0.7 - sv).clamp(min=0), 2 * (sv + 0.7).clamp(min=0))
        assert torch.allclose(st["ab_grad"], expected)
        assert torch.equal(st["ab_grad"] != 0, st["penalised"])
    ab = state["students"]["AB student"]      # beyond the margin on the teacher's side everywhere
    assert ab["ab_loss"] == 0 and ab["penalised_share"] == 0 and ab["l2_loss"] > 0
    assert state["students"]["student alone"]["penalised_agreeing_share"] > 0


def test_margin_changes_penalised(pre):
    t, students = pre
    small = boundary_explorer_state(t, students, 0, 0, margin=0.1)["students"]["student alone"]
    big = boundary_explorer_state(t, students, 0, 0, margin=3.0)["students"]["student alone"]
    assert big["penalised_share"] == 1.0 and small["penalised_share"] < big["penalised_share"]
    assert small["disagree_share"] == big["disagree_share"]


@pytest.mark.parametrize("kwargs, match", [
    ({"image": 3}, "image must be an int in"),
    ({"channel": -1}, "channel must be an int in"),
    ({"margin": 0.0}, "margin must be a finite number > 0"),
    ({"students": {"x": torch.zeros(3, 4, 2, 2)}}, r"students\['x'\] must have the teacher's shape"),
    ({"teacher": torch.zeros(3, 4)}, "teacher must be a \\(N, C, H, W\\) tensor"),
])
def test_bad_input(pre, kwargs, match):
    t, students = pre
    args = {"teacher": t, "students": students, "image": 0, "channel": 0, "margin": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        boundary_explorer_state(**args)


def test_widget_updates(pre):
    t, students = pre
    w = BoundaryExplorer(t, students, labels=["a", "b", "c"], stage="layer2")
    assert w.state["margin"] == 1.0 and w.last_figure is not None
    first = w.state["students"]["student alone"]["ab_loss"]
    w.margin.value = 2.0
    assert w.state["margin"] == 2.0 and w.state["students"]["student alone"]["ab_loss"] > first
    w.channel.value = 3
    assert w.state["channel"] == 3
    assert len(w.output.outputs) == 2 and "AB student" in w.output.outputs[1]["data"]["text/plain"]
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        BoundaryExplorer(t, students, labels=["a"])
