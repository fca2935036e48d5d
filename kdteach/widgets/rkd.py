"""The RKD invariance explorer (section 7 of the rkd notebook): Park et al.'s potentials over a pure function.

:class:`RKDInvarianceExplorer` scales, rotates and translates a student's embedding with sliders and
shows, next to a scatter of both embeddings, the two RKD terms to the teacher (which do not move:
the distance potential is divided by the batch's mean distance and the angles are angles), the
distance term *without* that normalisation (which moves with the scale) and a plain point-by-point
L2 to the teacher (which moves with everything). The logic is :func:`rkd_invariance_state`, a pure
function of two embeddings: no model is run and nothing is trained.

Reference: W. Park, D. Kim, Y. Lu, M. Cho, "Relational Knowledge Distillation", CVPR 2019
(arXiv:1904.05068), Sec. 3.2.
"""

from __future__ import annotations

import math
import numbers

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["transform_embedding", "rkd_invariance_state", "RKDInvarianceExplorer"]

#: the quantities of the explorer's table, in order
QUANTITIES = ("distance", "angle", "rkd", "raw_distance", "l2")


def _check_embedding(e: object, name: str, d_min: int = 1) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[0] < 3 or e.shape[1] < d_min \
            or not e.is_floating_point():
        raise ValueError(f"{name} must be a (B, D) float tensor with B >= 3 examples and D >= {d_min}, got "
                         f"{tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__}")
    return e.detach().double().cpu()


def transform_embedding(e: torch.Tensor, scale: float = 1.0, shift: float = 0.0, rotation: float = 0.0) -> torch.Tensor:
    """``scale · R(rotation) e + shift · u``: (B, D) -> (B, D), with R the rotation by ``rotation`` degrees in
    the plane of the first two coordinates and u = (1, ..., 1)/√D; a similarity transform of the space."""
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    out = e.clone()
    out[:, 0], out[:, 1] = c * e[:, 0] - s * e[:, 1], s * e[:, 0] + c * e[:, 1]
    return scale * out + shift / math.sqrt(e.shape[1])


