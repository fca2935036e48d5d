"""The AB figure: teacher/student activation agreement maps, one colour scale for all.

Heo, Lee, Yun, Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden
Neurons", AAAI 2019: a ReLU neuron is active where its pre-activation is > 0, and AB transfers on which
side of that boundary the teacher's neurons are. An agreement map
(:func:`kdteach.analysis.activation_agreement`) gives, per spatial position, the share of images and
channels where the student's and the teacher's neuron are both active or both inactive; this figure
puts the maps of several students (rows) and stages (columns) on the fixed scale [0, 1].
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from matplotlib.figure import Figure

from ._common import check_mapping, new_figure, to_numpy

__all__ = ["plot_agreement_maps"]


def plot_agreement_maps(maps: Mapping[str, Mapping[str, object]], title: str | None = None,
                        cmap: str = "RdYlGn", vmin: float = 0.5) -> Figure:
    """One row per student, one column per stage: the (h, w) activation agreement maps, every map on one
    colour scale from ``vmin`` to 1, each panel titled with its mean agreement.

    Args:
        maps: row title -> (stage name -> (h, w) agreement map with values in [0, 1]), e.g.
            ``{"student alone": {"layer1": ..., "layer2": ...}, "AB student": {...}}``
            (:func:`kdteach.analysis.activation_agreement`); every row names the same stages.
        title: optional figure title.
        cmap: colour map; vmin: the lower end of the shared colour scale (0.5, what two unrelated
            networks with balanced activations score; lower values are clipped to its colour).

    Returns:
        Figure with ``len(maps)`` rows of ``len(stages)`` heat maps and one colour bar.

    Raises:
        ValueError: no rows, rows with different stages, a map that is not 2-D or has values outside
            [0, 1], or ``vmin`` not in [0, 1).
    """
    maps = check_mapping(maps, "maps")
    if not 0 <= vmin < 1:
        raise ValueError(f"vmin must be in [0, 1), got {vmin!r}")
    rows = list(maps)
    stages = list(check_mapping(maps[rows[0]], f"maps[{rows[0]!r}]"))
    arrays = {}
    for r in rows:
        row = check_mapping(maps[r], f"maps[{r!r}]")
        if list(row) != stages:
            raise ValueError(f"maps[{r!r}] must name the stages {stages} like the first row, got {list(row)}")
        for s in stages:
            a = to_numpy(row[s], f"maps[{r!r}][{s!r}]").astype(np.float64)
            if a.ndim != 2:
                raise ValueError(f"maps[{r!r}][{s!r}] must be a (h, w) map, got shape {a.shape}")
            if a.size and (a.min() < 0 or a.max() > 1):
                raise ValueError(f"maps[{r!r}][{s!r}] must hold agreement values in [0, 1], got range "
                                 f"[{a.min():.3f}, {a.max():.3f}]")
            arrays[r, s] = a
    fig = new_figure(len(rows), len(stages), cell=(2.2, 2.2))
    axes = np.atleast_2d(fig.subplots(len(rows), len(stages), squeeze=False))
    im = None
    for i, r in enumerate(rows):
        for j, s in enumerate(stages):
            ax, a = axes[i, j], arrays[r, s]
            im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{s}: mean {a.mean():.3f}", fontsize=9)
            if j == 0:
                ax.set_ylabel(r, fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="agreement (both active or both inactive)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
