"""kdteach.widgets.ofd driven headlessly: the margin explorer's state against loops computed here."""

from __future__ import annotations

import pytest
import torch

from kdteach.losses import ofd_margin
from kdteach.widgets import MarginExplorer, margin_explorer_state


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    features = {
        "teacher": {"layer1": torch.randn(3, 4, 4, 4, generator=g), "layer2": torch.randn(3, 6, 2, 2, generator=g)},
        "student alone": {"layer1": torch.randn(3, 4, 4, 4, generator=g), "layer2": torch.randn(3, 6, 2, 2, generator=g)},
        "OFD student": {"layer1": torch.randn(3, 4, 4, 4, generator=g), "layer2": torch.randn(3, 6, 2, 2, generator=g)},
    }
    bn = {k: (torch.rand(c, generator=g) + 0.3, torch.randn(c, generator=g)) for k, c in (("layer1", 4), ("layer2", 6))}
    margins = {k: ofd_margin(*v) for k, v in bn.items()}
    return features, margins, bn


def test_state_matches_a_loop(inputs):
    features, margins, bn = inputs
    state = margin_explorer_state(features, margins, "layer2", 3, bn)
    assert state["models"] == ["teacher", "student alone", "OFD student"] and state["channels"] == 6
    m = float(margins["layer2"][3])
    assert state["margin"] == pytest.approx(m) and state["bn"] == pytest.approx((float(bn["layer2"][0][3]),
                                                                                 float(bn["layer2"][1][3])))
    t = features["teacher"]["layer2"][:, 3].flatten().tolist()
    assert state["negative_share"] == pytest.approx(sum(v < 0 for v in t) / len(t))
    assert state["below_margin_share"] == pytest.approx(sum(v < m for v in t) / len(t))
    for name in ("student alone", "OFD student"):
        s = features[name]["layer2"][:, 3].flatten().tolist()
        partial = ignored = 0.0
        for a, b in zip(s, t):
            target = max(b, m)
            if a <= target <= 0:
                ignored += 1
            else:
                partial += (a - target) ** 2
        row = state["rows"][name]
        assert row["ignored"] == pytest.approx(ignored / len(t))
        assert row["partial_l2"] == pytest.approx(partial / 3, rel=1e-6)
        assert row["plain_l2"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(s, t)) / 3, rel=1e-6)
        assert row["partial_l2"] <= row["plain_l2"] + 1e-9       # counted terms: |s - max(t, m)| <= |s - t|


def test_the_teacher_itself_costs_nothing(inputs):
    features, margins, _ = inputs
    same = {"teacher": features["teacher"], "copy": features["teacher"]}
    state = margin_explorer_state(same, margins, "layer1", 0)
    assert state["rows"]["copy"]["partial_l2"] == 0.0 and state["bn"] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"stage": "layer9"}, "stage must be one of"),
    ({"channel": 6}, r"channel must be an int in \[0, 6\)"),
    ({"channel": True}, "channel must be an int"),
    ({"margins": {"layer2": torch.zeros(5)}}, r"margins\['layer2'\] must have shape \(6,\), got \(5,\)"),
    ({"teacher": "nobody"}, "features must hold the teacher"),
])
def test_bad_input(inputs, kwargs, match):
    features, margins, bn = inputs
    args = {"features": features, "margins": margins, "stage": "layer2", "channel": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        margin_explorer_state(**args)


def test_a_student_not_in_the_teachers_shape_is_refused(inputs):
    features, margins, _ = inputs
    bad = dict(features, other={"layer1": torch.zeros(3, 2, 4, 4), "layer2": torch.zeros(3, 6, 2, 2)})
    with pytest.raises(ValueError, match=r"features\['other'\]\['layer1'\] must have the teacher's shape"):
        margin_explorer_state(bad, margins, "layer1", 0)


def test_widget_updates(inputs):
    features, margins, bn = inputs
    w = MarginExplorer(features, margins, bn)
    assert w.state["stage"] == "layer2" and w.last_figure is not None and w.channel.max == 5
    w.channel.value = 5
    assert w.state["channel"] == 5
    w.stage.value = "layer1"
    assert w.state["stage"] == "layer1" and w.channel.max == 3 and w.state["channel"] == 3
    assert len(w.output.outputs) == 2
    assert "OFD student" in w.output.outputs[1]["data"]["text/plain"]
