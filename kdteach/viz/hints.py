"""Figures of FitNets' hints (Romero et al., ICLR 2015): a teacher's hint channels next to a student's
regressed guided features. Each function returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import check_mapping, check_rank, new_figure, to_numpy

__all__ = ["plot_hint_channels"]


def plot_hint_channels(features_by_row: Mapping[str, object], channels: Sequence[int], *, title: str | None = None,
                       cmap: str = "viridis") -> Figure:
    """Channels of hint-shaped feature maps of one image, one row per model, one column per channel.

    The FitNets view (Sec. 2.2): the teacher's hint u_h(x) (C_h, h, w) next to r(v_g(x)), the student's
    guided features through the regressor, both of shape (C_h, h, w). Each **column shares one colour
    scale** (the minimum and maximum of that channel over all rows), so within a column intensities
    compare across rows; columns are scaled one by one. The root-mean-square difference to the first
    row, over all C_h channels, is written under each other row's label.

    Args:
        features_by_row: row label -> (C, h, w) features of one image, all the same shape; the first
            row is the reference (the teacher's hint).
        channels: indices of the channels to draw (one column each).
        title: optional figure title.
        cmap: matplotlib colour map.

    Returns:
        Figure with len(features_by_row) x len(channels) axes.

    Raises:
        ValueError: no rows, rows of other shapes, or a channel index out of range.
    """
    check_mapping(features_by_row, "features_by_row")
    rows = {str(k): check_rank(to_numpy(v, f"features_by_row[{k!r}]"), f"features_by_row[{k!r}]", (3,), "(C, h, w)")
            for k, v in features_by_row.items()}
    labels = list(rows)
    shape = rows[labels[0]].shape
    for k in labels[1:]:
        if rows[k].shape != shape:
            raise ValueError(f"features_by_row[{k!r}] must have the first row's shape {shape}, got {rows[k].shape}")
    chans = [int(c) for c in channels]
    if not chans or any(not 0 <= c < shape[0] for c in chans):
        raise ValueError(f"channels must be a non-empty list of indices in [0, {shape[0]}), got {list(channels)!r}")
    fig = new_figure(len(labels), len(chans), cell=(1.6, 1.6))
    axes = fig.subplots(len(labels), len(chans), squeeze=False)
    ref = rows[labels[0]]
    for j, c in enumerate(chans):
        lo = min(float(rows[k][c].min()) for k in labels)
        hi = max(float(rows[k][c].max()) for k in labels)
        hi = hi if hi > lo else lo + 1.0
        for r, k in enumerate(labels):
            ax = axes[r, j]
            ax.imshow(rows[k][c], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            if r == 0:
                ax.set_title(f"channel {c}", fontsize=9)
    for r, k in enumerate(labels):
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
        rmse = "" if r == 0 else f"\nRMS diff {float(np.sqrt(np.mean((rows[k] - ref) ** 2))):.3f}"
        axes[r, 0].set_ylabel(k + rmse, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
