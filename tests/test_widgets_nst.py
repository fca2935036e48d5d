"""kdteach.widgets.nst driven headlessly: the selectivity explorer's state against MMD computed here."""

from __future__ import annotations

import pytest
import torch

from kdteach.widgets.nst import SelectivityExplorer, selectivity_explorer_state


@pytest.fixture
def features():
    g = torch.Generator().manual_seed(0)
    return {
        "teacher": {"layer1": torch.randn(3, 6, 4, 4, generator=g).relu(),
                    "layer2": torch.randn(3, 8, 2, 2, generator=g).relu()},
        "student alone": {"layer1": torch.randn(3, 4, 4, 4, generator=g).relu(),
                          "layer2": torch.randn(3, 5, 2, 2, generator=g).relu()},
        "NST student": {"layer1": torch.randn(3, 4, 8, 8, generator=g).relu(),   # larger map: pooled to 4x4
                        "layer2": torch.randn(3, 5, 2, 2, generator=g).relu()},
    }


def _mmd(s, t, kernel):
    """Reference squared MMD of two (C, h, w) maps, by a loop over channel pairs (no library)."""
    s = [v / v.norm() for v in s.flatten(1)]
    t = [v / v.norm() for v in t.flatten(1)]
    both = s + t
    sigma2 = sum(float(((a - b) ** 2).sum()) for a in both for b in both) / len(both) ** 2

    def k(a, b):
        if kernel == "linear":
            return float(a @ b)
        if kernel == "poly":
            return float(a @ b) ** 2
        return float(torch.exp(-((a - b) ** 2).sum() / (2 * sigma2)))

    def mean(xs, ys):
        return sum(k(a, b) for a in xs for b in ys) / (len(xs) * len(ys))

    return mean(t, t) + mean(s, s) - 2 * mean(s, t)


def test_state_matches_reference(features):
    state = selectivity_explorer_state(features, image=2, stage="layer1", kernel="gaussian")
    assert state["models"] == ["teacher", "student alone", "NST student"]
    assert state["stages"] == ["layer1", "layer2"]
    assert torch.equal(state["maps"]["teacher"], features["teacher"]["layer1"][2])
    t = features["teacher"]["layer1"][2]
    for m in ("student alone", "NST student"):
        s = features[m]["layer1"][2:3]
        s = torch.nn.functional.avg_pool2d(s, 2)[0] if s.shape[-1] == 8 else s[0]
        for kernel in ("linear", "poly", "gaussian"):
            assert state["mmd"][m][kernel] == pytest.approx(_mmd(s, t, kernel), rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    ({"image": 3}, "image must be an int in"),
    ({"stage": "layer9"}, "stage must be one of"),
    ({"kernel": "cubic"}, "kernel must be one of"),
    ({"teacher": "nobody"}, "features must hold the teacher"),
])
def test_bad_input(features, kwargs, match):
    args = {"image": 0, "stage": "layer1", "kernel": "poly"} | kwargs
    with pytest.raises(ValueError, match=match):
        selectivity_explorer_state(features, **args)


def test_widget_updates(features):
    w = SelectivityExplorer(features, labels=["a", "b", "c"])
    assert w.state["stage"] == "layer2" and w.last_figure is not None
    first = w.state["mmd"]["NST student"]["poly"]
    w.image.value = 1
    assert w.state["image"] == 1 and w.state["mmd"]["NST student"]["poly"] != first
    w.kernel.value = "linear"
    assert w.state["kernel"] == "linear"
    assert len(w.output.outputs) == 2
    assert "NST student" in w.output.outputs[1]["data"]["text/plain"]
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        SelectivityExplorer(features, labels=["a"])
