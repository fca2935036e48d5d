"""kdteach.viz.plot_abf_attention: ReviewKD's two ABF attention maps per image, one colour scale."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from kdteach.viz import plot_abf_attention


def test_figure_has_image_and_both_maps_per_column_on_one_scale():
    images, att = torch.rand(3, 3, 16, 16), torch.rand(3, 2, 8, 8)
    fig = plot_abf_attention(images, att, labels=["a", "b", "c"], title="ABF")
    assert isinstance(fig, Figure)
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(panels) == 9 + 1 or len(panels) == 9
    maps = [ax.images[0] for ax in fig.axes[:9] if ax.images[0].get_array().ndim == 2]
    assert len(maps) == 6 and all(m.get_clim() == (0.0, 1.0) for m in maps)
    assert fig.axes[0].get_title() == "a" and f"mean {att[0, 0].mean().item():.2f}" == fig.axes[3].get_xlabel()


@pytest.mark.parametrize("att, labels, match", [
    (torch.rand(3, 1, 8, 8), None, r"attention must have shape \(N, 2, h, w\), got shape \(3, 1, 8, 8\)"),
    (torch.rand(2, 2, 8, 8), None, r"one pair of maps per image \(3\)"),
    (torch.rand(3, 2, 8, 8) + 1.5, None, r"attention must hold sigmoid values in \[0, 1\]"),
    (torch.rand(3, 2, 8, 8), ["a"], r"labels must have one entry per image \(3\), got 1"),
])
def test_bad_inputs(att, labels, match):
    with pytest.raises(ValueError, match=match):
        plot_abf_attention(torch.rand(3, 3, 16, 16), att, labels=labels)
