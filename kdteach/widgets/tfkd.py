"""The virtual-teacher explorer (section 7 of the tfkd notebook): Tf-KD reg's target over a pure function.

:class:`VirtualTeacherExplorer` shows, for one fixed example, what a student would be asked to match:
the manually designed teacher p^d of Yuan et al. (CVPR 2020, Sec. 5; ``correct_prob`` = a on the
label, the rest spread evenly), the target the authors' code builds from it, ``softmax(p^d / T)``
(:func:`kdteach.losses.virtual_teacher_target`), the reading of p^d as a teacher with logits log p^d,
``softmax(log p^d / T)``, label smoothing with ε (:func:`kdteach.losses.smoothed_targets`) and real
teachers' soft targets ``softmax(z / T)``. Sliders: a, T, ε and the example. The logic is
:func:`tfkd_explorer_state`.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["tfkd_explorer_state", "VirtualTeacherExplorer", "TARGET_NAMES"]

#: The keys of the state's fixed targets, in display order (the teachers follow under their own names).
TARGET_NAMES = ("virtual teacher p^d", "code: softmax(p^d / T)", "read as logits: softmax(log p^d / T)",
                "label smoothing")


def _teachers(teacher_logits: Any) -> dict[str, torch.Tensor]:
    items = teacher_logits.items() if isinstance(teacher_logits, Mapping) else [("teacher", teacher_logits)]
    out: dict[str, torch.Tensor] = {}
    for name, z in items:
        t = torch.as_tensor(z)
        if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] < 2 or not t.is_floating_point():
            raise ValueError(f"teacher_logits[{name!r}] must be a floating-point (B, K) tensor with B >= 1 and K >= 2, "
                             f"got shape {tuple(t.shape)} dtype {t.dtype}")
        out[str(name)] = t.detach().float().cpu()
    if not out:
        raise ValueError("teacher_logits must be a (B, K) tensor or a non-empty dict name -> (B, K) logits")
    if len({z.shape for z in out.values()}) != 1:
        raise ValueError(f"every teacher's logits must have the same shape, got "
                         f"{ {k: tuple(v.shape) for k, v in out.items()} }")
    return out


def _number(value: Any, name: str, lo: float, hi: float, lo_open: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or not (lo < value if lo_open else lo <= value) or not value <= hi:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def tfkd_explorer_state(teacher_logits: Any, labels: Any, index: int, correct_prob: float, temperature: float,
                        ls_epsilon: float = 0.1) -> dict:
    """Everything the virtual-teacher explorer shows for one example and one (a, T, ε).

    Args:
        teacher_logits: (B, K) logits of a real teacher, or a dict name -> (B, K) logits of several
            (e.g. the teacher, a smaller network, a poorly trained one), all softened at T.
        labels: (B,) integer labels in [0, K).
        index: the example shown, in [0, B).
        correct_prob: a in (0, 1], the virtual teacher's probability of the label.
        temperature: T > 0, for the code's target, the logits reading and the teachers.
        ls_epsilon: ε in [0, 1] of label smoothing (1 − ε) · onehot + ε / K.

    Returns:
        dict with ``label`` (int), ``num_classes``, ``correct_prob``, ``temperature``, ``ls_epsilon``;
        ``targets``: name -> (K,) distribution, the :data:`TARGET_NAMES` first, then ``"<teacher>, T = ..."``
        for each teacher; ``entropy`` and ``p_label``: name -> float (nats; the label's probability);
        ``code_bound``: the most the code's target can give the label at this T, for any a,
        e^(1/T) / (e^(1/T) + K − 1); ``code_epsilon``: the label-smoothing ε that gives the label the
        same probability as the code's target (:func:`kdteach.losses.matched_epsilon`).

    Raises:
        ValueError: logits not floating (B, K) of one shape, labels not (B,) integers in [0, K),
            ``index`` outside [0, B), a, T or ε out of range.
    """
    from kdteach.losses import (matched_epsilon, smoothed_targets, softened_probs, virtual_teacher_probs,
                                virtual_teacher_target)

    teachers = _teachers(teacher_logits)
    b, k = next(iter(teachers.values())).shape
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != b or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({b},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise ValueError(f"labels must lie in [0, {k}), got range [{int(y.min())}, {int(y.max())}]")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < b:
        raise ValueError(f"index must be an int in [0, {b}), got {index!r}")
    a = _number(correct_prob, "correct_prob", 0.0, 1.0, lo_open=True)
    t = _number(temperature, "temperature", 0.0, math.inf, lo_open=True)
    eps = _number(ls_epsilon, "ls_epsilon", 0.0, 1.0, lo_open=False)
    yi = y[index:index + 1].long().cpu()
    pd = virtual_teacher_probs(yi, k, a)
    code = virtual_teacher_target(yi, k, a, t)
    targets = {TARGET_NAMES[0]: pd[0], TARGET_NAMES[1]: code[0],
               TARGET_NAMES[2]: softened_probs(pd.log(), t)[0],        # log 0 = -inf gives 0 at a = 1
               TARGET_NAMES[3]: smoothed_targets(yi, k, eps)[0]}
    for name, z in teachers.items():
        targets[f"{name}, T = {t:g}"] = softened_probs(z[index:index + 1], t)[0]
    label = int(yi)
    entropy = {n: float(-(p[p > 0] * p[p > 0].log()).sum()) for n, p in targets.items()}
    return {"label": label, "num_classes": k, "correct_prob": a, "temperature": t, "ls_epsilon": eps,
            "targets": targets, "entropy": entropy, "p_label": {n: float(p[label]) for n, p in targets.items()},
            "code_bound": math.exp(1.0 / t) / (math.exp(1.0 / t) + k - 1),
            "code_epsilon": matched_epsilon(code, yi)}


class VirtualTeacherExplorer(widgets.VBox):
    """Sliders for the virtual teacher's correct-class probability a, the temperature T, label
    smoothing's ε and the example; shows the targets of :func:`tfkd_explorer_state` as grouped bars
    on one probability scale, with a table of entropies and label probabilities.

    Args:
        teacher_logits: (B, K) teacher logits or a dict name -> (B, K) logits (several teachers).
        labels: (B,) integer labels.
        class_names: K class names (tick labels).
        correct_prob, temperature: starting values; None takes the ``tfkd_reg`` method's defaults
            (:attr:`kdteach.methods.tfkd.TfKDReg.defaults`: a = 0.99, T = 20).
        ls_epsilon: starting ε (0.1, the authors' label-smoothing baseline).

    Attributes: ``correct_prob``, ``temperature``, ``ls_epsilon``, ``sample`` (sliders), ``output``
    (Output), ``state`` (the latest :func:`tfkd_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, teacher_logits: Any, labels: Any, class_names: Sequence[str], correct_prob: float | None = None,
                 temperature: float | None = None, ls_epsilon: float = 0.1):
        from kdteach.methods.tfkd import TfKDReg

        super().__init__()
        correct_prob = TfKDReg.defaults["correct_prob"] if correct_prob is None else correct_prob
        temperature = TfKDReg.defaults["temperature"] if temperature is None else temperature
        self._teachers = _teachers(teacher_logits)
        self._y = torch.as_tensor(labels)
        b, k = next(iter(self._teachers.values())).shape
        class_names = [str(c) for c in class_names]
        if len(class_names) != k:
            raise ValueError(f"class_names has {len(class_names)} names, expected K = {k}")
        self.class_names = class_names
        tfkd_explorer_state(self._teachers, self._y, 0, correct_prob, temperature, ls_epsilon)   # validate early
        slider = dict(continuous_update=False)
        self.correct_prob = widgets.FloatSlider(value=correct_prob, min=0.05, max=1.0, step=0.01,
                                                description="a (correct_prob)", **slider)
        self.temperature = widgets.FloatSlider(value=temperature, min=1.0, max=40.0, step=1.0, description="T",
                                               **slider)
        self.ls_epsilon = widgets.FloatSlider(value=ls_epsilon, min=0.0, max=0.9, step=0.05,
                                              description="LS epsilon", **slider)
        self.sample = widgets.IntSlider(value=0, min=0, max=b - 1, description="example", **slider)
        for w in (self.correct_prob, self.ls_epsilon):
            w.style.description_width = "initial"
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.correct_prob, self.temperature, self.ls_epsilon, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.correct_prob, self.temperature]),
                         widgets.HBox([self.ls_epsilon, self.sample]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current slider values (sliders call this)."""
        from kdteach.viz import plot_target_distributions

        state = tfkd_explorer_state(self._teachers, self._y, self.sample.value, self.correct_prob.value,
                                    self.temperature.value, self.ls_epsilon.value)
        label = state["label"]
        fig = plot_target_distributions({n: p[None] for n, p in state["targets"].items()}, self.class_names,
                                        labels=[label], row_titles=[f"example {self.sample.value}, label: "
                                                                    f"{self.class_names[label]}"])
        fig.set_size_inches(11, 3.4)
        rows = [[n, f"{state['p_label'][n]:.3f}", f"{state['entropy'][n]:.3f}"] for n in state["targets"]]
        table = _html_table(["target", "p(label)", "entropy (nats)"], rows)
        summary = (f"a = {state['correct_prob']:g}, T = {state['temperature']:g}: the code's target gives the label "
                   f"{state['p_label'][TARGET_NAMES[1]]:.3f} (at most {state['code_bound']:.3f} for any a; uniform "
                   f"{1 / state['num_classes']:.3f}), the same as label smoothing with epsilon = "
                   f"{state['code_epsilon']:.3f}; log K = {math.log(state['num_classes']):.3f}")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: target distributions of one example"),
                               _html_output(f"<p>{html.escape(summary)}</p>{table}", summary))
        return state
