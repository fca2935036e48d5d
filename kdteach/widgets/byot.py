"""The BYOT exit explorer (section 7 of the byot notebook): the logit terms of self distillation over a
pure function.

:class:`BYOTExitExplorer` takes fixed logits of a BYOT network on a batch (each shallow exit's and the
deepest classifier's, with the labels), lets the reader choose an exit, α and T, and shows the
softened distributions of the exit and of the deepest classifier on one example with the loss
split: CE(z_C, y) for the deepest classifier, and per exit (1 − α) CE(z_k, y) and
α · KL(p_C ‖ p_k) at T, exactly as :class:`kdteach.methods.byot.BYOT` weights them (Zhang et al.,
"Be Your Own Teacher", ICCV 2019). The feature hint (loss 3) needs feature maps, not logits, and is
not part of the explorer. The logic is :func:`byot_explorer_state`.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["byot_explorer_state", "BYOTExitExplorer"]


def _logits(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] < 2 or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point (B, K) tensor with B >= 1 and K >= 2, got shape "
                         f"{tuple(t.shape)} dtype {t.dtype}")
    return t.detach().float()


def _check_inputs(exit_logits: Any, deepest_logits: Any, labels: Any
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    if not isinstance(exit_logits, Mapping) or not exit_logits:
        raise ValueError(f"exit_logits must be a non-empty dict exit name -> (B, K) logits, got "
                         f"{type(exit_logits).__name__}")
    z_c = _logits(deepest_logits, "deepest_logits")
    exits = {}
    for name, z in exit_logits.items():
        z = _logits(z, f"exit_logits[{name!r}]")
        if z.shape != z_c.shape:
            raise ValueError(f"exit_logits[{name!r}] has shape {tuple(z.shape)}, expected the deepest classifier's "
                             f"{tuple(z_c.shape)}")
        exits[str(name)] = z
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != z_c.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({z_c.shape[0]},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= z_c.shape[1]:
        raise ValueError(f"labels must lie in [0, {z_c.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    return exits, z_c, y.long()


def byot_explorer_state(exit_logits: Mapping[str, Any], deepest_logits: Any, labels: Any, exit: str,
                        alpha: float, temperature: float) -> dict:
    """Everything the BYOT exit explorer shows for one (exit, α, T): the logit terms of BYOT's loss.

    With z_C the deepest classifier's logits and z_k exit k's (Zhang et al., ICCV 2019, Sec. 3; the
    weighting of :class:`kdteach.methods.byot.BYOT`): ``ce`` = CE(z_C, y); per exit
    ``ce_exit`` = (1 − α) CE(z_k, y) and ``kl_exit`` = α · KL(p_C ‖ p_k), p = softmax(z / T), mean over
    the batch, computed as :func:`kdteach.losses.kd_loss` / T² (no T² factor, as the authors' code).

    Args:
        exit_logits: exit name (``"exit1"``, ...) -> (B, K) logits z_k.
        deepest_logits: (B, K) logits z_C of the deepest classifier (the teacher of every exit).
        labels: (B,) integer labels in [0, K).
        exit: the exit shown (a key of ``exit_logits``).
        alpha: α in [0, 1] (BYOT's default 0.3).
        temperature: T > 0 (BYOT's default 3).

    Returns:
        dict with ``exit``, ``exits`` (names, in order), ``alpha``, ``temperature``; ``exit_probs``
        and ``deepest_probs`` ((B, K) at temperature T for the chosen exit and the deepest classifier);
        floats ``ce`` (deepest), ``ce_exit``, ``kl_exit`` (weighted, chosen exit), ``kl_unweighted``,
        ``agreement`` (fraction of top-1 classes equal to the deepest classifier's); ``terms``: per
        exit ``{"ce_exit", "kl_exit"}`` (weighted); ``total``: ``ce`` plus every exit's two terms.

    Raises:
        ValueError: logits not (B, K) floating point or of different shapes, labels not (B,) integers
            in [0, K), ``exit`` not a key of ``exit_logits``, α outside [0, 1], T not a finite number > 0.
    """
    from kdteach.losses import kd_loss, softened_probs

    exits, z_c, y = _check_inputs(exit_logits, deepest_logits, labels)
    if exit not in exits:
        raise ValueError(f"exit must be one of {list(exits)}, got {exit!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    a, t = float(alpha), float(temperature)
    with torch.no_grad():
        ce = float(F.cross_entropy(z_c, y))
        terms, kl_raw = {}, {}
        for name, z in exits.items():
            kl_raw[name] = float(kd_loss(z, z_c, t)) / (t * t)
            terms[name] = {"ce_exit": (1.0 - a) * float(F.cross_entropy(z, y)), "kl_exit": a * kl_raw[name]}
        z = exits[exit]
        state = {
            "exit": exit, "exits": list(exits), "alpha": a, "temperature": t,
            "exit_probs": softened_probs(z, t), "deepest_probs": softened_probs(z_c, t),
            "ce": ce, "ce_exit": terms[exit]["ce_exit"], "kl_exit": terms[exit]["kl_exit"],
            "kl_unweighted": kl_raw[exit], "agreement": float((z.argmax(1) == z_c.argmax(1)).float().mean()),
            "terms": terms, "total": ce + sum(v["ce_exit"] + v["kl_exit"] for v in terms.values()),
        }
    return state


class BYOTExitExplorer(widgets.VBox):
    """A dropdown for the exit, sliders for α, T and the example; shows the softened distributions of
    that exit and of the deepest classifier on the example and BYOT's logit loss split over the batch
    (Zhang et al., ICCV 2019). No training: the logits are fixed.

    Args:
        exit_logits: exit name -> (B, K) logits; deepest_logits: (B, K); labels: (B,) integers.
        class_names: K class names (figure tick labels).
        alpha, temperature: starting values; None takes :attr:`kdteach.methods.byot.BYOT.defaults`
            (α = 0.3, T = 3).

    Attributes: ``exit`` (Dropdown), ``alpha``, ``temperature``, ``sample`` (sliders), ``output``
    (Output), ``state`` (the latest :func:`byot_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, exit_logits: Mapping[str, Any], deepest_logits: Any, labels: Any,
                 class_names: Sequence[str], alpha: float | None = None, temperature: float | None = None):
        from kdteach.methods.byot import BYOT

        super().__init__()
        alpha = BYOT.defaults["alpha"] if alpha is None else alpha
        temperature = BYOT.defaults["temperature"] if temperature is None else temperature
        self._exits, self._z_c, self._y = _check_inputs(exit_logits, deepest_logits, labels)
        class_names = [str(c) for c in class_names]
        if len(class_names) != self._z_c.shape[1]:
            raise ValueError(f"class_names has {len(class_names)} names, expected K = {self._z_c.shape[1]}")
        self.class_names = class_names
        first = next(iter(self._exits))
        byot_explorer_state(self._exits, self._z_c, self._y, first, alpha, temperature)   # validate early
        slider = dict(continuous_update=False)
        self.exit = widgets.Dropdown(options=list(self._exits), value=first, description="exit")
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="α", **slider)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=10.0, step=0.5, description="T",
                                               **slider)
        self.sample = widgets.IntSlider(value=0, min=0, max=self._z_c.shape[0] - 1, description="example", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.exit, self.alpha, self.temperature, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.exit, self.sample]), widgets.HBox([self.alpha, self.temperature]),
                         self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current values (the controls call this)."""
        state = byot_explorer_state(self._exits, self._z_c, self._y, self.exit.value, self.alpha.value,
                                    self.temperature.value)
        i = self.sample.value
        fig = Figure(figsize=(11, 3.6))
        ax_p, ax_l = fig.subplots(1, 2, width_ratios=[2, 1])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.24, top=0.9, wspace=0.25)
        x = list(range(len(self.class_names)))
        ax_p.bar([v - 0.2 for v in x], state["deepest_probs"][i].tolist(), width=0.4, label="deepest classifier")
        ax_p.bar([v + 0.2 for v in x], state["exit_probs"][i].tolist(), width=0.4, label=state["exit"])
        ax_p.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_p.set_ylabel(f"softmax(z / T), T = {state['temperature']:g}")
        ax_p.set_title(f"example {i}, label: {self.class_names[int(self._y[i])]}")
        ax_p.legend(fontsize="small")
        ax_l.bar(["CE deepest", "(1-a) CE exit", "a KL exit"], [state["ce"], state["ce_exit"], state["kl_exit"]],
                 color=["black", "tab:gray", "tab:purple"])
        ax_l.tick_params(axis="x", labelsize=8)
        ax_l.set_title(f"{state['exit']}, alpha = {state['alpha']:g}, batch mean", fontsize="small")
        body = [[n, f"{v['ce_exit']:.4f}", f"{v['kl_exit']:.4f}"] for n, v in state["terms"].items()]
        summary = (f"{state['exit']}, alpha = {state['alpha']:g}, T = {state['temperature']:g}: CE deepest = "
                   f"{state['ce']:.4f}, (1 - alpha) CE exit = {state['ce_exit']:.4f}, alpha KL = {state['kl_exit']:.4f} "
                   f"(KL {state['kl_unweighted']:.4f} nats), top-1 agreement with the deepest classifier "
                   f"{100 * state['agreement']:.1f}%; logit part of the loss over all exits = {state['total']:.4f}")
        table = _html_table(["exit", "(1 - alpha) CE", "alpha KL"], body)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: softened distributions and loss split"),
                               _html_output(f"<p>{html.escape(summary)}</p>{table}", summary))
        return state
