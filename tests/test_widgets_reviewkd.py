"""kdteach.widgets.reviewkd: hcl_explorer_state against hcl_loss and a by-hand pyramid; the widget headless."""

from __future__ import annotations

import pytest
import torch

from kdteach.losses import hcl_loss
from kdteach.widgets import HCLExplorer, hcl_explorer_state


def maps(seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return {"layer1": (torch.randn(n, 4, 8, 8, generator=g), torch.randn(n, 4, 8, 8, generator=g)),
            "layer3": (torch.randn(n, 6, 2, 2, generator=g), torch.randn(n, 6, 2, 2, generator=g))}


def test_levels_weights_and_contributions_sum_to_the_images_hcl():
    pairs = maps(0)
    state = hcl_explorer_state(pairs, 1, "layer1")
    assert [lv["grid"] for lv in state["levels"]] == [8, 4, 2, 1]
    assert [lv["weight"] for lv in state["levels"]] == pytest.approx([1 / 1.875, 0.5 / 1.875, 0.25 / 1.875,
                                                                      0.125 / 1.875])
    s, t = pairs["layer1"][0][1:2], pairs["layer1"][1][1:2]
    assert state["levels"][0]["mse"] == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-6)
    s2 = s.reshape(1, 4, 2, 4, 2, 4).mean(dim=(3, 5))        # 2x2 blocks of 4x4 positions by hand
    t2 = t.reshape(1, 4, 2, 4, 2, 4).mean(dim=(3, 5))
    assert state["levels"][2]["mse"] == pytest.approx(((s2 - t2) ** 2).mean().item(), rel=1e-6)
    assert state["levels"][2]["teacher"].shape == (2, 2)
    assert sum(lv["contribution"] for lv in state["levels"]) == pytest.approx(state["loss"], rel=1e-9)
    assert state["loss"] == pytest.approx(hcl_loss([s], [t]).item(), rel=1e-5)
    assert [lv["grid"] for lv in hcl_explorer_state(pairs, 0, "layer3")["levels"]] == [2, 1]


@pytest.mark.parametrize("args, match", [
    ((maps(1), 3, "layer1"), r"image must be an int in \[0, 3\), got 3"),
    ((maps(1), 0, "layer2"), r"stage must be one of \['layer1', 'layer3'\], got 'layer2'"),
    (({"layer1": (torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 2, 2))}, 0, "layer1"), "same shape"),
    (({}, 0, "layer1"), "pairs must be a non-empty dict"),
])
def test_bad_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        hcl_explorer_state(*args)


def test_widget_updates_headlessly_without_printing(capsys):
    w = HCLExplorer(maps(2), labels=["cat", "dog", "ship"])
    assert w.state["stage"] == "layer1" and w.last_figure is not None
    w.stage.value = "layer3"
    assert w.state["stage"] == "layer3" and len(w.state["levels"]) == 2
    w.image.value = 2
    assert w.state["image"] == 2 and len(w.output.outputs) == 2
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        HCLExplorer(maps(2), labels=["a"])
