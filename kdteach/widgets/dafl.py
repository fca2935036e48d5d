"""The DAFL generator-loss explorer (section 7 of the dafl notebook): the generator's three terms over a pure function.

:class:`DAFLLossExplorer` takes one or more fixed batches of teacher outputs (the (B, K) logits and
the (B, D) pooled features of the teacher on some images: generated ones, real test images, ...),
lets the reader choose a batch and the three weights of :class:`kdteach.methods.dafl.DAFL`
(``onehot_weight``, ``activation_weight``, ``entropy_weight``), and shows the weighted terms and
the class histogram the information-entropy term sees: the batch-mean softmax p̄ and the teacher's
arg-max counts. The logic is :func:`dafl_explorer_state`; nothing is trained.
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

__all__ = ["dafl_explorer_state", "DAFLLossExplorer"]


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _batch(teacher_logits: Any, features: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(teacher_logits)
    f = torch.as_tensor(features)
    if z.dim() != 2 or z.shape[0] == 0 or z.shape[1] < 2 or not z.is_floating_point():
        raise ValueError(f"teacher_logits must be a floating-point (B, K) tensor with B >= 1 and K >= 2, "
                         f"got shape {tuple(z.shape)} dtype {z.dtype}")
    if f.dim() != 2 or f.shape[0] != z.shape[0] or not f.is_floating_point():
        raise ValueError(f"features must be a floating-point ({z.shape[0]}, D) tensor (one row per image of "
                         f"teacher_logits), got shape {tuple(f.shape)} dtype {f.dtype}")
    return z.detach(), f.detach()


def dafl_explorer_state(teacher_logits: Any, features: Any, onehot_weight: float, activation_weight: float,
                        entropy_weight: float) -> dict:
    """Everything the DAFL explorer shows for one batch and one choice of weights.

    L_G = onehot_weight · L_oh + activation_weight · L_a + entropy_weight · L_ie, the generator's
    objective of Chen et al., "Data-Free Learning of Student Networks", ICCV 2019, Eq. 6, with the
    three terms of :mod:`kdteach.losses.datafree` (:func:`~kdteach.losses.dafl_onehot_loss`,
    :func:`~kdteach.losses.dafl_activation_loss`, :func:`~kdteach.losses.dafl_entropy_loss`), exactly
    as :meth:`kdteach.methods.dafl.DAFL.generator_loss` weights them.

    Args:
        teacher_logits: (B, K) teacher logits on the batch.
        features: (B, D) the teacher's pooled features on the same images.
        onehot_weight, activation_weight, entropy_weight: the three weights, each >= 0.

    Returns:
        dict with the three weights; floats ``onehot``, ``activation``, ``entropy`` (unweighted),
        ``weighted_onehot``, ``weighted_activation``, ``weighted_entropy`` and ``total``;
        ``p_mean`` ((K,) the batch-mean softmax the entropy term sees), ``class_counts`` ((K,) int64,
        the teacher's arg-max per image), ``entropy_min`` = −log10 K (p̄ uniform) and
        ``entropy_max`` = 0 (p̄ one-hot), ``confidence`` (mean max-softmax over the batch),
        ``n_images`` B and ``n_classes`` K.

    Raises:
        ValueError: logits not (B, K) floating point, features not (B, D) floating point with the
            same B, or a weight negative or not finite.
    """
    from kdteach.losses import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss

    z, f = _batch(teacher_logits, features)
    w_oh = _weight(onehot_weight, "onehot_weight")
    w_a = _weight(activation_weight, "activation_weight")
    w_ie = _weight(entropy_weight, "entropy_weight")
    k = z.shape[1]
    with torch.no_grad():
        p = z.float().softmax(1)
        oh = float(dafl_onehot_loss(z))
        act = float(dafl_activation_loss(f))
        ie = float(dafl_entropy_loss(z))
    return {
        "onehot_weight": w_oh, "activation_weight": w_a, "entropy_weight": w_ie,
        "onehot": oh, "activation": act, "entropy": ie,
        "weighted_onehot": w_oh * oh, "weighted_activation": w_a * act, "weighted_entropy": w_ie * ie,
        "total": w_oh * oh + w_a * act + w_ie * ie,
        "p_mean": p.mean(0), "class_counts": torch.bincount(z.argmax(1), minlength=k),
        "entropy_min": -math.log10(k), "entropy_max": 0.0, "confidence": float(p.max(1).values.mean()),
        "n_images": int(z.shape[0]), "n_classes": int(k),
    }


class DAFLLossExplorer(widgets.VBox):
    """A batch menu and sliders for DAFL's three generator weights; shows the weighted terms, their
    sum, and the class histogram of the batch (the teacher's arg-max counts and the batch-mean
    softmax p̄ that the information-entropy term flattens) (Chen et al., ICCV 2019, Eqs. 3-6).

    Args:
        batches: name -> (teacher_logits (B, K), features (B, D)); every batch has the same K.
        class_names: K class names (figure tick labels).
        onehot_weight, activation_weight, entropy_weight: starting values; None takes the ``dafl``
            method's default (:attr:`kdteach.methods.dafl.DAFL.defaults`: 0.05, 0.01, 5).

    Attributes: ``batch`` (Dropdown), ``onehot_weight``, ``activation_weight``, ``entropy_weight``
    (sliders), ``output`` (Output), ``state`` (the latest :func:`dafl_explorer_state` dict),
    ``last_figure``.
    """

    def __init__(self, batches: Mapping[str, tuple[Any, Any]], class_names: Sequence[str],
                 onehot_weight: float | None = None, activation_weight: float | None = None,
                 entropy_weight: float | None = None):
        from kdteach.methods.dafl import DAFL

        super().__init__()
        if not isinstance(batches, Mapping) or not batches:
            raise ValueError("batches must be a non-empty dict name -> (teacher_logits, features)")
        self._batches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, pair in batches.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"batches[{name!r}] must be a pair (teacher_logits, features)")
            self._batches[str(name)] = _batch(*pair)
        ks = {z.shape[1] for z, _ in self._batches.values()}
        if len(ks) != 1:
            raise ValueError(f"every batch must have the same number of classes K, got {sorted(ks)}")
        class_names = [str(c) for c in class_names]
        if len(class_names) != ks.pop():
            raise ValueError(f"class_names has {len(class_names)} names, expected K = "
                             f"{next(iter(self._batches.values()))[0].shape[1]}")
        self.class_names = class_names
        d = DAFL.defaults
        start = {"onehot_weight": d["onehot_weight"] if onehot_weight is None else onehot_weight,
                 "activation_weight": d["activation_weight"] if activation_weight is None else activation_weight,
                 "entropy_weight": d["entropy_weight"] if entropy_weight is None else entropy_weight}
        for key, value in start.items():
            _weight(value, key)                                       # validate early
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.batch = widgets.Dropdown(options=list(self._batches), description="batch")
        self.onehot_weight = widgets.FloatSlider(value=start["onehot_weight"], min=0.0, max=1.0, step=0.01,
                                                 description="onehot_weight", **slider)
        self.activation_weight = widgets.FloatSlider(value=start["activation_weight"], min=0.0, max=0.2, step=0.005,
                                                     description="activation_weight", readout_format=".3f", **slider)
        self.entropy_weight = widgets.FloatSlider(value=start["entropy_weight"], min=0.0, max=20.0, step=0.5,
                                                  description="entropy_weight", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.batch, self.onehot_weight, self.activation_weight, self.entropy_weight):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.batch, self.onehot_weight]),
                         widgets.HBox([self.activation_weight, self.entropy_weight]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current batch and weights (the controls call this)."""
        z, f = self._batches[self.batch.value]
        st = dafl_explorer_state(z, f, self.onehot_weight.value, self.activation_weight.value,
                                 self.entropy_weight.value)
        fig = Figure(figsize=(11, 3.4))                               # fixed margins: no layout engine
        ax_h, ax_l = fig.subplots(1, 2, width_ratios=[2, 1])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.26, top=0.88, wspace=0.22)
        x = list(range(st["n_classes"]))
        share = (st["class_counts"].float() / st["n_images"]).tolist()
        ax_h.bar([v - 0.2 for v in x], share, width=0.4, label="share of arg-max")
        ax_h.bar([v + 0.2 for v in x], st["p_mean"].tolist(), width=0.4, label="mean softmax p-bar")
        ax_h.axhline(1.0 / st["n_classes"], color="gray", linestyle="--", linewidth=1, label="uniform 1/K")
        ax_h.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_h.set_title(f"{self.batch.value}: {st['n_images']} images, L_ie = {st['entropy']:.3f} "
                       f"(min {st['entropy_min']:.3f})", fontsize="small")
        ax_h.legend(fontsize="x-small")
        parts = ["onehot", "activation", "entropy", "total"]
        values = [st["weighted_onehot"], st["weighted_activation"], st["weighted_entropy"], st["total"]]
        ax_l.bar(parts, values, color=["tab:blue", "tab:orange", "tab:green", "black"])
        ax_l.axhline(0.0, color="gray", linewidth=0.8)
        ax_l.set_title("weighted terms of L_G", fontsize="small")
        body = [[p, f"{st[p]:.4f}", f"{st[p + '_weight']:g}", f"{st['weighted_' + p]:+.4f}"]
                for p in ("onehot", "activation", "entropy")]
        body.append(["total", "", "", f"{st['total']:+.4f}"])
        table = _html_table(["term", "value", "weight", "weighted"], body)
        summary = (f"{self.batch.value}: L_oh = {st['onehot']:.4f}, L_a = {st['activation']:.4f}, "
                   f"L_ie = {st['entropy']:.4f} (uniform: {st['entropy_min']:.4f}); total = {st['total']:.4f}; "
                   f"mean confidence {st['confidence']:.3f}")
        self.state, self.last_figure = st, fig
        self.output.outputs = (_figure_output(fig, "Figure: class histogram and weighted terms"),
                               _html_output(f"{table}<p>{html.escape(summary)}</p>", summary))
        return st
