"""The MLKD explorer (section 7 of the mlkd notebook): the three alignment levels over a pure function.

:class:`MLKDExplorer` takes the weak-view logits of a teacher and a student on a fixed batch and
shows, for a base temperature T and the levels switched on, the instance, batch and class terms of
:class:`kdteach.methods.mlkd.MLKD` (each summed over the temperatures (T, 3, 5, 2, 6), or at T alone)
with the method's weight and confidence-mask fractions, and the teacher's and the student's B x B
and K x K matrices at T side by side (:func:`kdteach.viz.plot_similarity_pairs`). The logic is
:func:`mlkd_explorer_state`. Only the weak-view terms are shown: the strong view needs the images
and the networks, which a widget over fixed logits does not run.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["LEVELS", "mlkd_explorer_state", "MLKDExplorer"]

#: the three alignment levels, in the paper's order
LEVELS = ("instance", "batch", "class")


def _as_logits(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, K) with B >= 2 and K >= 2, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point (B, K) tensor, got dtype {t.dtype}")
    return t.detach().float().cpu()


def mlkd_explorer_state(student_logits: Any, teacher_logits: Any, temperature: float = 4.0,
                        levels: Sequence[str] = LEVELS, multi_temperature: bool = True,
                        kd_weight: float | None = None) -> dict:
    """The weak-view MLKD terms of one batch for a base temperature T and a choice of levels.

    Instance: Σ_τ :func:`kdteach.losses.kd_loss`; batch: Σ_τ :func:`kdteach.losses.mlkd_batch_loss`;
    class: Σ_τ :func:`kdteach.losses.mlkd_class_loss`; τ over :func:`kdteach.methods.mlkd.temperatures`
    (T, 3, 5, 2, 6) when ``multi_temperature``, else T alone (Jin, Wang, Lin, CVPR 2023). The weighted
    terms are as :class:`~kdteach.methods.mlkd.MLKD` weights its weak-view terms: ``kd_weight`` times the
    prediction-confidence mask fraction m_b (instance, batch) or the class-confidence fraction m_c (class),
    both from the teacher's logits (:func:`~kdteach.methods.mlkd.confidence_masks`).

    Args:
        student_logits, teacher_logits: (B, K) logits of the same batch (B, K >= 2).
        temperature: base T > 0 (the method's default 4).
        levels: the levels switched on, a subset of :data:`LEVELS`; the others are computed and shown
            but left out of ``total``.
        multi_temperature: sum over the five temperatures (the method) or use T alone.
        kd_weight: α >= 0; None takes the method's default (0.9).

    Returns:
        dict with ``temperature`` (T), ``temperatures`` (tuple), ``levels`` (tuple, in :data:`LEVELS` order), ``mask_batch``
        (m_b) and ``mask_class`` (m_c) floats, ``terms`` and ``weighted`` (level -> float, unweighted
        sums and weighted terms), ``total`` (float, the weighted terms of the levels switched on), and
        the matrices at T: ``teacher_batch``, ``student_batch`` (B, B) = P Pᵀ and ``teacher_class``,
        ``student_class`` (K, K) = PᵀP (tensors).

    Raises:
        ValueError: logits not (B, K) floating point or of different shapes, temperature not > 0, an
            unknown level, kd_weight negative or not finite.
    """
    from kdteach.losses import kd_loss, mlkd_batch_loss, mlkd_class_loss, softened_probs
    from kdteach.methods.mlkd import MLKD, confidence_masks, temperatures

    z_s = _as_logits(student_logits, "student_logits")
    z_t = _as_logits(teacher_logits, "teacher_logits")
    if z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    chosen = [levels] if isinstance(levels, str) else list(levels)
    unknown = [lv for lv in chosen if lv not in LEVELS]
    if unknown:
        raise ValueError(f"levels must be a subset of {LEVELS}, got {unknown}")
    alpha = MLKD.defaults["kd_weight"] if kd_weight is None else kd_weight
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"kd_weight must be a finite number >= 0, got {kd_weight!r}")
    taus = temperatures(temperature) if multi_temperature else (float(temperature),)
    with torch.no_grad():
        m_b, m_c = (float(m) for m in confidence_masks(z_t))
        terms = {"instance": float(sum(kd_loss(z_s, z_t, t) for t in taus)),
                 "batch": float(sum(mlkd_batch_loss(z_s, z_t, t) for t in taus)),
                 "class": float(sum(mlkd_class_loss(z_s, z_t, t) for t in taus))}
        p_s, p_t = softened_probs(z_s, temperature), softened_probs(z_t, temperature)
    scale = {"instance": alpha * m_b, "batch": alpha * m_b, "class": alpha * m_c}
    weighted = {lv: scale[lv] * terms[lv] for lv in LEVELS}
    on = tuple(lv for lv in LEVELS if lv in chosen)
    return {"temperature": float(temperature), "temperatures": taus, "levels": on, "mask_batch": m_b, "mask_class": m_c, "kd_weight": float(alpha),
            "terms": terms, "weighted": weighted, "total": sum(weighted[lv] for lv in on),
            "teacher_batch": p_t @ p_t.T, "student_batch": p_s @ p_s.T,
            "teacher_class": p_t.T @ p_t, "student_class": p_s.T @ p_s}


class MLKDExplorer(widgets.VBox):
    """A temperature slider, a switch for the five temperatures and a selection of levels; shows the
    weighted level terms (bars), a table of the terms, and the teacher's and the student's batch and
    class matrices at T on one colour scale per level.

    Args:
        student_logits, teacher_logits: (B, K) weak-view logits of the same batch.
        class_names: K class names (tick labels of the class matrices).
        temperature: starting base T (default: the method's 4).

    Attributes: ``temperature`` (slider), ``multi_temperature`` (checkbox), ``levels`` (multiple
    selection), ``output`` (Output), ``state`` (the latest :func:`mlkd_explorer_state` dict),
    ``last_figures`` (the bar chart and the matrices figure).
    """

    def __init__(self, student_logits: Any, teacher_logits: Any, class_names: Sequence[str],
                 temperature: float | None = None):
        from kdteach.methods.mlkd import MLKD

        super().__init__()
        temperature = MLKD.defaults["temperature"] if temperature is None else temperature
        self._z_s = _as_logits(student_logits, "student_logits")
        self._z_t = _as_logits(teacher_logits, "teacher_logits")
        class_names = [str(c) for c in class_names]
        if len(class_names) != self._z_s.shape[1]:
            raise ValueError(f"class_names has {len(class_names)} names, expected K = {self._z_s.shape[1]}")
        self.class_names = class_names
        mlkd_explorer_state(self._z_s, self._z_t, temperature)          # validate early
        slider = dict(continuous_update=False)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=10.0, step=0.5, description="T",
                                               **slider)
        self.multi_temperature = widgets.Checkbox(value=True, description="five temperatures (T, 3, 5, 2, 6)")
        self.levels = widgets.SelectMultiple(options=list(LEVELS), value=list(LEVELS), description="levels",
                                             rows=3)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figures: tuple[Figure, Figure] | None = None
        for w in (self.temperature, self.multi_temperature, self.levels):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.temperature, self.multi_temperature]), self.levels, self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figures for the current controls (the controls call this)."""
        from kdteach.viz import plot_similarity_pairs

        state = mlkd_explorer_state(self._z_s, self._z_t, self.temperature.value, self.levels.value,
                                    self.multi_temperature.value)
        bars = Figure(figsize=(6.0, 2.8))
        ax = bars.subplots()
        bars.subplots_adjust(left=0.12, right=0.98, bottom=0.15, top=0.85)
        colors = ["tab:blue" if lv in state["levels"] else "lightgray" for lv in LEVELS]
        ax.bar(list(LEVELS), [state["weighted"][lv] for lv in LEVELS], color=colors)
        ax.set_yscale("log")
        ax.set_ylabel("weighted term (log scale)")
        ax.set_title(f"T = {state['temperature']:g}, "
                     f"{len(state['temperatures'])} temperature(s); grey: switched off", fontsize=9)
        matrices = plot_similarity_pairs(
            {"batch: P P^T": (state["teacher_batch"], state["student_batch"]),
             "class: P^T P": (state["teacher_class"], state["student_class"])},
            labels={"class: P^T P": self.class_names}, annotate=False,
            title=f"Similarity matrices at T = {state['temperature']:g} (one colour scale per row)")
        rows = [[lv, "on" if lv in state["levels"] else "off", f"{state['terms'][lv]:.6f}",
                 f"{state['weighted'][lv]:.6f}"] for lv in LEVELS]
        table = _html_table(["level", "in total", "sum over temperatures", "weighted"], rows)
        summary = (f"masks: m_b = {state['mask_batch']:.2f}, m_c = {state['mask_class']:.2f}; "
                   f"total of the levels on = {state['total']:.6f}")
        self.state, self.last_figures = state, (bars, matrices)
        self.output.outputs = (_figure_output(bars, "Figure: weighted MLKD level terms"),
                               _html_output(table + f"<p>{html.escape(summary)}</p>", summary),
                               _figure_output(matrices, "Figure: teacher and student similarity matrices"))
        return state
