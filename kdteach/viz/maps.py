"""Figures of feature knowledge: attention maps (AT), CAM / Grad-CAM overlays, FSP matrices,
singular values and vectors (KD-SVD). Each function returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import check_mapping, check_rank, images_to_hwc, maps_to_nhw, minmax, new_figure, to_numpy

__all__ = ["plot_attention_maps", "plot_cam_overlays", "plot_fsp_matrices", "plot_singular_vectors"]


def _upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear up-sampling of (N, h, w) maps to (N, H, W) (as CAM papers display them)."""
    if maps.shape[1:] == size:
        return maps
    t = torch.from_numpy(maps).unsqueeze(1)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def _finish_grid(fig: Figure, axes: np.ndarray, row_labels: Sequence[str] | None, title: str | None) -> Figure:
    """Image grids: no ticks, the row labels left of the first column, the figure title."""
    for r, row in enumerate(axes):
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            row[0].set_ylabel(str(row_labels[r]), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_attention_maps(images: object | None, maps: Mapping[str, Mapping[str, object]], *,
                        normalize: bool = True, cmap: str = "viridis", row_labels: Sequence[str] | None = None,
                        title: str | None = None, interpolation: str = "nearest") -> Figure:
    """Grid of spatial attention maps (Zagoruyko & Komodakis, ICLR 2017, Fig. 2-style).

    Rows are images; columns are the input image (if given), then every stage of every model in
    the order of ``maps``, e.g. ``{"teacher": {"layer1": a, "layer2": b}, "student": {...}}``.

    Args:
        images: (N, 3, H, W) images with values in [0, 1], or None for no image column.
        maps: model name -> (stage name -> (N, h, w) maps), e.g. from
            :func:`kdteach.losses.attention_map`. Maps of different stages may differ in size.
        normalize: min-max normalise each map to [0, 1] (recommended: raw scales differ by stage).
        cmap: matplotlib colour map.
        row_labels: optional N labels (e.g. class names) written left of each row.
        title: optional figure title.
        interpolation: how ``imshow`` draws the maps: ``"nearest"`` (default) shows each map at its
            true resolution (a 4x4 map is 16 blocks) and keeps the stored PNG small;
            ``"bilinear"`` smooths them as the paper's figures do.

    Returns:
        Figure with N x (1 + number of (model, stage) pairs) axes (no image column: without the 1).
    """
    check_mapping(maps, "maps")
    columns: list[tuple[str, np.ndarray]] = []
    n = None
    imgs = None
    if images is not None:
        imgs = images_to_hwc(images)
        n = imgs.shape[0]
    for model, stages in maps.items():
        check_mapping(stages, f"maps[{model!r}]")
        for stage, m in stages.items():
            arr = maps_to_nhw(m, f"maps[{model!r}][{stage!r}]", n)
            n = arr.shape[0]
            columns.append((f"{model}\n{stage}", minmax(arr) if normalize else arr))
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"row_labels must have one label per image ({n}), got {len(row_labels)}")
    ncols = len(columns) + (imgs is not None)
    fig = new_figure(n, ncols, cell=(1.7, 1.7))
    axes = fig.subplots(n, ncols, squeeze=False)
    for r in range(n):
        c0 = 0
        if imgs is not None:
            axes[r, 0].imshow(imgs[r], interpolation="nearest")
            if r == 0:
                axes[r, 0].set_title("image", fontsize=9)
            c0 = 1
        for j, (label, arr) in enumerate(columns):
            ax = axes[r, c0 + j]
            kw = {"vmin": 0.0, "vmax": 1.0} if normalize else {}
            ax.imshow(arr[r], cmap=cmap, interpolation=interpolation, **kw)
            if r == 0:
                ax.set_title(label, fontsize=9)
    return _finish_grid(fig, axes, row_labels, title)


