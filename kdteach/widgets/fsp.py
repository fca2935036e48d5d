"""The FSP explorer (section 7 of the fsp notebook): FSP matrices of three models over a pure function.

Yim, Joo, Bae, Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and
Transfer Learning", CVPR 2017. :class:`FSPExplorer` shows, for one pair of consecutive stages and
one test image (or the mean over a batch), the FSP matrices of the teacher, the student trained
alone and the FSP student on one shared colour scale, with each student's FSP distance to the
teacher. No model runs inside: the per-image matrices come from :func:`kdteach.analysis.fsp_matrices`
and the logic is :func:`fsp_explorer_state`.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["fsp_explorer_state", "FSPExplorer"]

#: The three models of the explorer, in display order.
MODELS = ("teacher", "alone", "method")


def _check_matrices(matrices: Any, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(matrices, Mapping) or not matrices:
        raise ValueError(f"{name} must be a non-empty dict 'lower->upper' -> (N, C1, C2) FSP matrices "
                         f"(kdteach.analysis.fsp_matrices), got {type(matrices).__name__}")
    out = {}
    for pair, m in matrices.items():
        t = torch.as_tensor(m)
        if t.dim() != 3 or t.shape[0] == 0 or not t.is_floating_point():
            raise ValueError(f"{name}[{pair!r}] must be a floating-point (N, C1, C2) tensor with N >= 1, got "
                             f"shape {tuple(t.shape)} dtype {t.dtype}")
        out[str(pair)] = t.detach().float().cpu()
    return out


def _check_all(teacher: Any, alone: Any, method: Any) -> dict[str, dict[str, torch.Tensor]]:
    mats = {"teacher": _check_matrices(teacher, "teacher"), "alone": _check_matrices(alone, "alone"),
            "method": _check_matrices(method, "method")}
    pairs = list(mats["teacher"])
    for which in ("alone", "method"):
        if list(mats[which]) != pairs:
            raise ValueError(f"{which} must have the teacher's pairs {pairs}, got {list(mats[which])}")
        for pair in pairs:
            if mats[which][pair].shape != mats["teacher"][pair].shape:
                raise ValueError(f"{which}[{pair!r}] has shape {tuple(mats[which][pair].shape)}, expected the "
                                 f"teacher's {tuple(mats['teacher'][pair].shape)} (same images, equal widths)")
    n = {m.shape[0] for m in mats["teacher"].values()}
    if len(n) != 1:
        raise ValueError(f"every pair must hold the matrices of the same N images, got N = {sorted(n)}")
    return mats


def fsp_explorer_state(teacher: Mapping[str, Any], alone: Mapping[str, Any], method: Mapping[str, Any],
                       pair: str, image: int | None = None) -> dict:
    """Everything the FSP explorer shows for one pair of stages and one image (or the batch mean).

    FSP matrix (Yim et al., CVPR 2017, Eq. 1): G = (1/hw) Σ_{s,t} F¹_{s,t,:} F²_{s,t,:}ᵀ. FSP distance
    to the teacher: :func:`kdteach.losses.fsp_loss` between a student's and the teacher's per-image
    matrices over the selected images (the mean over N·C1·C2 entries of (G_s − G_t)²), i.e. the
    stage-1 loss, not the distance between the displayed mean matrices.

    Args:
        teacher: ``{"lower->upper": (N, C1, C2)}`` per-image FSP matrices of the teacher on N images.
        alone: the same for the student trained alone (same pairs, shapes and images).
        method: the same for the FSP student.
        pair: the pair shown, a key of ``teacher``.
        image: an image index in [0, N), or None for the mean over the N images.

    Returns:
        dict with ``pair``, ``image`` (None for the mean), ``n_images`` (images selected), ``pairs``;
        ``matrices``: ``{"teacher", "alone", "method"}`` -> (C1, C2) tensor shown (the image's
        matrix, or the mean over the images); ``vmin``, ``vmax``: the one colour scale shared by the
        three panels; ``distance``: ``{"alone", "method"}`` -> FSP distance to the teacher on
        ``pair``; ``distances``: ``{"alone", "method"}`` -> ``{pair: distance}`` for every pair;
        ``closer``: whether the FSP student is closer to the teacher than the student alone on ``pair``.

    Raises:
        ValueError: malformed matrices, an unknown ``pair``, or ``image`` out of range.
    """
    from kdteach.losses import fsp_loss

    mats = _check_all(teacher, alone, method)
    pairs = list(mats["teacher"])
    if pair not in mats["teacher"]:
        raise ValueError(f"pair must be one of {pairs}, got {pair!r}")
    n = mats["teacher"][pairs[0]].shape[0]
    if image is not None and (isinstance(image, bool) or not isinstance(image, int) or not 0 <= image < n):
        raise ValueError(f"image must be None (mean over the images) or an int in [0, {n}), got {image!r}")
    sel = slice(None) if image is None else slice(image, image + 1)
    shown = {m: mats[m][pair][sel].mean(0) for m in MODELS}
    vmin = min(float(a.min()) for a in shown.values())
    vmax = max(float(a.max()) for a in shown.values())
    distances = {s: {p: float(fsp_loss([mats[s][p][sel]], [mats["teacher"][p][sel]])) for p in pairs}
                 for s in ("alone", "method")}
    return {
        "pair": pair, "image": image, "n_images": n if image is None else 1, "pairs": pairs,
        "matrices": shown, "vmin": vmin, "vmax": vmax if vmax > vmin else vmin + 1.0,
        "distance": {s: distances[s][pair] for s in distances}, "distances": distances,
        "closer": distances["method"][pair] < distances["alone"][pair],
    }


class FSPExplorer(widgets.VBox):
    """Choose a pair of consecutive stages and a test image (or the batch mean); see the FSP matrices
    of the teacher, the student alone and the FSP student on one shared colour scale, and each
    student's FSP distance to the teacher for every pair (Yim et al., CVPR 2017).

    Args:
        teacher, alone, method: ``{"lower->upper": (N, C1, C2)}`` per-image FSP matrices of the three
            models on the same N images (:func:`kdteach.analysis.fsp_matrices`).
        labels: optional (N,) integer labels of the images (shown in the image menu).
        class_names: optional class names for ``labels``.
        method_label: the name of the method's student in titles and tables.

    Attributes: ``pair``, ``image`` (Dropdowns; image -1 is the mean), ``output`` (Output),
    ``state`` (the latest :func:`fsp_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, teacher: Mapping[str, Any], alone: Mapping[str, Any], method: Mapping[str, Any],
                 labels: Any = None, class_names: Sequence[str] | None = None, method_label: str = "FSP student"):
        super().__init__()
        self._mats = _check_all(teacher, alone, method)
        pairs = list(self._mats["teacher"])
        n = self._mats["teacher"][pairs[0]].shape[0]
        names = None
        if labels is not None:
            y = torch.as_tensor(labels)
            if y.dim() != 1 or y.shape[0] != n or y.is_floating_point():
                raise ValueError(f"labels must be an ({n},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
            if class_names is not None:
                class_names = [str(c) for c in class_names]
                if y.numel() and not 0 <= int(y.min()) <= int(y.max()) < len(class_names):
                    raise ValueError(f"labels must index class_names (0..{len(class_names) - 1}), got range "
                                     f"[{int(y.min())}, {int(y.max())}]")
                names = [class_names[int(v)] for v in y]
            else:
                names = [f"class {int(v)}" for v in y]
        self.method_label = str(method_label)
        options = [(f"mean over the {n} images", -1)]
        options += [(f"image {i}" + (f" ({names[i]})" if names else ""), i) for i in range(n)]
        self.pair = widgets.Dropdown(options=pairs, value=pairs[-1], description="stages")
        self.image = widgets.Dropdown(options=options, value=-1, description="image")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.pair, self.image):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.pair, self.image]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state, the figure and the table for the current choices (the menus call this)."""
        from kdteach.viz import plot_fsp_matrices

        image = None if self.image.value == -1 else int(self.image.value)
        m = self._mats
        state = fsp_explorer_state(m["teacher"], m["alone"], m["method"], self.pair.value, image)
        where = "mean over the images" if image is None else f"image {image}"
        panels = {"teacher": state["matrices"]["teacher"], "student alone": state["matrices"]["alone"],
                  self.method_label: state["matrices"]["method"]}
        fig = plot_fsp_matrices(panels, ncols=3, title=f"FSP matrices {state['pair']}, {where}: one colour scale")
        fig.set_dpi(80)
        body = [[p, f"{state['distances']['alone'][p]:.4f}", f"{state['distances']['method'][p]:.4f}"]
                for p in state["pairs"]]
        table = _html_table(["pair", "student alone", self.method_label], body)
        verdict = "closer to" if state["closer"] else "not closer to"
        summary = (f"FSP distance to the teacher ({where}; fsp_loss over per-image matrices): on {state['pair']} "
                   f"student alone {state['distance']['alone']:.4f}, {self.method_label} "
                   f"{state['distance']['method']:.4f}, so the {self.method_label} is {verdict} the teacher")
        self.state, self.last_figure = state, fig
        self.output.outputs = (
            _figure_output(fig, "Figure: FSP matrices of teacher, student alone and FSP student (one colour scale)"),
            _html_output(f"<p>{html.escape(summary)}</p>{table}", summary),
        )
        return state
