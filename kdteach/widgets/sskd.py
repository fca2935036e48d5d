"""The SSKD selection explorer (section 7 of the sskd notebook): which rows the similarity term distils.

:class:`SSKDSelectionExplorer` takes a teacher's and a student's stored (3n, n) contrastive similarity
matrices and lets the reader move ``ratio_ss`` (the share of the teacher's wrong rows kept) and the
temperature: it shows the kept rows on both matrices and the value of :func:`kdteach.losses.sskd_ss_loss`.
The logic is :func:`sskd_selection_state`; nothing is trained.

Reference: G. Xu, Z. Liu, X. Li, C. C. Loy, "Knowledge Distillation Meets Self-Supervision", ECCV 2020.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["sskd_selection_state", "SSKDSelectionExplorer"]


def sskd_selection_state(teacher_similarity: torch.Tensor, student_similarity: torch.Tensor, keep_ratio: float = 0.75,
                         temperature: float = 0.5) -> dict:
    """The rows SSKD's similarity term keeps and its value for one (3n, n) pair of matrices.

    Returns:
        dict with ``kept`` (row indices), ``wrong`` (rows where the teacher's top column is not the row's own
        image), ``loss`` (:func:`kdteach.losses.sskd_ss_loss`), ``teacher_accuracy`` and ``student_accuracy``
        (percent of rows whose top column is their own image), ``keep_ratio``, ``temperature``.

    Raises:
        ValueError: the matrices differ in shape or are not (k·n, n); a bad ratio or temperature.
    """
    from kdteach.losses import error_rank_keep, sskd_ss_loss, view_targets

    t = torch.as_tensor(teacher_similarity).detach().float().cpu()
    s = torch.as_tensor(student_similarity).detach().float().cpu()
    loss = float(sskd_ss_loss(s, t, temperature, keep_ratio))          # validates shapes and values
    m, n = t.shape
    target = view_targets(n, m // n)
    kept = error_rank_keep(t, target, keep_ratio)
    wrong = (t.argmax(1) != target).nonzero().flatten()
    return {"kept": kept.tolist(), "wrong": wrong.tolist(), "loss": loss, "keep_ratio": float(keep_ratio),
            "temperature": float(temperature),
            "teacher_accuracy": 100.0 * float((t.argmax(1) == target).float().mean()),
            "student_accuracy": 100.0 * float((s.argmax(1) == target).float().mean())}


class SSKDSelectionExplorer(widgets.VBox):
    """Sliders for ``ratio_ss`` and the temperature over stored teacher and student similarity matrices;
    shows the kept rows on both matrices and the similarity term (:func:`sskd_selection_state`).

    Attributes: ``keep_ratio``, ``temperature`` (controls), ``output``, ``state``, ``last_figure``.
    """

    def __init__(self, teacher_similarity, student_similarity, keep_ratio: float = 0.75, temperature: float = 0.5):
        super().__init__()
        sskd_selection_state(teacher_similarity, student_similarity, keep_ratio, temperature)   # validate early
        self._t, self._s = teacher_similarity, student_similarity
        self.keep_ratio = widgets.FloatSlider(value=keep_ratio, min=0.0, max=1.0, step=0.05, description="ratio_ss")
        self.temperature = widgets.FloatLogSlider(value=temperature, base=10, min=-1.5, max=1, step=0.05,
                                                  description="ss_T")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.keep_ratio, self.temperature):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.keep_ratio, self.temperature]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        from kdteach.viz import plot_contrastive_similarity

        st = sskd_selection_state(self._t, self._s, self.keep_ratio.value, self.temperature.value)
        fig = plot_contrastive_similarity({"teacher": self._t, "student": self._s}, kept=st["kept"],
                                          title="kept rows marked on the left (one colour scale)")
        header = ["rows kept", "teacher wrong rows", "ss loss", "teacher top-1 (%)", "student top-1 (%)"]
        row = [str(len(st["kept"])), str(len(st["wrong"])), f"{st['loss']:.4f}", f"{st['teacher_accuracy']:.1f}",
               f"{st['student_accuracy']:.1f}"]
        plain = "; ".join(f"{h} {v}" for h, v in zip(header, row))
        caption = html.escape(f"ratio_ss = {st['keep_ratio']:.2f}, ss_T = {st['temperature']:.3g}:")
        self.state, self.last_figure = st, fig
        self.output.outputs = (_figure_output(fig, "Figure: contrastive similarity matrices, kept rows"),
                               _html_output(f"<p>{caption}</p>{_html_table(header, [row])}", plain))
        return st
