"""The soft-target explorer (section 7 of the understanding_kd notebook) over a pure function.

Tang et al., "Understanding and Improving Knowledge Distillation", arXiv:2002.03532 (2020): a
teacher's soft target is label smoothing, plus class relationships, plus a per-image rescaling of the
gradient by the teacher's confidence. :class:`KDEffectsExplorer` varies the temperature T, the
smoothing ε of the uniform target and whether the teacher's non-target probabilities are permuted,
and shows, for one image, the targets the student would be asked to match and, for every image of
the batch, the gradient norm each target gives against the teacher's confidence; the logic is
:func:`kd_effects_state` (losses from :mod:`kdteach.losses`, gradients from
:func:`kdteach.analysis.kd_gradient_norms`).
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import ipywidgets as widgets
import torch

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from .kd import _as_logits as _kd_logits

__all__ = ["kd_effects_state", "KDEffectsExplorer"]


def _as_logits(x: Any, name: str) -> torch.Tensor:
    """(B, K) float32 CPU logits with K >= 3 (the kd explorer's check, plus K >= 3 for the relations)."""
    t = _kd_logits(x, name)
    if t.shape[1] < 3:
        raise ValueError(f"{name} must have K >= 3 classes, got shape {tuple(t.shape)}")
    return t.float().cpu()


def kd_effects_state(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, epsilon: float,
                     permute: bool, seed: int = 0) -> dict:
    """Everything the explorer shows for one (T, ε, permute): the three targets and their gradients.

    The targets, at temperature T: the teacher's q = softmax(z_t / T), or with ``permute`` the same
    with its non-target entries shuffled per image (:func:`kdteach.losses.permute_nontarget`, CPU
    generator seeded with ``seed``); and the uniform smoothing (1 − ε) · onehot + ε / K
    (:func:`kdteach.losses.smoothed_targets`). For each, the KD term T² · KL(target ‖ softmax(z_s / T))
    over the batch (:func:`kdteach.losses.soft_target_loss`) and the per-image gradient norms
    (:func:`kdteach.analysis.kd_gradient_norms`), next to the cross-entropy's.

    Args:
        student_logits, teacher_logits: (B, K) logits, K >= 3.
        labels: (B,) integer labels in [0, K).
        temperature: T > 0.
        epsilon: ε in [0, 1].
        permute: whether the teacher's target has its class relationships removed.
        seed: seed of the permutation generator.

    Returns:
        dict with ``temperature``, ``epsilon``, ``permute``; (B, K) tensors ``teacher_probs``,
        ``target_probs`` (the teacher's, permuted or not) and ``smoothed_probs``; (B,) tensors
        ``teacher_confidence`` (softmax(z_t)(y), T = 1), ``grad_teacher``, ``grad_smoothed`` and
        ``grad_ce`` (per-image gradient norms), ``push_teacher``, ``push_smoothed`` and ``push_ce``
        (their components on the true class's logit); floats ``kd_teacher`` and ``kd_smoothed`` (the KD
        terms, unweighted) and ``matched_epsilon`` (the ε whose true class gets the batch's mean
        teacher probability at T, :func:`kdteach.losses.matched_epsilon`).

    Raises:
        ValueError: logits not (B, K) with K >= 3 or of different shapes, labels not (B,) in
            [0, K), T not > 0, ε outside [0, 1], ``permute`` not a bool.
    """
    from kdteach.analysis import kd_gradient_norms
    from kdteach.losses import matched_epsilon, permute_nontarget, smoothed_targets, soft_target_loss, softened_probs

    z_s = _as_logits(student_logits, "student_logits")
    z_t = _as_logits(teacher_logits, "teacher_logits")
    if z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != z_s.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({z_s.shape[0]},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= z_s.shape[1]:
        raise ValueError(f"labels must lie in [0, {z_s.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    y = y.long()
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not isinstance(permute, bool):
        raise ValueError(f"permute must be True or False, got {permute!r}")
    t, k = float(temperature), z_s.shape[1]
    p_t = softened_probs(z_t, t)
    target = permute_nontarget(p_t, y, torch.Generator().manual_seed(int(seed))) if permute else p_t
    smoothed = smoothed_targets(y, k, epsilon)      # validates epsilon
    g_teacher = kd_gradient_norms(z_s, z_t, y, t, target_probs=target)
    g_smoothed = kd_gradient_norms(z_s, z_t, y, t, target_probs=smoothed)
    return {
        "temperature": t, "epsilon": float(epsilon), "permute": permute,
        "teacher_probs": p_t, "target_probs": target, "smoothed_probs": smoothed,
        "teacher_confidence": g_teacher["teacher_confidence"],
        "grad_teacher": g_teacher["kd"], "grad_smoothed": g_smoothed["kd"], "grad_ce": g_teacher["ce"],
        "push_teacher": g_teacher["kd_target"], "push_smoothed": g_smoothed["kd_target"],
        "push_ce": g_teacher["ce_target"],
        "kd_teacher": float(soft_target_loss(z_s, target, t)), "kd_smoothed": float(soft_target_loss(z_s, smoothed, t)),
        "matched_epsilon": matched_epsilon(p_t, y),
    }


class KDEffectsExplorer(widgets.VBox):
    """Sliders for T, ε and the example, and a "permute the teacher" toggle; shows the targets of
    the example (teacher or permuted teacher, and uniform smoothing) and the per-image gradient
    norms of the batch against the teacher's confidence (Tang et al. 2020).

    Args:
        student_logits, teacher_logits: (B, K) logits (e.g. a student's and the teacher's on test images).
        labels: (B,) integer labels.
        class_names: K class names (figure tick labels).
        temperature: starting T (None: the ``kd_ls`` method's default, 4).
        epsilon: starting ε (None: the ``kd_ls`` method's default, 0.1).
        seed: seed of the permutation.

    Attributes: ``temperature``, ``epsilon``, ``sample`` (sliders), ``permute`` (ToggleButton),
    ``output`` (Output), ``state`` (the latest :func:`kd_effects_state` dict), ``figures`` (the
    latest two figures).
    """

    def __init__(self, student_logits: Any, teacher_logits: Any, labels: Any, class_names: Sequence[str],
                 temperature: float | None = None, epsilon: float | None = None, seed: int = 0):
        from kdteach.methods.understanding_kd import KDLabelSmoothing

        super().__init__()
        temperature = KDLabelSmoothing.defaults["temperature"] if temperature is None else temperature
        epsilon = KDLabelSmoothing.defaults["epsilon"] if epsilon is None else epsilon
        self._z_s = _as_logits(student_logits, "student_logits")
        self._z_t = _as_logits(teacher_logits, "teacher_logits")
        self._y = torch.as_tensor(labels)
        self._seed = int(seed)
        self.class_names = [str(c) for c in class_names]
        if len(self.class_names) != self._z_s.shape[1]:
            raise ValueError(f"class_names has {len(self.class_names)} names, expected K = {self._z_s.shape[1]}")
        kd_effects_state(self._z_s, self._z_t, self._y, temperature, epsilon, False, self._seed)   # validate early
        slider = dict(continuous_update=False)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T", **slider)
        self.epsilon = widgets.FloatSlider(value=epsilon, min=0.0, max=1.0, step=0.01, description="ε (epsilon)",
                                           **slider)
        self.epsilon.style.description_width = "initial"
        self.sample = widgets.IntSlider(value=0, min=0, max=self._z_s.shape[0] - 1, description="example", **slider)
        self.permute = widgets.ToggleButton(value=False, description="permute the teacher",
                                            tooltip="shuffle the teacher's non-target probabilities per image")
        self.output = widgets.Output()
        self.state: dict = {}
        self.figures: tuple = ()
        for w in (self.temperature, self.epsilon, self.sample, self.permute):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.temperature, self.epsilon]), widgets.HBox([self.sample, self.permute]),
                         self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figures for the current controls (the controls call this)."""
        from kdteach.viz import plot_gradient_scale, plot_target_distributions

        st = kd_effects_state(self._z_s, self._z_t, self._y, self.temperature.value, self.epsilon.value,
                              bool(self.permute.value), self._seed)
        i = self.sample.value
        teacher_name = "permuted teacher" if st["permute"] else "teacher"
        label = int(self._y[i])
        fig_targets = plot_target_distributions(
            {f"{teacher_name}, T = {st['temperature']:g}": st["target_probs"][i],
             f"uniform smoothing, eps = {st['epsilon']:.2f}": st["smoothed_probs"][i]},
            self.class_names, labels=[label], row_titles=[f"example {i}, label: {self.class_names[label]}"])
        names = (f"KD to the {teacher_name}", "KD to uniform smoothing", "CE")
        fig_grad = plot_gradient_scale(st["teacher_confidence"],
                                       dict(zip(names, (st["grad_teacher"], st["grad_smoothed"], st["grad_ce"]))),
                                       dict(zip(names, (st["push_teacher"], st["push_smoothed"], st["push_ce"]))),
                                       title=f"Per-image gradients over {len(self._y)} images")
        summary = (f"T = {st['temperature']:g}, eps = {st['epsilon']:.2f}, permute = {st['permute']}: KD term to the "
                   f"{teacher_name} {st['kd_teacher']:.4f}, to uniform smoothing {st['kd_smoothed']:.4f}; "
                   f"eps matching the teacher's mean true-class probability at this T: {st['matched_epsilon']:.2f}")
        self.state, self.figures = st, (fig_targets, fig_grad)
        self.output.outputs = (_figure_output(fig_targets, "Figure: targets of the example"),
                               _figure_output(fig_grad, "Figure: per-image gradient norms"),
                               _html_output(f"<p>{html.escape(summary)}</p>", summary))
        return st
