"""SSKD's contrastive similarity matrices as pictures (Xu et al., ECCV 2020)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import check_mapping, new_figure, to_numpy

__all__ = ["plot_contrastive_similarity"]


def plot_contrastive_similarity(matrices: Mapping[str, object], kept: Sequence[int] | None = None,
                                title: str | None = None) -> Figure:
    """One heat map per network of its (3n, n) contrastive similarity matrix (rows: the rotated views of
    image i at rows 3i..3i+2, columns: the normal views), all on one colour scale, cosine in [−1, 1]; a
    white dot marks each row's own image (the pretext task's answer). With ``kept``, the rows SSKD's
    similarity term keeps (:func:`kdteach.losses.error_rank_keep`) get a tick on the left of every panel.

    Args:
        matrices: name -> (3n, n) matrix (tensor or array), all of the same shape.
        kept: optional row indices kept for distillation.
        title: optional figure title.
    """
    check_mapping(matrices, "matrices")
    mats = {k: to_numpy(v, f"matrices[{k!r}]") for k, v in matrices.items()}
    shapes = {m.shape for m in mats.values()}
    if len(shapes) != 1 or any(m.ndim != 2 or m.shape[0] % m.shape[1] for m in mats.values()):
        raise ValueError(f"matrices must all be (k·n, n) of one shape, got {[m.shape for m in mats.values()]}")
    m_rows, n = next(iter(shapes))
    k = m_rows // n
    fig = new_figure(1, len(mats), cell=(2.6, 2.6 * min(3.0, m_rows / n) / 1.5))
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    im = None
    for ax, (name, m) in zip(axes, mats.items()):
        im = ax.imshow(m, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        rows = np.arange(m_rows)
        ax.scatter(rows // k, rows, s=6, color="white", edgecolors="black", linewidths=0.3)
        if kept is not None:
            ax.scatter(np.full(len(kept), -0.9), np.asarray(kept), marker=">", s=8, color="black", clip_on=False)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("normal view (image)", fontsize=8)
        ax.set_ylabel("rotated view (row)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="cosine")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
