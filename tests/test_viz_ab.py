"""kdteach.viz.plot_agreement_maps: a Figure with one panel per (row, stage) on one scale; clear errors."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from kdteach.viz import plot_agreement_maps


def test_figure_layout_and_scale():
    maps = {"student alone": {"layer1": torch.full((4, 4), 0.6), "layer2": torch.rand(2, 2)},
            "AB student": {"layer1": torch.full((4, 4), 0.9), "layer2": torch.rand(2, 2)}}
    fig = plot_agreement_maps(maps, title="agreement")
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4
    assert all(ax.images[0].get_clim() == (0.5, 1.0) for ax in panels)      # one shared scale
    assert panels[0].get_title() == "layer1: mean 0.600" and panels[2].get_title() == "layer1: mean 0.900"
    assert panels[0].get_ylabel() == "student alone"


@pytest.mark.parametrize("maps, match", [
    ({"a": {"l1": torch.rand(2, 2)}, "b": {"l2": torch.rand(2, 2)}}, "must name the stages"),
    ({"a": {"l1": torch.rand(2, 2, 2)}}, r"must be a \(h, w\) map"),
    ({"a": {"l1": torch.full((2, 2), 1.5)}}, r"agreement values in \[0, 1\]"),
])
def test_bad_input(maps, match):
    with pytest.raises(ValueError, match=match):
        plot_agreement_maps(maps)
    with pytest.raises(ValueError, match="vmin must be in"):
        plot_agreement_maps({"a": {"l1": torch.rand(2, 2)}}, vmin=1.0)
