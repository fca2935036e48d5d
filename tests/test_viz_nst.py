"""kdteach.viz.plot_selectivity_maps: NST's neuron selectivity maps of teacher and student (Huang & Wang 2017)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdteach.losses import nst_loss
from kdteach.viz import plot_selectivity_maps


def test_rows_show_the_most_active_channels_normalised_with_the_mmd_to_the_first_row():
    g = torch.Generator().manual_seed(0)
    teacher = torch.rand(8, 4, 4, generator=g)
    teacher[5] *= 10.0                        # the most active neuron: drawn first
    student = torch.rand(3, 8, 8, generator=g)   # fewer channels, larger maps
    fig = plot_selectivity_maps({"teacher": teacher, "student": student}, n_channels=4, title="NST")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "NST"
    axes = np.array(fig.axes).reshape(2, 4)
    assert axes[0, 0].get_title() == "ch 5"
    shown = axes[0, 0].images[0].get_array()
    want = (teacher[5] / teacher[5].norm()).numpy()
    assert np.allclose(shown, want) and np.isclose(np.sum(np.asarray(shown) ** 2), 1.0)
    assert not axes[1, 3].axison                  # the student has 3 channels: the fourth panel is blank
    assert "3 ch, 8x8" in axes[1, 0].get_ylabel()
    mmd = nst_loss(student[None].double(), teacher[None].double()).item()
    assert f"MMD² {mmd:.4f}" in axes[1, 0].get_ylabel() and mmd > 0
    assert "MMD" not in axes[0, 0].get_ylabel()
    same = plot_selectivity_maps({"t": teacher, "t again": teacher}, kernel="gaussian")
    assert "MMD² 0.0000" in np.array(same.axes).reshape(2, 6)[1, 0].get_ylabel()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(features_by_row={}), ValueError, "features_by_row must not be empty"),
    (dict(features_by_row={"t": torch.rand(4, 4)}), ValueError, r"features_by_row\['t'\] must have shape \(C, h, w\)"),
    (dict(features_by_row={"t": torch.rand(2, 4, 4)}, n_channels=0), ValueError, "n_channels must be an integer >= 1"),
    (dict(features_by_row={"t": torch.rand(2, 4, 4)}, kernel="rbf"), ValueError, "kernel must be one of"),
    (dict(features_by_row=[torch.rand(2, 4, 4)]), TypeError, "features_by_row must be a dict"),
])
def test_bad_inputs_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_selectivity_maps(**kwargs)
