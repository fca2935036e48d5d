"""The DKD explorer (section 7 of the dkd notebook): TCKD, NCKD and KD on fixed logits, over a pure function.

DKD (Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", CVPR 2022) writes KD's soft
term as TCKD + (1 − p_t^teacher) · NCKD and trains on α · TCKD + β · NCKD instead.
:func:`dkd_explorer_state` computes both parts (:func:`kdteach.losses.dkd_terms`), the DKD loss
(:func:`kdteach.losses.dkd_loss`) and KD (:func:`kdteach.losses.kd_loss`) for given α, β, T, plus
the weight KD gives NCKD on each image; :class:`DKDExplorer` puts sliders on α, β, T and the example
shown, with the target / non-target probability bars (:func:`kdteach.viz.plot_decoupled_distributions`).
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from .kd import _as_logits, _weight

__all__ = ["dkd_explorer_state", "DKDExplorer"]


def dkd_explorer_state(student_logits: Any, teacher_logits: Any, labels: Any, alpha: float, beta: float,
                       temperature: float) -> dict:
    """Everything the DKD explorer shows for one (α, β, T) (Zhao et al., CVPR 2022, Sec. 3).

    TCKD and NCKD are T² · KL of the binary probabilities b = [p_t, 1 − p_t] and of the non-target
    probabilities p̂, averaged over the batch (:func:`kdteach.losses.dkd_terms`); the DKD loss is
    α · TCKD + β · NCKD (:func:`kdteach.losses.dkd_loss`), KD is :func:`kdteach.losses.kd_loss`.
    Per image, KD = TCKD + (1 − p_t^teacher) · NCKD: KD's weight on NCKD is the teacher's softened
    probability outside the target class.

    Args:
        student_logits: (B, C) student logits z_s, C >= 2.
        teacher_logits: (B, C) teacher logits z_t.
        labels: (B,) integer class labels in [0, C) (the target classes).
        alpha: α >= 0, the weight of TCKD (the dkd method's default 1).
        beta: β >= 0, the weight of NCKD (the dkd method's default 8).
        temperature: T > 0.

    Returns:
        dict with ``alpha``, ``beta``, ``temperature``; floats ``tckd``, ``nckd`` (unweighted batch
        means), ``weighted_tckd`` = α·tckd, ``weighted_nckd`` = β·nckd, ``dkd`` (their sum), ``kd``;
        ``kd_nckd_weight`` ((B,) tensor: 1 − p_t^teacher per image) and its batch mean
        ``mean_kd_nckd_weight``; (B,) tensors ``tckd_per_image``, ``nckd_per_image``; (B, C)
        ``teacher_probs``, ``student_probs`` at T; (B, 2) ``teacher_binary``, ``student_binary``;
        (B, C) ``teacher_nontarget``, ``student_nontarget`` (0 in the target column).

    Raises:
        ValueError: logits not (B, C) floating point with C >= 2, shapes that differ, labels not (B,)
            indices in [0, C), α or β negative or not finite, T not > 0.
        TypeError: labels not integers.
    """
    from kdteach.losses import (binary_probs, dkd_loss, dkd_terms, kd_loss, nontarget_probs,
                                softened_probs)

    z_s = _as_logits(student_logits, "student_logits").float()
    z_t = _as_logits(teacher_logits, "teacher_logits").float()
    if z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    y = torch.as_tensor(labels, device=z_s.device)
    alpha, beta = _weight(alpha, "alpha"), _weight(beta, "beta")
    with torch.no_grad():
        tckd_i, nckd_i = dkd_terms(z_s, z_t, y, temperature, reduction="none")   # validates labels and T
        tckd, nckd = dkd_terms(z_s, z_t, y, temperature)
        t_bin = binary_probs(z_t, y, temperature)
        state = {
            "alpha": alpha, "beta": beta, "temperature": float(temperature),
            "tckd": float(tckd), "nckd": float(nckd),
            "weighted_tckd": alpha * float(tckd), "weighted_nckd": beta * float(nckd),
            "dkd": float(dkd_loss(z_s, z_t, y, alpha, beta, temperature)),
            "kd": float(kd_loss(z_s, z_t, temperature)),
            "kd_nckd_weight": t_bin[:, 1], "mean_kd_nckd_weight": float(t_bin[:, 1].mean()),
            "tckd_per_image": tckd_i, "nckd_per_image": nckd_i,
            "teacher_probs": softened_probs(z_t, temperature), "student_probs": softened_probs(z_s, temperature),
            "teacher_binary": t_bin, "student_binary": binary_probs(z_s, y, temperature),
            "teacher_nontarget": nontarget_probs(z_t, y, temperature),
            "student_nontarget": nontarget_probs(z_s, y, temperature),
        }
    return state


class DKDExplorer(widgets.VBox):
    """Sliders for α (TCKD weight), β (NCKD weight), the temperature T and the example shown;
    displays the example's softened, binary and non-target probabilities (teacher and student) and
    the batch's α·TCKD, β·NCKD, their sum (DKD) and KD side by side (Zhao et al., CVPR 2022).

    Args:
        student_logits: (B, C) student logits.
        teacher_logits: (B, C) teacher logits.
        labels: (B,) integer labels.
        class_names: C class names (figure tick labels).
        alpha, beta, temperature: starting values; None takes the ``dkd`` method's default
            (:attr:`kdteach.methods.dkd.DKD.defaults`: α = 1, β = 8, T = 4).

    Attributes: ``alpha``, ``beta``, ``temperature``, ``sample`` (sliders), ``output`` (Output),
    ``state`` (the latest :func:`dkd_explorer_state` dict), ``last_figure`` (the loss chart).
    """

    def __init__(self, student_logits: Any, teacher_logits: Any, labels: Any, class_names: Sequence[str],
                 alpha: float | None = None, beta: float | None = None, temperature: float | None = None):
        from kdteach.methods.dkd import DKD

        super().__init__()
        alpha = DKD.defaults["alpha"] if alpha is None else alpha
        beta = DKD.defaults["beta"] if beta is None else beta
        temperature = DKD.defaults["temperature"] if temperature is None else temperature
        self._z_s = _as_logits(student_logits, "student_logits").float()
        self._z_t = _as_logits(teacher_logits, "teacher_logits").float()
        self._y = torch.as_tensor(labels)
        class_names = [str(c) for c in class_names]
        if len(class_names) != self._z_s.shape[1]:
            raise ValueError(f"class_names has {len(class_names)} names, expected C = {self._z_s.shape[1]}")
        self.class_names = class_names
        dkd_explorer_state(self._z_s, self._z_t, self._y, alpha, beta, temperature)   # validate early
        slider = dict(continuous_update=False)  # one update per release, not per pixel dragged
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=4.0, step=0.25, description="alpha (TCKD)", **slider)
        self.beta = widgets.FloatSlider(value=beta, min=0.0, max=16.0, step=0.5, description="beta (NCKD)", **slider)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T",
                                               **slider)
        for w in (self.alpha, self.beta):
            w.style.description_width = "initial"
        self.sample = widgets.IntSlider(value=0, min=0, max=self._z_s.shape[0] - 1, description="example", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.alpha, self.beta, self.temperature, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.alpha, self.beta]), widgets.HBox([self.temperature, self.sample]),
                         self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figures for the current slider values (sliders call this)."""
        from kdteach.viz import plot_decoupled_distributions

        state = dkd_explorer_state(self._z_s, self._z_t, self._y, self.alpha.value, self.beta.value,
                                   self.temperature.value)
        i = self.sample.value
        bars = plot_decoupled_distributions(self._z_t[i], self._y[i:i + 1], state["temperature"], self.class_names,
                                            student_logits=self._z_s[i],
                                            title=f"example {i}, label: {self.class_names[int(self._y[i])]}")
        bars.set_size_inches(11, 2.8)
        fig = Figure(figsize=(7, 2.8))  # fixed margins: a layout engine doubles the draw time
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.86)
        parts = ["alpha TCKD", "beta NCKD", "DKD total", "KD"]
        values = [state["weighted_tckd"], state["weighted_nckd"], state["dkd"], state["kd"]]
        ax.bar(parts, values, color=["tab:green", "tab:purple", "black", "tab:gray"])
        ax.set_title(f"loss over the batch: alpha = {state['alpha']:g}, beta = {state['beta']:g}, "
                     f"T = {state['temperature']:g}", fontsize="small")
        w_i = float(state["kd_nckd_weight"][i])
        summary = (f"alpha = {state['alpha']:g}, beta = {state['beta']:g}, T = {state['temperature']:g}: "
                   f"TCKD = {state['tckd']:.4f}, NCKD = {state['nckd']:.4f}, "
                   f"DKD = alpha TCKD + beta NCKD = {state['dkd']:.4f}; KD = {state['kd']:.4f}. "
                   f"KD weights NCKD by 1 - p_t(teacher): {w_i:.3f} on example {i}, "
                   f"{state['mean_kd_nckd_weight']:.3f} on average over the batch.")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(bars, "Figure: target / non-target probabilities of the example"),
                               _figure_output(fig, "Figure: TCKD, NCKD, DKD and KD over the batch"),
                               _html_output(f"<p>{html.escape(summary)}</p>", summary))
        return state
