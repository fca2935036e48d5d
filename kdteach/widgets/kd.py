"""The KD temperature explorer (section 7 of the kd notebook): Hinton et al.'s loss over a pure function.

:class:`KDTemperatureExplorer` varies the temperature T and the two loss weights of the ``kd`` method,
α_CE = ``ce_weight`` and α_KD = ``kd_weight`` (total = ce_weight · CE + kd_weight · KD, exactly as
:class:`kdteach.methods.kd.KD` weights its terms), and shows the softened distributions and the loss
split; the logic is :func:`kd_explorer_state`. The two weights are independent sliders, as they are
independent hyper-parameters of the method (their defaults, 0.1 and 0.9, happen to sum to 1).
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output

__all__ = ["kd_explorer_state", "KDTemperatureExplorer"]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """(B,) Shannon entropy in nats of the rows of (B, C) probabilities."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)


def _as_logits(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, C) with B >= 1 and C >= 2, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point (B, C) tensor, got dtype {t.dtype}")
    return t.detach()


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def kd_explorer_state(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float,
                      ce_weight: float, kd_weight: float) -> dict:
    """Everything the KD explorer shows for one (T, α_CE, α_KD): Hinton et al. (2015)'s loss, split.

    total = ce_weight · CE(z_s, y) + kd_weight · KD, with KD = T² · (1/B) Σ_i KL(p_t,i ‖ p_s,i)
    (:func:`kdteach.losses.kd_loss`) and p = softmax(z / T) (:func:`kdteach.losses.softened_probs`):
    the weighting of :class:`kdteach.methods.kd.KD` (Hinton, Vinyals, Dean, arXiv:1503.02531, Sec. 2).

    Args:
        student_logits: (B, C) student logits z_s.
        teacher_logits: (B, C) teacher logits z_t.
        labels: (B,) integer class labels y in [0, C).
        temperature: T > 0.
        ce_weight: α_CE >= 0, the weight of the hard-label cross-entropy (the method's default 0.1).
        kd_weight: α_KD >= 0, the weight of the soft-target term (the method's default 0.9).

    Returns:
        dict with ``temperature``, ``ce_weight``, ``kd_weight``; ``teacher_probs`` and
        ``student_probs`` ((B, C) tensors at temperature T); ``teacher_entropy`` and
        ``student_entropy`` (mean over the batch, nats); floats ``ce``, ``kd`` (unweighted),
        ``weighted_ce`` = ce_weight·ce, ``weighted_kd`` = kd_weight·kd, ``total`` (their sum).

    Raises:
        ValueError: logits not (B, C) floating point or of different shapes, labels not (B,)
            integers in [0, C), temperature not > 0, a weight negative or not finite.
    """
    from kdteach.losses import kd_loss, softened_probs

    z_s = _as_logits(student_logits, "student_logits")
    z_t = _as_logits(teacher_logits, "teacher_logits")
    if z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    y = torch.as_tensor(labels, device=z_s.device)
    if y.dim() != 1 or y.shape[0] != z_s.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({z_s.shape[0]},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z_s.shape[1]):
        raise ValueError(f"labels must lie in [0, {z_s.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    temperature = float(temperature)
    ce_weight, kd_weight = _weight(ce_weight, "ce_weight"), _weight(kd_weight, "kd_weight")
    with torch.no_grad():
        p_t = softened_probs(z_t, temperature)
        p_s = softened_probs(z_s, temperature)
        ce = float(F.cross_entropy(z_s.float(), y.long()))
        kd = float(kd_loss(z_s, z_t, temperature))
    return {
        "temperature": temperature, "ce_weight": ce_weight, "kd_weight": kd_weight,
        "teacher_probs": p_t, "student_probs": p_s,
        "teacher_entropy": float(_entropy(p_t).mean()), "student_entropy": float(_entropy(p_s).mean()),
        "ce": ce, "kd": kd, "weighted_ce": ce_weight * ce, "weighted_kd": kd_weight * kd,
        "total": ce_weight * ce + kd_weight * kd,
    }


class KDTemperatureExplorer(widgets.VBox):
    """Sliders for the temperature T, the weights α_CE = ``ce_weight`` and α_KD = ``kd_weight`` and
    the example shown; displays the softened teacher and student distributions of that example and
    the loss split ce_weight·CE + kd_weight·KD over the batch (Hinton, Vinyals, Dean 2015).

    Args:
        student_logits: (B, C) student logits.
        teacher_logits: (B, C) teacher logits.
        labels: (B,) integer labels.
        class_names: C class names (figure tick labels).
        temperature, ce_weight, kd_weight: starting values; None takes the ``kd`` method's default
            (:attr:`kdteach.methods.kd.KD.defaults`: T = 4, 0.1, 0.9).

    Attributes: ``temperature``, ``ce_weight``, ``kd_weight``, ``sample`` (sliders), ``output``
    (Output), ``state`` (the latest :func:`kd_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, student_logits: Any, teacher_logits: Any, labels: Any, class_names: Sequence[str],
                 temperature: float | None = None, ce_weight: float | None = None, kd_weight: float | None = None):
        from kdteach.methods.kd import KD

        super().__init__()
        temperature = KD.defaults["temperature"] if temperature is None else temperature
        ce_weight = KD.defaults["ce_weight"] if ce_weight is None else ce_weight
        kd_weight = KD.defaults["kd_weight"] if kd_weight is None else kd_weight
        self._z_s = _as_logits(student_logits, "student_logits")
        self._z_t = _as_logits(teacher_logits, "teacher_logits")
        self._y = torch.as_tensor(labels)
        class_names = [str(c) for c in class_names]
        if len(class_names) != self._z_s.shape[1]:
            raise ValueError(f"class_names has {len(class_names)} names, expected C = {self._z_s.shape[1]}")
        self.class_names = class_names
        kd_explorer_state(self._z_s, self._z_t, self._y, temperature, ce_weight, kd_weight)  # validate early
        slider = dict(continuous_update=False)  # one update per release, not per pixel dragged
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T", **slider)
        self.ce_weight = widgets.FloatSlider(value=ce_weight, min=0.0, max=1.0, step=0.05,
                                             description="α_CE (ce_weight)", **slider)
        self.kd_weight = widgets.FloatSlider(value=kd_weight, min=0.0, max=1.0, step=0.05,
                                             description="α_KD (kd_weight)", **slider)
        for w in (self.ce_weight, self.kd_weight):
            w.style.description_width = "initial"
        self.sample = widgets.IntSlider(value=0, min=0, max=self._z_s.shape[0] - 1, description="example", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.temperature, self.ce_weight, self.kd_weight, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.temperature, self.sample]),
                         widgets.HBox([self.ce_weight, self.kd_weight]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current slider values (sliders call this)."""
        state = kd_explorer_state(self._z_s, self._z_t, self._y, self.temperature.value,
                                  self.ce_weight.value, self.kd_weight.value)
        i = self.sample.value
        fig = Figure(figsize=(11, 3.6))  # fixed margins: a layout engine doubles the draw time
        ax_p, ax_l = fig.subplots(1, 2, width_ratios=[2, 1])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.24, top=0.9, wspace=0.2)
        x = torch.arange(len(self.class_names)).tolist()
        ax_p.bar([v - 0.2 for v in x], state["teacher_probs"][i].tolist(), width=0.4, label="teacher")
        ax_p.bar([v + 0.2 for v in x], state["student_probs"][i].tolist(), width=0.4, label="student")
        ax_p.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_p.set_ylabel(f"softmax(z / T), T = {state['temperature']:g}")
        ax_p.set_title(f"example {i}, label: {self.class_names[int(self._y[i])]}")
        ax_p.legend(fontsize="small")
        parts = [r"$\alpha_{CE}$ CE", r"$\alpha_{KD}$ KD", "total"]
        values = [state["weighted_ce"], state["weighted_kd"], state["total"]]
        ax_l.bar(parts, values, color=["tab:gray", "tab:purple", "black"])
        ax_l.set_title(f"loss over the batch, ce_weight = {state['ce_weight']:g}, kd_weight = {state['kd_weight']:g}",
                       fontsize="small")
        summary = (f"T = {state['temperature']:g}, ce_weight = {state['ce_weight']:g}, "
                   f"kd_weight = {state['kd_weight']:g}: CE = {state['ce']:.4f}, KD = {state['kd']:.4f}, "
                   f"total = {state['total']:.4f}; mean entropy teacher {state['teacher_entropy']:.3f}, "
                   f"student {state['student_entropy']:.3f} nats")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: softened distributions and loss split"),
                               _html_output(f"<p>{html.escape(summary)}</p>", summary))
        return state
