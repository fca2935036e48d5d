"""The boundary explorer (section 7 of the ab notebook): which positions AB's hinge penalises, for a margin.

:class:`BoundaryExplorer` shows, for one image, one channel of a distilled stage and a chosen margin m,
the teacher's and each student's pre-activations, where AB's squared hinge
(:func:`kdteach.losses.ab_loss`) penalises the student and its gradient, next to the gradient of the
plain L2 (s − t)² it replaces. The logic is :func:`boundary_explorer_state`, a pure function of stored
pre-activations: no model is run and nothing is trained.

Reference: B. Heo, M. Lee, S. Yun, J. Y. Choi, "Knowledge Transfer via Distillation of Activation
Boundaries Formed by Hidden Neurons", AAAI 2019 (arXiv:1811.03233).
"""

from __future__ import annotations

import html
import numbers
from typing import Mapping

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["boundary_explorer_state", "boundary_figure", "BoundaryExplorer"]


def _check(teacher: torch.Tensor, students: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(teacher, torch.Tensor) or teacher.dim() != 4 or 0 in teacher.shape:
        shape = tuple(teacher.shape) if isinstance(teacher, torch.Tensor) else type(teacher).__name__
        raise ValueError(f"teacher must be a (N, C, H, W) tensor of pre-activations, got {shape}")
    if not isinstance(students, Mapping) or not students:
        raise ValueError(f"students must be a non-empty dict name -> (N, C, H, W) pre-activations, got {students!r}")
    for name, s in students.items():
        if not isinstance(s, torch.Tensor) or s.shape != teacher.shape:
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"students[{name!r}] must have the teacher's shape {tuple(teacher.shape)} "
                             f"(pass it through its connector), got {shape}")


