"""The MLKD figure: the teacher's and the student's similarity matrices side by side.

Jin, Wang, Lin, "Multi-level Logit Distillation", CVPR 2023: from a batch's softened predictions
P (B, K), the batch level compares the B x B matrices P Pᵀ (image against image) and the class level
the K x K matrices PᵀP (class against class) of teacher and student. Each row of the figure is one
such pair; the matrices are computed by the caller (e.g. ``p @ p.T`` with ``p`` from
:func:`kdteach.losses.softened_probs`), the drawing of one matrix is
:func:`kdteach.viz.charts.draw_matrix`, the cell of :func:`~kdteach.viz.plot_similarity_matrix`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import check_rank, to_numpy
from .charts import draw_matrix

__all__ = ["plot_similarity_pairs"]


def plot_similarity_pairs(pairs: Mapping[str, tuple[object, object]],
                          labels: Mapping[str, Sequence[str] | None] | None = None, *,
                          names: tuple[str, str] = ("teacher", "student"), difference: bool = True,
                          cmap: str = "viridis", annotate: bool | None = None, title: str | None = None,
                          shared_scale: bool = False) -> Figure:
    """One row per pair of square matrices: the teacher's, the student's, and |teacher − student|.

    Within a row the teacher and the student share one colour scale (one colour bar), so their
    intensities can be compared; the difference has its own scale (its own colour bar). Rows are
    scaled independently (a B x B and a K x K matrix have different ranges) unless ``shared_scale``:
    then every matrix of every row shares one scale, and every difference another (rows of the same
    kind of matrix, e.g. before and after distillation, RKD).

    Args:
        pairs: row title -> ``(teacher_matrix, student_matrix)``, each (n, n) (tensor or array), the
            two of a row of the same shape; e.g. ``{"batch: P Pᵀ (B x B)": (...), "class: PᵀP (K x K)": (...)}``.
        labels: row title -> n tick labels for both axes of that row (or None for none).
        names: column titles of the two matrices.
        difference: add the |teacher − student| column.
        cmap: colour map of the matrices (the difference uses ``"magma"``).
        annotate: write the values in the cells (default: when n <= 6).
        title: optional figure title.
        shared_scale: one colour scale for all rows' matrices (and one for all differences).

    Returns:
        Figure with ``len(pairs)`` rows of 2 (or 3) heat maps and their colour bars.
    """
    if not isinstance(pairs, Mapping) or not pairs:
        raise ValueError(f"pairs must be a non-empty dict of row title -> (teacher, student) matrices, got {pairs!r}")
    labels = dict(labels or {})
    unknown = sorted(set(labels) - set(pairs))
    if unknown:
        raise ValueError(f"labels names rows that are not in pairs: {unknown}")
    rows = []
    for row, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"pairs[{row!r}] must be a (teacher, student) pair of matrices, got {type(pair).__name__}")
        a, b = (check_rank(to_numpy(m, f"pairs[{row!r}]"), f"pairs[{row!r}]", (2,), "(n, n)") for m in pair)
        if a.shape[0] != a.shape[1] or a.shape != b.shape:
            raise ValueError(f"pairs[{row!r}] must hold two square matrices of the same shape, got {a.shape} "
                             f"and {b.shape}")
        names_row = labels.get(row)
        if names_row is not None and len(names_row) != a.shape[0]:
            raise ValueError(f"labels[{row!r}] must have {a.shape[0]} names, got {len(names_row)}")
        rows.append((str(row), a, b, names_row))
    cols = 3 if difference else 2
    side = 2.9
    fig = Figure(figsize=(cols * side + 1.2, len(rows) * side + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    every = [m for _, a, b, _ in rows for m in (a, b)]
    span = (float(min(m.min() for m in every)), float(max(m.max() for m in every)))
    diff_hi = float(max(np.abs(a - b).max() for _, a, b, _ in rows))
    for r, (row, a, b, names_row) in enumerate(rows):
        lo, hi = span if shared_scale else (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
        show = a.shape[0] <= 6 if annotate is None else annotate
        image = None
        for c, (m, who) in enumerate(((a, names[0]), (b, names[1]))):
            ax = axes[r, c]
            image = draw_matrix(ax, m, names_row, annotate=show, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(f"{row}\n{who}", fontsize=9)
        fig.colorbar(image, ax=list(axes[r, :2]), shrink=0.85)
        if difference:
            ax = axes[r, 2]
            diff = np.abs(a - b)
            image = draw_matrix(ax, diff, names_row, annotate=show, cmap="magma", fmt=".3f",
                                **({"vmin": 0.0, "vmax": diff_hi} if shared_scale else {}))
            ax.set_title(f"{row}\n|{names[0]} - {names[1]}|", fontsize=9)
            fig.colorbar(image, ax=ax, shrink=0.85)
    if title:
        fig.suptitle(title)
    return fig
