"""kdteach.widgets.tfkd driven headlessly: the virtual-teacher explorer's pure state and its thin widget."""

from __future__ import annotations

import math

import pytest
import torch

from kdteach import widgets as kw
from kdteach.widgets.tfkd import TARGET_NAMES


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return {"teacher": 3 * torch.randn(4, 5, generator=g), "weak": torch.randn(4, 5, generator=g)}, \
        torch.tensor([0, 3, 4, 1])


def test_state_targets_by_hand(logits):
    teachers, y = logits
    st = kw.tfkd_explorer_state(teachers, y, 1, correct_prob=0.8, temperature=2.0, ls_epsilon=0.2)
    assert st["label"] == 3 and st["num_classes"] == 5
    assert list(st["targets"]) == [*TARGET_NAMES, "teacher, T = 2", "weak, T = 2"]
    pd = torch.tensor([0.05, 0.05, 0.05, 0.8, 0.05])                    # (1 - 0.8) / 4 off the label
    assert torch.allclose(st["targets"][TARGET_NAMES[0]], pd)
    e = torch.exp(pd / 2.0)
    assert torch.allclose(st["targets"][TARGET_NAMES[1]], e / e.sum())
    r = pd.sqrt()
    assert torch.allclose(st["targets"][TARGET_NAMES[2]], r / r.sum(), atol=1e-6)
    assert torch.allclose(st["targets"][TARGET_NAMES[3]], torch.tensor([0.04, 0.04, 0.04, 0.84, 0.04]))
    assert torch.allclose(st["targets"]["teacher, T = 2"], torch.softmax(teachers["teacher"][1] / 2.0, 0))
    for name, p in st["targets"].items():
        assert p.sum().item() == pytest.approx(1.0, abs=1e-5), name
        assert st["p_label"][name] == pytest.approx(float(p[3]))
        assert st["entropy"][name] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    assert st["code_bound"] == pytest.approx(math.exp(0.5) / (math.exp(0.5) + 4))
    q = st["p_label"][TARGET_NAMES[1]]
    assert st["code_epsilon"] == pytest.approx((1 - q) * 5 / 4, rel=1e-5)   # LS with the same label probability


def test_code_target_stays_flat_while_the_logits_reading_sharpens(logits):
    teachers, y = logits
    for t in (1.0, 5.0, 20.0):
        st = kw.tfkd_explorer_state(teachers["teacher"], y, 0, 1.0, t)
        assert st["p_label"][TARGET_NAMES[1]] == pytest.approx(st["code_bound"], rel=1e-6)
        assert st["p_label"][TARGET_NAMES[2]] == pytest.approx(1.0)         # a = 1: one-hot in that reading
        assert st["p_label"][TARGET_NAMES[1]] < 0.41                         # e / (e + 4) at T = 1
    hot, cold = (kw.tfkd_explorer_state(teachers["teacher"], y, 0, 0.99, t) for t in (1.0, 20.0))
    assert cold["entropy"][TARGET_NAMES[1]] > hot["entropy"][TARGET_NAMES[1]]
    assert cold["entropy"]["teacher, T = 20"] > hot["entropy"]["teacher, T = 1"]


@pytest.mark.parametrize("change, match", [
    (lambda z, y: (z, y, 9, 0.9, 20.0, 0.1), r"index must be an int in \[0, 4\)"),
    (lambda z, y: (z, y, 0, 0.0, 20.0, 0.1), r"correct_prob must be a number in \(0, 1\]"),
    (lambda z, y: (z, y, 0, 0.9, 0.0, 0.1), r"temperature must be a number in \(0, inf\]"),
    (lambda z, y: (z, y, 0, 0.9, 20.0, 1.5), r"ls_epsilon must be a number in \[0, 1\]"),
    (lambda z, y: (z, y[:2], 0, 0.9, 20.0, 0.1), r"labels must be a \(4,\) integer tensor"),
    (lambda z, y: (z, y + 2, 0, 0.9, 20.0, 0.1), r"labels must lie in \[0, 5\)"),
    (lambda z, y: ({"a": z["teacher"], "b": z["weak"][:, :3]}, y, 0, 0.9, 20.0, 0.1), "the same shape"),
    (lambda z, y: ({}, y, 0, 0.9, 20.0, 0.1), "non-empty dict"),
    (lambda z, y: (z["teacher"][0], y, 0, 0.9, 20.0, 0.1), r"must be a floating-point \(B, K\) tensor"),
])
def test_state_bad_input(logits, change, match):
    with pytest.raises(ValueError, match=match):
        kw.tfkd_explorer_state(*change(*logits))


def test_widget_updates_headlessly(logits):
    teachers, y = logits
    w = kw.VirtualTeacherExplorer(teachers, y, ["a", "b", "c", "d", "e"])
    assert w.correct_prob.value == pytest.approx(0.99) and w.temperature.value == pytest.approx(20.0)
    first = w.state
    assert first["label"] == 0 and len(w.output.outputs) == 2
    assert w.output.outputs[0]["data"]["image/png"] and "epsilon" in w.output.outputs[1]["data"]["text/plain"]
    w.temperature.value = 1.0
    assert w.state["temperature"] == 1.0
    assert w.state["p_label"][TARGET_NAMES[1]] > first["p_label"][TARGET_NAMES[1]]
    w.sample.value = 2
    assert w.state["label"] == 4 and w.last_figure is not None
    with pytest.raises(ValueError, match="class_names has 2 names"):
        kw.VirtualTeacherExplorer(teachers, y, ["a", "b"])
