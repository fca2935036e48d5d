"""kdteach.viz.plot_margins and plot_preact_response: OFD's margins and the partial L2's view (Heo et al., ICCV 2019)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdteach.losses import ofd_margin
from kdteach.viz import plot_margins, plot_preact_response


def test_margins_are_drawn_sorted_per_stage_with_the_share_of_negative_responses():
    g = torch.Generator().manual_seed(0)
    m1 = ofd_margin(torch.rand(6, generator=g) + 0.2, torch.randn(6, generator=g))
    m2 = ofd_margin(torch.rand(4, generator=g) + 0.2, torch.randn(4, generator=g))
    share1 = torch.rand(6, generator=g)
    fig = plot_margins({"layer1": m1, "layer2": m2}, {"layer1": share1, "layer2": torch.rand(4, generator=g)},
                       title="OFD")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "OFD"
    ax1 = fig.axes[0]
    heights = [p.get_height() for p in ax1.patches]
    assert np.allclose(heights, np.sort(m1.numpy())) and all(h < 0 for h in heights)
    assert f"mean margin {m1.mean().item():.2f}" in ax1.get_title() and "6 channels" in ax1.get_title()
    twin = [a for a in fig.axes if a.get_ylabel() == "share of negative responses"][0]
    assert np.allclose(twin.lines[0].get_ydata(), share1.numpy()[np.argsort(m1.numpy())])
    assert len(plot_margins({"a": m1}).axes) == 1


@pytest.mark.parametrize("args, error, match", [
    (({},), ValueError, "margins must not be empty"),
    (({"a": torch.zeros(2, 3)},), ValueError, r"margins\['a'\] must have shape \(C,\)"),
    (({"a": torch.zeros(3)}, {"b": torch.zeros(3)}), ValueError, "negative_share must have the stages of margins"),
    (({"a": torch.zeros(3)}, {"a": torch.zeros(4)}), ValueError, r"negative_share\['a'\] must have shape \(3,\)"),
])
def test_margins_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        plot_margins(*args)


def test_preact_response_marks_the_ignored_positions():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(5, 4, 4, generator=g)
    m = ofd_margin(torch.ones(1), torch.zeros(1)).item()
    below = torch.full_like(t, -5.0)                  # below every target, which is <= 0 where t <= 0
    fig = plot_preact_response(t, {"below": below, "copy": t}, m, bn=(1.0, 0.0), title="ch 0")
    left, right = fig.axes
    share_neg = 100 * float((t < 0).float().mean())
    assert f"{share_neg:.0f}% of responses < 0" in left.get_title()
    assert any(f"margin {m:.2f}" in t_.get_text() for t_ in left.get_legend().get_texts())
    labels = [t_.get_text() for t_ in right.get_legend().get_texts()]
    ignored_below = 100 * float((torch.maximum(t, torch.tensor(m)) <= 0).float().mean())
    assert f"below ({ignored_below:.0f}% ignored)" in labels
    # the teacher itself: ignored exactly where t < m (s = t < target = m <= 0) or t <= 0 at s = target
    ignored_copy = 100 * float(((t <= torch.maximum(t, torch.tensor(m))) & (torch.maximum(t, torch.tensor(m)) <= 0)
                                ).float().mean())
    assert f"copy ({ignored_copy:.0f}% ignored)" in labels
    assert fig._suptitle.get_text() == "ch 0"


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.zeros(0), {}, -1.0), {}, "teacher must not be empty"),
    ((torch.zeros(4), {"s": torch.zeros(3)}, -1.0), {}, r"students\['s'\] must have the teacher's 4 values, got 3"),
    ((torch.zeros(4), {}, float("nan")), {}, "margin must be a finite number"),
])
def test_preact_response_bad_inputs(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_preact_response(*args, **kwargs)
