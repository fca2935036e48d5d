"""kdteach.widgets.fitnet (the regressor explorer, driven headlessly) and kdteach.viz.plot_hint_channels."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from kdteach import widgets as kw
from kdteach.models import count_parameters, create
from kdteach.viz import plot_hint_channels


def test_state_equal_sizes_is_the_papers_one_by_one_conv():
    st = kw.regressor_explorer_state("resnet32x4", "resnet8x4", 2, 32)
    assert st["ok"] and st["error"] is None
    assert st["hint"]["name"] == "layer2" and st["hint"]["shape"] == (128, 16, 16)
    assert st["guided"]["shape"] == (128, 16, 16)
    assert (st["spec"]["kind"], st["spec"]["kernel"], st["spec"]["stride"]) == ("conv", 1, 1)
    assert st["output_shape"] == (128, 16, 16) and st["matches"]
    want = 128 * 128 + 128 + 2 * 128
    assert st["spec"]["parameters"] == want
    assert st["regressor_fraction"] == pytest.approx(want / count_parameters(create("resnet8x4", 10)))


@pytest.mark.parametrize("teacher, student, resolution, kind, out", [
    ("resnet32x4", "shufflenetv2", 32, "conv_transpose", (128, 16, 16)),    # student map half as large
    ("vgg13", "resnet8x4", 32, "conv", (256, 8, 8)),                        # student map twice as large
    ("wrn_40_2", "mobilenetv2", 16, "conv_transpose", (64, 8, 8)),
])
def test_state_different_sizes(teacher, student, resolution, kind, out):
    st = kw.regressor_explorer_state(teacher, student, 2, resolution)
    assert st["ok"] and st["spec"]["kind"] == kind
    assert st["output_shape"] == out == st["hint"]["shape"] and st["matches"]


def test_state_a_pair_that_cannot_work_and_bad_input():
    st = kw.regressor_explorer_state("resnet32x4", "vgg8", 4, 32)
    assert not st["ok"] and "vgg8" in st["error"] and "resnet32x4" in st["error"] and "has 4" in st["error"]
    with pytest.raises(ValueError, match="resolution must be a positive int"):
        kw.regressor_explorer_state("resnet32x4", "resnet8x4", 2, 0)
    with pytest.raises(ValueError, match="hint_layer must be an int >= 0"):
        kw.regressor_explorer_state("resnet32x4", "resnet8x4", -1, 32)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        kw.regressor_explorer_state("nope", "resnet8x4", 2, 32)


def test_widget_updates_headlessly():
    w = kw.RegressorExplorer(models=["resnet32x4", "resnet8x4", "shufflenetv1", "vgg8"])
    assert w.state["ok"] and "matches the hint" in w.output.outputs[0]["data"]["text/plain"]
    w.student.value = "shufflenetv1"
    assert w.state["spec"]["kind"] == "conv_transpose" and w.state["student"] == "shufflenetv1"
    w.hint_layer.value = 4
    assert not w.state["ok"] and "cannot work" in w.output.outputs[0]["data"]["text/plain"]
    w.hint_layer.value, w.resolution.value = 2, 16
    assert w.state["ok"] and w.state["hint"]["shape"] == (128, 8, 8)
    with pytest.raises(ValueError, match="teacher must be one of"):
        kw.RegressorExplorer(models=["resnet8x4"], teacher="resnet32x4")


def test_plot_hint_channels_shares_one_scale_per_column():
    g = torch.Generator().manual_seed(0)
    t, s = torch.rand(6, 4, 4, generator=g), torch.rand(6, 4, 4, generator=g) * 2
    fig = plot_hint_channels({"teacher hint": t, "student r(v_g)": s}, [0, 3], title="hints")
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 4 and [axes[0].get_title(), axes[1].get_title()] == ["channel 0", "channel 3"]
    for j, c in enumerate([0, 3]):
        lo, hi = float(min(t[c].min(), s[c].min())), float(max(t[c].max(), s[c].max()))
        assert axes[j].images[0].get_clim() == pytest.approx((lo, hi))
        assert axes[2 + j].images[0].get_clim() == pytest.approx((lo, hi))
    rms = float(torch.sqrt(((s - t) ** 2).mean()))
    assert f"RMS diff {rms:.3f}" in axes[2].get_ylabel()
    with pytest.raises(ValueError, match=r"features_by_row\['b'\] must have the first row's shape"):
        plot_hint_channels({"a": t, "b": s[:3]}, [0])
    with pytest.raises(ValueError, match="channels must be a non-empty list of indices in \\[0, 6\\)"):
        plot_hint_channels({"a": t}, [6])
    with pytest.raises(ValueError, match=r"must have shape \(C, h, w\)"):
        plot_hint_channels({"a": t[0]}, [0])