def plot_cam_overlays(images: object, maps_by_title: Mapping[str, object], *, alpha: float = 0.5,
                      cmap: str = "jet", row_labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Class activation maps overlaid on their images, side by side (e.g. CAM vs Grad-CAM).

    Each map is up-sampled (bilinear) to the image size, min-max normalised per image and drawn
    over the image with a ``jet`` colour map, as in Zhou et al. (CVPR 2016), Fig. 1.

    Args:
        images: (N, 3, H, W) images with values in [0, 1].
        maps_by_title: column title -> (N, h, w) maps, e.g. ``{"CAM": cam, "Grad-CAM": gc}``.
        alpha: opacity of the heat map over the image, in [0, 1].
        cmap: colour map of the heat map.
        row_labels: optional N labels (e.g. predicted classes) written left of each row.
        title: optional figure title.

    Returns:
        Figure with N x (1 + len(maps_by_title)) axes.
    """
    check_mapping(maps_by_title, "maps_by_title")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    imgs = images_to_hwc(images)
    n, h, w = imgs.shape[:3]
    cols = [(t, minmax(_upsample(maps_to_nhw(m, f"maps_by_title[{t!r}]", n), (h, w))))
            for t, m in maps_by_title.items()]
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"row_labels must have one label per image ({n}), got {len(row_labels)}")
    fig = new_figure(n, 1 + len(cols), cell=(1.9, 1.9))
    axes = fig.subplots(n, 1 + len(cols), squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(imgs[r], interpolation="nearest")
        for j, (t, arr) in enumerate(cols):
            ax = axes[r, 1 + j]
            ax.imshow(imgs[r], interpolation="nearest")
            ax.imshow(arr[r], cmap=cmap, alpha=float(alpha), vmin=0.0, vmax=1.0, interpolation="nearest")
            if r == 0:
                ax.set_title(str(t), fontsize=9)
        if r == 0:
            axes[r, 0].set_title("image", fontsize=9)
    return _finish_grid(fig, axes, row_labels, title)


def plot_fsp_matrices(matrices_by_title: Mapping[str, object], *, ncols: int | None = None,
                      cmap: str = "viridis", title: str | None = None) -> Figure:
    """FSP matrices (Yim et al., CVPR 2017) as heat maps with one shared colour scale.

    Args:
        matrices_by_title: panel title -> (C1, C2) matrix, or (B, C1, C2) matrices averaged over
            the batch (as returned by :func:`kdteach.losses.fsp_matrix`).
        ncols: panels per row (default: all in one row, at most 4).
        cmap: colour map.
        title: optional figure title.

    Returns:
        Figure with one axes per matrix plus one colour-bar axes.
    """
    check_mapping(matrices_by_title, "matrices_by_title")
    mats = []
    for t, m in matrices_by_title.items():
        arr = check_rank(to_numpy(m, f"matrices_by_title[{t!r}]"), f"matrices_by_title[{t!r}]", (2, 3),
                         "(C1, C2) or (B, C1, C2)")
        mats.append((str(t), arr.mean(0) if arr.ndim == 3 else arr))
    n = len(mats)
    if ncols is None:
        ncols = min(n, 4)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    nrows = -(-n // ncols)
    vmin = min(float(a.min()) for _, a in mats)
    vmax = max(float(a.max()) for _, a in mats)
    if vmax <= vmin:
        vmax = vmin + 1.0
    fig = new_figure(nrows, ncols, cell=(2.8, 2.6))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    image = None
    for ax, (t, a) in zip(axes, mats):
        image = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("channel of the second layer", fontsize=8)
        ax.set_ylabel("channel of the first layer", fontsize=8)
    for ax in axes[n:]:
        fig.delaxes(ax)
    fig.colorbar(image, ax=list(axes[:n]), label="FSP value")
    if title:
        fig.suptitle(title)
    return fig


def _sample(arr: np.ndarray, rank_single: int, sample: int, name: str) -> np.ndarray:
    if arr.ndim == rank_single + 1:
        if not -arr.shape[0] <= sample < arr.shape[0]:
            raise ValueError(f"sample={sample} is out of range for {name} with batch size {arr.shape[0]}")
        return arr[sample]
    return arr


def plot_singular_vectors(svd_by_model: Mapping[str, Sequence[tuple[object, object]]], *,
                          stage_names: Sequence[str] | None = None, sample: int = 0, cmap: str = "RdBu_r",
                          title: str | None = None) -> Figure:
    """Singular values and right singular vectors per stage for several models (KD-SVD, Lee et al. 2018).

    Top row: the singular values of every stage, one line per model. Then one row per model: the
    right singular vectors of each stage as a heat map (vector index x channel), on one symmetric
    colour scale with a shared colour bar.

    Args:
        svd_by_model: model name -> list over stages of ``(s, v)`` pairs as returned by
            :func:`kdteach.losses.svd_features`: s (B, n) or (n,), v (B, C, n) or (C, n).
            All models must have the same number of stages.
        stage_names: optional names of the stages (column titles).
        sample: which sample of a batch to show.
        cmap: diverging colour map of the heat maps.
        title: optional figure title.

    Returns:
        Figure with n_stages x (1 + n_models) axes plus one colour-bar axes.
    """
    check_mapping(svd_by_model, "svd_by_model")
    data: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    n_stages = None
    for model, stages in svd_by_model.items():
        if not isinstance(stages, (list, tuple)) or len(stages) == 0:
            raise TypeError(f"svd_by_model[{model!r}] must be a non-empty list of (s, v) pairs, "
                            f"got {type(stages).__name__}")
        if n_stages is None:
            n_stages = len(stages)
        elif len(stages) != n_stages:
            raise ValueError(f"every model needs the same number of stages: svd_by_model[{model!r}] has "
                             f"{len(stages)}, expected {n_stages}")
        rows = []
        for i, pair in enumerate(stages):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TypeError(f"svd_by_model[{model!r}][{i}] must be an (s, v) pair")
            name = f"svd_by_model[{model!r}][{i}]"
            s = check_rank(to_numpy(pair[0], name + " s"), name + " s", (1, 2), "(n,) or (B, n)")
            v = check_rank(to_numpy(pair[1], name + " v"), name + " v", (2, 3), "(C, n) or (B, C, n)")
            s, v = _sample(s, 1, sample, name + " s"), _sample(v, 2, sample, name + " v")
            if v.shape[1] != s.shape[0]:
                raise ValueError(f"{name}: v must have one column per singular value ({s.shape[0]}), "
                                 f"got shape {v.shape}")
            rows.append((s, v))
        data[str(model)] = rows
    if stage_names is not None and len(stage_names) != n_stages:
        raise ValueError(f"stage_names must have {n_stages} names, got {len(stage_names)}")
    names = [str(s) for s in stage_names] if stage_names is not None else [f"stage {i + 1}" for i in range(n_stages)]
    vmax = max(float(np.abs(v).max()) for rows in data.values() for _, v in rows) or 1.0
    fig = new_figure(1 + len(data), n_stages, cell=(3.0, 2.2))
    axes = fig.subplots(1 + len(data), n_stages, squeeze=False)
    image = None
    for c in range(n_stages):
        ax = axes[0, c]
        for model, rows in data.items():
            s = rows[c][0]
            ax.plot(np.arange(1, len(s) + 1), s, marker="o", label=model)
        ax.set_title(names[c], fontsize=9)
        ax.set_xlabel("index", fontsize=8)
        if c == 0:
            ax.set_ylabel("singular value", fontsize=8)
            ax.legend(fontsize=7)
        for r, (model, rows) in enumerate(data.items(), start=1):
            v = rows[c][1]
            ax = axes[r, c]
            image = ax.imshow(v.T, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_yticks(range(v.shape[1]))
            ax.set_yticklabels([str(i + 1) for i in range(v.shape[1])])
            ax.set_xlabel("channel", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{model}\nvector", fontsize=8)
    fig.colorbar(image, ax=list(axes[1:].ravel()), label="entry of the right singular vector")
    if title:
        fig.suptitle(title)
    return fig
