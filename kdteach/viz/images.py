"""Grids of images: generated samples of a data-free generator (DAFL), or any batch of images.

:func:`plot_image_grid` returns a :class:`matplotlib.figure.Figure` (no pyplot), images in [0, 1]
(denormalise normalised inputs first with :func:`kdteach.data.denormalize`).
"""

from __future__ import annotations

import math
from typing import Sequence

from matplotlib.figure import Figure

from ._common import images_to_hwc, new_figure

__all__ = ["plot_image_grid"]


def plot_image_grid(images: object, *, titles: Sequence[str] | None = None, ncols: int = 8,
                    title: str | None = None, cell: float = 1.1) -> Figure:
    """Images in a grid, left to right, top to bottom; each image shown as it is (no per-image rescaling).

    Used for the generated samples of a data-free generator (Chen et al., "Data-Free Learning of
    Student Networks", ICCV 2019, Fig. 3 shows such grids).

    Args:
        images: (N, 3, H, W) (or (N, 1, H, W), (3, H, W)) tensor or array with values in [0, 1];
            values outside are clipped.
        titles: N short captions (e.g. the teacher's predicted class of each image), or None.
        ncols: images per row (>= 1); the grid has ceil(N / ncols) rows.
        title: the figure title.
        cell: side of one image in inches.

    Returns:
        The Figure (unused cells of the last row are blank).

    Raises:
        ValueError: ``images`` not (N, 3, H, W) or empty, ``titles`` not N strings, ``ncols`` not a
            positive int, ``cell`` not > 0.
    """
    arr = images_to_hwc(images, "images")
    if arr.shape[0] == 0:
        raise ValueError(f"images must not be empty, got shape {arr.shape}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    if not isinstance(cell, (int, float)) or isinstance(cell, bool) or not cell > 0:
        raise ValueError(f"cell must be a number > 0, got {cell!r}")
    n = arr.shape[0]
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(f"titles must hold one caption per image ({n}), got {len(titles)}")
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    extra = 0.25 if titles is not None else 0.0
    fig = new_figure(rows, cols, cell=(cell, cell + extra))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(arr[i], interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=7, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
