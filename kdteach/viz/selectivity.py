"""Figures of neuron selectivity transfer (Huang & Wang, arXiv:1707.01219, 2017): the per-channel
spatial maps that NST reads as samples of a distribution. Each function returns a
:class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import numbers
from typing import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from ..losses import NST_KERNELS, nst_loss
from ._common import check_mapping, check_rank, new_figure, to_numpy

__all__ = ["plot_selectivity_maps"]


def plot_selectivity_maps(features_by_row: Mapping[str, object], *, n_channels: int = 6, kernel: str = "poly",
                          title: str | None = None, cmap: str = "viridis") -> Figure:
    """Neuron selectivity maps of one image, one row per model: its most active channels' normalised maps.

    NST (Sec. 3.2) reads a (C, h, w) feature map as C samples, each channel's spatial map flattened
    and L2-normalised: where in the image that neuron fires. Each row shows the ``n_channels``
    channels of largest L2 norm (the most active neurons, strongest first, channel index above
    each panel) as f_c / ‖f_c‖₂, on one colour scale per row (from min(0, the row's smallest value)
    to its largest; normalised maps are comparable within a row). Rows may have different channel
    counts and map sizes: NST compares the rows' channel *distributions*, not channel c with
    channel c, so the columns do not correspond. Under each row label after the first, its squared MMD to the first
    row (:func:`kdteach.losses.nst_loss` with ``kernel``, the larger map average-pooled to the
    smaller size) is written.

    Args:
        features_by_row: row label -> (C, h, w) features of one image (e.g. ``"teacher"``,
            ``"student (CE)"``, ``"student (NST)"``); the first row is the reference.
        n_channels: channels per row (>= 1; a row with fewer channels shows them all).
        kernel: the kernel of the MMD written under the rows, one of
            :data:`kdteach.losses.NST_KERNELS`.
        title: optional figure title.
        cmap: matplotlib colour map.

    Returns:
        Figure with len(features_by_row) x min(n_channels, max C) axes.

    Raises:
        TypeError: ``features_by_row`` is not a dict.
        ValueError: no rows, a row not of shape (C, h, w), ``n_channels`` < 1 or an unknown ``kernel``.
    """
    check_mapping(features_by_row, "features_by_row")
    if isinstance(n_channels, bool) or not isinstance(n_channels, numbers.Integral) or n_channels < 1:
        raise ValueError(f"n_channels must be an integer >= 1, got {n_channels!r}")
    if kernel not in NST_KERNELS:
        raise ValueError(f"kernel must be one of {NST_KERNELS}, got {kernel!r}")
    rows = {str(k): check_rank(to_numpy(v, f"features_by_row[{k!r}]"), f"features_by_row[{k!r}]", (3,), "(C, h, w)")
            for k, v in features_by_row.items()}
    labels = list(rows)
    ncols = min(int(n_channels), max(r.shape[0] for r in rows.values()))
    fig = new_figure(len(labels), ncols, cell=(1.5, 1.6))
    axes = fig.subplots(len(labels), ncols, squeeze=False)
    ref = torch.from_numpy(rows[labels[0]])[None]
    for r, k in enumerate(labels):
        f = rows[k]
        norms = np.sqrt((f.reshape(f.shape[0], -1) ** 2).sum(1))
        order = np.argsort(-norms, kind="stable")[:ncols]
        maps = f[order] / np.maximum(norms[order], 1e-12)[:, None, None]
        lo, hi = min(0.0, float(maps.min())), max(float(maps.max()), 1e-12)
        for j, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(order):
                ax.set_axis_off()
                continue
            ax.imshow(maps[j], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"ch {int(order[j])}", fontsize=8)
        note = f"\n{f.shape[0]} ch, {f.shape[1]}x{f.shape[2]}"
        if r > 0:
            note += f"\nMMD² {nst_loss(torch.from_numpy(f)[None], ref, kernel).item():.4f}"
        axes[r, 0].set_ylabel(k + note, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
