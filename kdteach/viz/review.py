"""The ReviewKD figure: ABF's two attention maps for a few images.

Chen, Liu, Zhao, Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021 (Fig. 3(c)): at each level
of the review path an attention-based fusion (ABF) module computes two (H, W) maps from the
concatenation of the student's level and the upsampled deeper fused map, and mixes the two with them
position by position. This figure shows, per image, the image and both maps on one colour scale [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import images_to_hwc, new_figure, to_numpy

__all__ = ["plot_abf_attention"]


def plot_abf_attention(images: object, attention: object, labels: Sequence[str] | None = None,
                       title: str | None = None, cmap: str = "magma") -> Figure:
    """One column per image: the image, ABF's weight on the level's own map, its weight on the deeper map.

    Args:
        images: (N, 3, H, W) images in [0, 1] (un-normalised).
        attention: (N, 2, h, w) sigmoid attention of one ABF (:class:`kdteach.methods.reviewkd.ABF`):
            channel 0 weighs the student's map at this level, channel 1 the deeper fused map.
        labels: optional N column titles (e.g. class names).
        title: optional figure title.
        cmap: colour map; every attention panel uses the same scale [0, 1].

    Returns:
        Figure with 3 rows of N panels and one colour bar.

    Raises:
        ValueError: ``attention`` is not (N, 2, h, w) with values in [0, 1], or N differs from the images'
            or the labels'.
    """
    imgs = images_to_hwc(images, "images")
    att = to_numpy(attention, "attention").astype(np.float64)
    if att.ndim != 4 or att.shape[1] != 2:
        raise ValueError(f"attention must have shape (N, 2, h, w), got shape {att.shape}")
    if att.shape[0] != imgs.shape[0]:
        raise ValueError(f"attention must hold one pair of maps per image ({imgs.shape[0]}), got shape {att.shape}")
    if att.min() < 0 or att.max() > 1:
        raise ValueError(f"attention must hold sigmoid values in [0, 1], got range [{att.min():.3f}, {att.max():.3f}]")
    if labels is not None and len(labels) != imgs.shape[0]:
        raise ValueError(f"labels must have one entry per image ({imgs.shape[0]}), got {len(labels)}")
    n = imgs.shape[0]
    fig = new_figure(3, n, cell=(1.7, 1.7))
    axes = fig.subplots(3, n, squeeze=False)
    rows = ("image", "weight on this level", "weight on the deeper level")
    im = None
    for j in range(n):
        axes[0, j].imshow(imgs[j])
        if labels is not None:
            axes[0, j].set_title(str(labels[j]), fontsize=9)
        for k in range(2):
            im = axes[k + 1, j].imshow(att[j, k], cmap=cmap, vmin=0.0, vmax=1.0)
            axes[k + 1, j].set_xlabel(f"mean {att[j, k].mean():.2f}", fontsize=8)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(rows[i], fontsize=8)
    fig.colorbar(im, ax=axes[1:].ravel().tolist(), shrink=0.8, label="attention (one scale, [0, 1])")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
