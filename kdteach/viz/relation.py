"""The RKD figure: the teacher's and the students' pairwise-distance matrices, images sorted by class.

Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019: RKD transfers the *relations*
among the examples of a batch, the mean-normalised pairwise distances of their embeddings (the
distance potential ψ_D, Eq. 4-5, :func:`kdteach.losses.rkd_distance_potential`). With the images of
a batch sorted by class, a network that groups the classes draws dark blocks on the diagonal; the
figure puts the teacher's matrix next to each student's, before (trained alone) and after
(distilled), on one colour scale (the rows of :func:`kdteach.viz.plot_similarity_pairs` with
``shared_scale=True``), with lines between the classes.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .similarity import plot_similarity_pairs

__all__ = ["plot_relation_matrices"]


def plot_relation_matrices(teacher: torch.Tensor, students: Mapping[str, torch.Tensor], labels: torch.Tensor,
                           class_names: Sequence[str] | None = None,
                           relation: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           title: str | None = None, cmap: str = "viridis") -> Figure:
    """One row per student: the teacher's relation matrix, the student's, and |teacher − student|, the
    B images of the batch sorted by class, every matrix on one shared colour scale (and every
    difference on another).

    Args:
        teacher: (B, D_t) teacher embeddings of the batch (e.g. the ``"pool"`` features).
        students: row title -> (B, D_s) student embeddings of the same B images, e.g.
            ``{"student alone": ..., "RKD student": ...}``; dimensions may differ from the teacher's.
        labels: (B,) integer class labels of the images (the sort key; a stable sort keeps the
            batch order within a class).
        class_names: optional names of the classes, written at the centre of each class block.
        relation: (B, D) -> (B, B) relation of a batch (default:
            :func:`kdteach.losses.rkd_distance_potential`, the distances divided by their mean).
        title: optional figure title; cmap: colour map of the matrices.

    Returns:
        Figure with ``len(students)`` rows of three heat maps and their colour bars.

    Raises:
        ValueError: no students, labels not (B,) integers, or embeddings of another batch size.
    """
    from kdteach.losses import rkd_distance_potential

    relation = rkd_distance_potential if relation is None else relation
    if not isinstance(students, Mapping) or not students:
        raise ValueError(f"students must be a non-empty dict of row title -> (B, D) embeddings, got {students!r}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be a (B,) tensor of integer class labels, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    b = labels.shape[0]
    for name, e in {"teacher": teacher, **{f"students[{k!r}]": v for k, v in students.items()}}.items():
        if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[0] != b:
            raise ValueError(f"{name} must be a ({b}, D) tensor of embeddings, one row per label, got "
                             f"{tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__}")
    order = torch.sort(labels.cpu(), stable=True).indices
    sorted_labels = labels.cpu()[order]
    with torch.no_grad():
        t = relation(teacher.detach().float().cpu()[order])
        pairs = {str(k): (t, relation(v.detach().float().cpu()[order])) for k, v in students.items()}
    fig = plot_similarity_pairs(pairs, names=("teacher", "student"), cmap=cmap, annotate=False, title=title,
                                shared_scale=True)
    classes, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    edges = np.cumsum(counts.numpy())
    centres = edges - counts.numpy() / 2 - 0.5
    names = [class_names[int(c)] if class_names is not None else str(int(c)) for c in classes]
    for ax in fig.axes:
        if not ax.images or ax.images[0].get_array().shape != (b, b):
            continue                                         # a colour bar
        for e in edges[:-1]:
            ax.axhline(e - 0.5, color="white", lw=0.6)
            ax.axvline(e - 0.5, color="white", lw=0.6)
        ax.set_xticks(centres, names, rotation=90, fontsize=7)
        ax.set_yticks(centres, names, fontsize=7)
    return fig