def boundary_explorer_state(teacher: torch.Tensor, students: Mapping[str, torch.Tensor], image: int, channel: int,
                            margin: float = 1.0) -> dict:
    """Everything the boundary explorer shows for one image, one channel and a margin.

    Heo et al. (AAAI 2019), Eq. of the alternative loss. With t the teacher's and s a student's
    pre-activations at the H·W positions of the channel: the entry loss
    ℓ = max(0, s + m)²·1(t ≤ 0) + max(0, m − s)²·1(t > 0) (:func:`kdteach.losses.ab_loss` on this one
    (1, 1, H, W) slice), its gradient ∂ℓ/∂s, the positions it penalises (ℓ > 0), the positions where the
    signs disagree (what AB wants to remove), and the plain L2 (s − t)² with its gradient 2(s − t).

    Args:
        teacher: (N, C, H, W) teacher pre-activations of one stage.
        students: name -> (N, C, H, W) student pre-activations of the same stage, mapped to the teacher's
            shape (an AB run's connector; the identity when the shapes agree).
        image: 0 <= image < N; channel: 0 <= channel < C; margin: m > 0.

    Returns:
        dict with ``image``, ``channel``, ``margin``, ``teacher`` ((H, W) values) and ``students``
        (name -> dict ``values``, ``penalised`` (bool (H, W)), ``disagree`` (bool (H, W)), ``ab_grad``,
        ``l2_grad`` ((H, W) float64), ``ab_loss``, ``l2_loss`` (floats: sums over the H·W positions),
        ``penalised_share``, ``disagree_share``, ``penalised_agreeing_share`` (penalised although on
        the teacher's side: inside the margin)).

    Raises:
        ValueError: malformed ``teacher`` or ``students``, ``image`` or ``channel`` out of range, or
            ``margin`` not a finite number > 0.
    """
    from kdteach.losses import ab_loss

    _check(teacher, students)
    n, c = teacher.shape[:2]
    for arg, value, hi in (("image", image, n), ("channel", channel, c)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < hi:
            raise ValueError(f"{arg} must be an int in [0, {hi}), got {value!r}")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    image, channel, m = int(image), int(channel), float(margin)
    t = teacher[image, channel].detach().double().cpu()
    active = t > 0
    out = {}
    for name, feat in students.items():
        s = feat[image, channel].detach().double().cpu().requires_grad_(True)
        loss = ab_loss(s[None, None], t[None, None], m)          # batch of one: the sum over positions
        (grad,) = torch.autograd.grad(loss, s)
        s = s.detach()
        hinge = torch.where(active, (m - s).clamp(min=0), (s + m).clamp(min=0))
        penalised, disagree = hinge > 0, (s > 0) != active
        out[name] = {"values": s, "penalised": penalised, "disagree": disagree, "ab_grad": grad,
                     "l2_grad": 2 * (s - t), "ab_loss": float(loss.detach()), "l2_loss": float((s - t).pow(2).sum()),
                     "penalised_share": float(penalised.double().mean()),
                     "disagree_share": float(disagree.double().mean()),
                     "penalised_agreeing_share": float((penalised & ~disagree).double().mean())}
    return {"image": image, "channel": channel, "margin": m, "teacher": t, "students": out}


def boundary_figure(state: dict, title: str | None = None) -> Figure:
    """The explorer's figure for a :func:`boundary_explorer_state` dict: one row per student with the
    teacher's pre-activation, the student's (both on one symmetric colour scale, a contour at 0: the
    activation boundary), AB's gradient (penalised positions outlined) and the plain L2's gradient (both
    gradients on one shared symmetric scale)."""
    rows = list(state["students"])
    fig = Figure(figsize=(9.0, 2.3 * len(rows) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), 4, squeeze=False))
    t = state["teacher"].numpy()
    vmax = max([np.abs(t).max()] + [np.abs(state["students"][r]["values"].numpy()).max() for r in rows]) or 1.0
    gmax = max(max(np.abs(state["students"][r][k].numpy()).max() for k in ("ab_grad", "l2_grad")) for r in rows) or 1.0
    for i, r in enumerate(rows):
        st = state["students"][r]
        panels = ((t, "teacher pre-activation", vmax), (st["values"].numpy(), f"{r}", vmax),
                  (st["ab_grad"].numpy(), f"AB gradient ({st['penalised_share']:.0%} penalised)", gmax),
                  (st["l2_grad"].numpy(), "plain L2 gradient", gmax))
        for j, (a, name, lim) in enumerate(panels):
            ax = axes[i, j]
            im = ax.imshow(a, cmap="coolwarm", vmin=-lim, vmax=lim)
            if j < 2 and a.min() < 0 < a.max():
                ax.contour(a, levels=[0.0], colors="k", linewidths=0.8)
            if j == 2:
                ax.contour(st["penalised"].numpy().astype(float), levels=[0.5], colors="k", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
            if j in (1, 3):
                fig.colorbar(im, ax=axes[i, j - 1:j + 1].tolist(), shrink=0.8)
    fig.suptitle(title or f"image {state['image']}, channel {state['channel']}, margin {state['margin']:g}", fontsize=9)
    return fig


class BoundaryExplorer(widgets.VBox):
    """Pick an image, a channel and the margin m; see where AB's squared hinge penalises each student
    and its gradient, next to the plain L2's (Heo et al., AAAI 2019).

    Args:
        teacher: (N, C, H, W) teacher pre-activations of one stage; students: name -> the students'
            (connected) pre-activations of the same shape (see :func:`boundary_explorer_state`).
        labels: optional N strings naming the images; stage: a name for the titles; margin: initial m.

    Attributes: ``image``, ``channel``, ``margin`` (controls), ``output`` (Output), ``state`` (the latest
    :func:`boundary_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, teacher: torch.Tensor, students: Mapping[str, torch.Tensor], labels=None, stage: str = "",
                 margin: float = 1.0):
        super().__init__()
        _check(teacher, students)
        n, c = teacher.shape[:2]
        if labels is not None:
            labels = [str(v) for v in labels]
            if len(labels) != n:
                raise ValueError(f"labels must have one entry per image (N = {n}), got {len(labels)}")
        boundary_explorer_state(teacher, students, 0, 0, margin)     # validate once, early
        self._teacher, self._students, self._labels, self._stage = teacher, students, labels, stage
        names = [f"{i}: {labels[i]}" if labels else str(i) for i in range(n)]
        self.image = widgets.Dropdown(options=[(s, i) for i, s in enumerate(names)], value=0, description="image")
        self.channel = widgets.IntSlider(value=0, min=0, max=c - 1, description="channel")
        self.margin = widgets.FloatSlider(value=float(margin), min=0.05, max=3.0, step=0.05, description="margin m")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.image, self.channel, self.margin):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.image, self.channel]), self.margin, self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state, figure and table for the current controls (the controls call this)."""
        state = boundary_explorer_state(self._teacher, self._students, self.image.value, self.channel.value,
                                        self.margin.value)
        i, ch, m = state["image"], state["channel"], state["margin"]
        name = self._labels[i] if self._labels else f"image {i}"
        where = f" at {self._stage}" if self._stage else ""
        fig = boundary_figure(state, title=f"{name}{where}, channel {ch}, margin {m:g}: values on one scale, "
                                           f"gradients on another")
        header = ["student", "AB loss", "plain L2", "signs disagree", "penalised", "penalised, right side"]
        body, plain = [], []
        for r, st in state["students"].items():
            body.append([r, f"{st['ab_loss']:.3f}", f"{st['l2_loss']:.3f}", f"{st['disagree_share']:.1%}",
                         f"{st['penalised_share']:.1%}", f"{st['penalised_agreeing_share']:.1%}"])
            plain.append(f"{r}: AB {st['ab_loss']:.3f}, L2 {st['l2_loss']:.3f}, disagree {st['disagree_share']:.1%}, "
                         f"penalised {st['penalised_share']:.1%}")
        caption = html.escape(f"Image {i}, channel {ch}, margin {m:g} (sums over the positions of the channel):")
        table = _html_output(f"<p>{caption}</p>{_html_table(header, body)}", "; ".join(plain))
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, f"Figure: AB boundary explorer, image {i}, channel {ch}"), table)
        return state