def rkd_invariance_state(student: torch.Tensor, teacher: torch.Tensor, scale: float = 1.0, shift: float = 0.0,
                         rotation: float = 0.0, distance_weight: float = 25.0, angle_weight: float = 50.0) -> dict:
    """Everything the invariance explorer shows for one transform of the student's embedding.

    Park et al. (2019), Sec. 3.2: the distance potential ψ_D (distances over their mean) and the angle
    potential ψ_A are unchanged by scaling, rotating and translating an embedding, so the RKD terms
    between the transformed student and the teacher equal those of the untransformed student.

    Args:
        student: (B, D_s) student embedding, B >= 3, D_s >= 2 (the rotation turns its first two coordinates).
        teacher: (B, D_t) teacher embedding of the same examples.
        scale: the factor > 0; shift: the translation's length along (1, ..., 1)/√D_s; rotation: degrees.
        distance_weight, angle_weight: λ_D, λ_A of the ``"rkd"`` entry.

    Returns:
        dict with ``student`` (the transformed (B, D_s) embedding, float64), ``teacher``, ``values``
        and ``reference`` (quantity -> float, for the transformed and the untransformed student):
        ``"distance"`` and ``"angle"`` (:func:`kdteach.losses.rkd_terms`), ``"rkd"`` (their weighted sum,
        the method's term), ``"raw_distance"`` (the smooth-L1 distance term on distances *not* divided by
        their mean) and ``"l2"`` (mean squared difference to the teacher, example by example; None when
        D_s != D_t), and the transform (``scale``, ``shift``, ``rotation``).

    Raises:
        ValueError: malformed embeddings, different batch sizes, or a scale that is not > 0.
    """
    from kdteach.losses import pairwise_distances, rkd_terms

    s0, t = _check_embedding(student, "student", 2), _check_embedding(teacher, "teacher")
    if s0.shape[0] != t.shape[0]:
        raise ValueError(f"student and teacher must embed the same examples, got shapes {tuple(s0.shape)} and "
                         f"{tuple(t.shape)}")
    for name, value in (("scale", scale), ("shift", shift), ("rotation", rotation)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")

    def measure(s: torch.Tensor) -> dict:
        d, a = rkd_terms(s, t)
        return {"distance": float(d), "angle": float(a), "rkd": distance_weight * float(d) + angle_weight * float(a),
                "raw_distance": float(F.smooth_l1_loss(pairwise_distances(s), pairwise_distances(t))),
                "l2": float((s - t).square().mean()) if s.shape == t.shape else None}

    s = transform_embedding(s0, float(scale), float(shift), float(rotation))
    return {"student": s, "teacher": t, "values": measure(s), "reference": measure(s0),
            "scale": float(scale), "shift": float(shift), "rotation": float(rotation)}


def _scatter(state: dict, labels) -> Figure:
    fig = Figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.subplots()
    c = None if labels is None else [v % 10 for v in labels]      # tab10: one colour per class (mod 10)
    for e, marker, who in ((state["teacher"], "o", "teacher"), (state["student"], "x", "student (transformed)")):
        ax.scatter(e[:, 0].numpy(), e[:, 1].numpy(), c=c, marker=marker, cmap="tab10", s=28, label=who,
                   vmin=0, vmax=9)
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    ax.set_title(f"scale {state['scale']:.2f}, shift {state['shift']:.2f}, rotation {state['rotation']:.0f} deg",
                 fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.set_aspect("equal", adjustable="datalim")
    return fig


class RKDInvarianceExplorer(widgets.VBox):
    """Scale, rotate and translate a student's embedding; watch the RKD terms to the teacher stay put
    while the unnormalised distance term and a plain L2 move (Park et al., CVPR 2019, Sec. 3.2).

    Args:
        student, teacher: (B, D) embeddings of the same examples (see :func:`rkd_invariance_state`);
            the scatter shows their first two coordinates.
        labels: optional (B,) class indices colouring the points.

    Attributes: ``scale``, ``shift``, ``rotation`` (sliders), ``output`` (Output), ``state`` (the latest
    :func:`rkd_invariance_state` dict), ``last_figure``.
    """

    def __init__(self, student: torch.Tensor, teacher: torch.Tensor, labels=None):
        super().__init__()
        rkd_invariance_state(student, teacher)                     # validate once, early
        if labels is not None:
            labels = [int(v) for v in labels]
            if len(labels) != student.shape[0]:
                raise ValueError(f"labels must have one entry per example (B = {student.shape[0]}), got {len(labels)}")
        self._student, self._teacher, self._labels = student, teacher, labels
        self.scale = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="scale")
        self.shift = widgets.FloatSlider(value=0.0, min=-5.0, max=5.0, step=0.25, description="shift")
        self.rotation = widgets.FloatSlider(value=0.0, min=0.0, max=360.0, step=5.0, description="rotation")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.scale, self.shift, self.rotation):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.scale, self.shift, self.rotation]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state, the scatter and the table for the current sliders (the sliders call this)."""
        state = rkd_invariance_state(self._student, self._teacher, self.scale.value, self.shift.value,
                                     self.rotation.value)
        fig = _scatter(state, self._labels)
        names = {"distance": "RKD distance term", "angle": "RKD angle term", "rkd": "RKD loss (25 D + 50 A)",
                 "raw_distance": "distance term, not normalised", "l2": "plain L2 to the teacher"}

        def fmt(v):
            return "n/a (other dimension)" if v is None else f"{v:.5f}"

        body = [[names[q], fmt(state["reference"][q]), fmt(state["values"][q])] for q in QUANTITIES]
        plain = "; ".join(f"{names[q]}: {fmt(state['values'][q])}" for q in QUANTITIES)
        table = _html_output(_html_table(["quantity", "untransformed", "transformed"], body), plain)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: the teacher's and the transformed student's embedding"),
                               table)
        return state
