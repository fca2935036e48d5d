"""The batch similarity explorer (section 7 of the sp notebook): SP's G matrices for a batch you choose.

:class:`SimilarityExplorer` shows, for a batch of B consecutive stored images starting at an offset,
the teacher's and each student's row-normalised similarity matrices G (images sorted by class,
:func:`kdteach.viz.plot_relation_matrices` with :func:`kdteach.losses.sp_similarity`) and a table per
student of :func:`kdteach.losses.sp_loss` and B·sp_loss. Changing B shows how the loss, and so the
weight β it is multiplied by, depends on the batch size. The logic is :func:`sp_explorer_state`, a pure
function of stored features: no model is run and nothing is trained.

Reference: F. Tung, G. Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019 (arXiv:1907.09682).
"""

from __future__ import annotations

import html
import numbers
from typing import Mapping

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["sp_explorer_state", "SimilarityExplorer"]


def _check(features: Mapping[str, torch.Tensor], labels: torch.Tensor, teacher: str) -> int:
    if not isinstance(features, Mapping) or teacher not in features or len(features) < 2:
        got = list(features) if isinstance(features, Mapping) else type(features).__name__
        raise ValueError(f"features must be a dict holding the teacher {teacher!r} and at least one student, got {got}")
    n = None
    for name, f in features.items():
        if not isinstance(f, torch.Tensor) or f.dim() not in (2, 4) or 0 in f.shape:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"features[{name!r}] must be a (N, C, H, W) or (N, D) tensor, got {shape}")
        if n is None:
            n = f.shape[0]
        elif f.shape[0] != n:
            raise ValueError(f"features[{name!r}] has {f.shape[0]} images, expected N = {n} like the other features")
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a ({n},) tensor of integer class labels, got {shape}")
    return int(n)


def sp_explorer_state(features: Mapping[str, torch.Tensor], labels: torch.Tensor, batch_size: int, offset: int = 0,
                      teacher: str = "teacher") -> dict:
    """Everything the explorer shows for the batch of images ``offset .. offset + batch_size − 1``.

    Tung & Mori (ICCV 2019), Eq. 1-3: per model G = row-normalised Q·Qᵀ of the batch's flattened
    features (:func:`kdteach.losses.sp_similarity`), per student ``sp_loss`` against the teacher and
    B·``sp_loss`` (roughly constant in B when the similarities keep their spread: the loss itself shrinks
    about like 1/B).

    Args:
        features: model name -> (N, C, H, W) or (N, D) features of N stored images (the teacher and one or
            more students; widths and map sizes may differ).
        labels: (N,) integer class labels; batch_size: 2 <= B <= N; offset: 0 <= offset <= N − B.
        teacher: the key of the teacher in ``features``.

    Returns:
        dict with ``batch_size``, ``offset``, ``models`` (teacher first), ``labels`` ((B,) of the batch),
        ``features`` (model -> the batch's features, flattened to (B, D)), ``G`` (model -> (B, B)),
        ``loss`` and ``scaled`` (student -> sp_loss, B·sp_loss).

    Raises:
        ValueError: malformed ``features`` or ``labels``, ``batch_size`` or ``offset`` out of range.
    """
    from kdteach.losses import sp_loss, sp_similarity

    n = _check(features, labels, teacher)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not 2 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [2, {n}], got {batch_size!r}")
    if isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or not 0 <= offset <= n - batch_size:
        raise ValueError(f"offset must be an int in [0, {n - batch_size}] for batch_size {batch_size}, got {offset!r}")
    b, o = int(batch_size), int(offset)
    models = [teacher] + [m for m in features if m != teacher]
    with torch.no_grad():
        feats = {m: features[m][o:o + b].detach().double().cpu().flatten(1) for m in models}
        g = {m: sp_similarity(f) for m, f in feats.items()}
        loss = {m: float(sp_loss(feats[m], feats[teacher])) for m in models[1:]}
    return {"batch_size": b, "offset": o, "models": models, "labels": labels[o:o + b].cpu(), "features": feats,
            "G": g, "loss": loss, "scaled": {m: b * v for m, v in loss.items()}}


class SimilarityExplorer(widgets.VBox):
    """Pick a batch size B and an offset; see the teacher's and each student's G sorted by class and each
    student's sp_loss and B·sp_loss (Tung & Mori, ICCV 2019).

    Args:
        features: model name -> (N, ...) features, teacher included (see :func:`sp_explorer_state`).
        labels: (N,) integer labels; class_names: optional names for the class blocks.
        batch_size: initial B (clipped to N); teacher: the teacher's key.

    Attributes: ``batch_size``, ``offset`` (controls), ``output`` (Output), ``state`` (the latest
    :func:`sp_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, features: Mapping[str, torch.Tensor], labels: torch.Tensor, class_names=None,
                 batch_size: int = 32, teacher: str = "teacher"):
        super().__init__()
        n = _check(features, labels, teacher)
        b = max(2, min(int(batch_size), n))
        sp_explorer_state(features, labels, b, 0, teacher)      # validate once, early
        self._features, self._labels, self._names, self._teacher = features, labels, class_names, teacher
        self.batch_size = widgets.IntSlider(value=b, min=2, max=n, description="batch B")
        self.offset = widgets.IntSlider(value=0, min=0, max=n - b, description="offset")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        self.batch_size.observe(lambda _c: self._resize(), names="value")
        self.offset.observe(lambda _c: self.update(), names="value")
        self.children = (widgets.HBox([self.batch_size, self.offset]), self.output)
        self.update()

    def _resize(self) -> None:
        n = len(self._labels)
        self.offset.max = n - self.batch_size.value          # may clip offset.value (which then updates)
        self.update()

    def update(self) -> dict:
        """Recompute the state, figure and table for the current controls (the controls call this)."""
        from kdteach.losses import sp_similarity
        from kdteach.viz import plot_relation_matrices

        state = sp_explorer_state(self._features, self._labels, self.batch_size.value, self.offset.value, self._teacher)
        f, t = state["features"], state["models"][0]
        b, o = state["batch_size"], state["offset"]
        fig = plot_relation_matrices(f[t], {m: f[m] for m in state["models"][1:]}, state["labels"],
                                     class_names=self._names, relation=sp_similarity,
                                     title=f"G of images {o}..{o + b - 1} sorted by class (one colour scale)")
        header = ["student", "sp_loss", "B x sp_loss"]
        body = [[m, f"{state['loss'][m]:.5f}", f"{state['scaled'][m]:.4f}"] for m in state["models"][1:]]
        plain = "; ".join(f"{m}: sp_loss {state['loss'][m]:.5f}, B x sp_loss {state['scaled'][m]:.4f}"
                          for m in state["models"][1:])
        caption = html.escape(f"Batch of B = {b} images from {o}:")
        table = _html_output(f"<p>{caption}</p>{_html_table(header, body)}", plain)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, f"Figure: SP similarity matrices, B = {b}"), table)
        return state
