"""2-D pictures of embeddings (CRD): each network's embedding of the same images, projected by PCA."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import check_mapping, new_figure, to_numpy

__all__ = ["pca_2d", "plot_embeddings"]


def pca_2d(embedding: object) -> np.ndarray:
    """(N, D) -> (N, 2): the projection on the first two principal components (``torch.pca_lowrank``
    with its centring, exact for D ≤ 6 and otherwise on 6 + 2 random probes with 4 power iterations;
    a fixed seed makes the signs reproducible)."""
    a = to_numpy(embedding, "embedding")
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] < 2:
        raise ValueError(f"embedding must be (N, D) with N >= 3 and D >= 2, got shape {a.shape}")
    x = torch.as_tensor(a, dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        u, s, _ = torch.pca_lowrank(x, q=min(8, *x.shape), center=True, niter=4)
    p = (u[:, :2] * s[:2]).numpy()
    signs = np.sign(p[np.abs(p).argmax(0), [0, 1]])               # largest-|coordinate| point positive
    return p * np.where(signs == 0, 1.0, signs)


def plot_embeddings(embeddings: Mapping[str, object], labels: object, class_names: Sequence[str] | None = None,
                    title: str | None = None) -> Figure:
    """One scatter panel per network: its (N, D) embedding of the same N images in 2-D (:func:`pca_2d`),
    coloured by class (CRD, Tian et al. 2020: the student's embedding should take the teacher's
    structure). Each panel has its own axes: PCA coordinates of different spaces are not comparable,
    only the arrangement of the classes is.

    Args:
        embeddings: name -> (N, D_name) array or tensor (dimensions may differ between networks).
        labels: (N,) int class labels; class_names: optional names for the legend.
        title: optional figure title.
    """
    check_mapping(embeddings, "embeddings")
    y = to_numpy(labels, "labels").astype(int).reshape(-1)
    pts = {}
    for name, e in embeddings.items():
        p = pca_2d(e)
        if p.shape[0] != y.shape[0]:
            raise ValueError(f"embeddings[{name!r}] has {p.shape[0]} rows but labels has {y.shape[0]}")
        pts[name] = p
    fig = new_figure(1, len(pts), cell=(3.4, 3.4))
    axes = fig.subplots(1, len(pts), squeeze=False)[0]
    classes = sorted(set(y.tolist()))
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for ax, (name, p) in zip(axes, pts.items()):
        for j, c in enumerate(classes):
            m = y == c
            ax.scatter(p[m, 0], p[m, 1], s=7, color=cmap(j % cmap.N), alpha=0.75,
                       label=class_names[c] if class_names is not None else str(c))
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC 1", fontsize=8)
        ax.set_ylabel("PC 2", fontsize=8)
    axes[-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
