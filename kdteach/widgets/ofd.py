"""The margin explorer (section 7 of the ofd notebook): OFD's margin ReLU and partial L2 for one channel.

:class:`MarginExplorer` shows, for one distilled stage and one channel, the teacher's pre-ReLU
distribution with its margin (and the Gaussian N(β, γ²) of its BN), each student's (connected)
responses against the teacher's with the region the partial L2 ignores
(:func:`kdteach.viz.plot_preact_response`), and a table per student: the share of positions ignored,
the channel's partial L2 and its plain L2 per image. The logic is :func:`margin_explorer_state`, a pure
function of stored features: no model is run and nothing is trained.

Reference: B. Heo, J. Kim, S. Yun, H. Park, N. Kwak, J. Y. Choi, "A Comprehensive Overhaul of Feature
Distillation", ICCV 2019 (arXiv:1904.01866).
"""

from __future__ import annotations

import html
import numbers
from typing import Mapping

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table
from .at import _check_features

__all__ = ["margin_explorer_state", "MarginExplorer"]


def margin_explorer_state(features: Mapping[str, Mapping[str, torch.Tensor]], margins: Mapping[str, torch.Tensor],
                          stage: str, channel: int, bn: Mapping[str, tuple] | None = None,
                          teacher: str = "teacher") -> dict:
    """Everything the margin explorer shows for one stage and channel.

    Heo et al. (ICCV 2019). With t the teacher's pre-ReLU values of the channel over all images and
    positions, s a student's (after its connector), m the channel's margin and target = max(t, m): the
    share of the teacher's values below 0 (what its ReLU cuts) and below m; per student the share of
    positions the partial L2 ignores (s ≤ target ≤ 0), the channel's partial L2 per image
    (:func:`kdteach.losses.ofd_loss` restricted to the channel) and its plain L2 per image, Σ (s − t)² / N.

    Args:
        features: model name -> (stage -> (N, C, H, W) pre-ReLU features), the teacher and one or more
            students, the students already mapped to the teacher's shape (an OFD run's connector).
        margins: stage -> (C,) the teacher's margins.
        stage: a stage every model has; channel: 0 <= channel < C.
        bn: optional stage -> (γ (C,), β (C,)) of the teacher's BN, for the Gaussian.
        teacher: the key of the teacher in ``features``.

    Returns:
        dict with ``stage``, ``channel``, ``models`` (teacher first), ``stages``, ``channels`` (C),
        ``margin`` (float), ``bn`` ((γ, β) floats or None), ``teacher`` ((N, H, W) values),
        ``students`` (model -> (N, H, W) values), ``negative_share`` and ``below_margin_share`` (teacher,
        floats) and ``rows`` (student -> dict ``ignored``, ``partial_l2``, ``plain_l2``).

    Raises:
        ValueError: malformed ``features``, a student not in the teacher's shape, unknown ``stage``,
            ``channel`` out of range, or margins of the wrong length.
    """
    from kdteach.losses import ofd_loss

    models, stages, _ = _check_features(features, teacher)
    if stage not in stages:
        raise ValueError(f"stage must be one of {stages} (the stages every model has), got {stage!r}")
    t_all = features[teacher][stage].detach().double().cpu()
    c = t_all.shape[1]
    if isinstance(channel, bool) or not isinstance(channel, numbers.Integral) or not 0 <= channel < c:
        raise ValueError(f"channel must be an int in [0, {c}), got {channel!r}")
    if stage not in margins or tuple(margins[stage].shape) != (c,):
        got = tuple(margins[stage].shape) if stage in margins else "missing"
        raise ValueError(f"margins[{stage!r}] must have shape ({c},), got {got}")
    for m in models[1:]:
        if features[m][stage].shape != t_all.shape:
            raise ValueError(f"features[{m!r}][{stage!r}] must have the teacher's shape {tuple(t_all.shape)} "
                             f"(pass the student through its connector), got {tuple(features[m][stage].shape)}")
    channel = int(channel)
    margin = float(margins[stage][channel])
    t = t_all[:, channel]
    target = torch.clamp(t, min=margin)
    n = t.shape[0]
    rows, students = {}, {}
    for m in models[1:]:
        s = features[m][stage].detach().double().cpu()[:, channel]
        students[m] = s
        rows[m] = {"ignored": float(((s <= target) & (target <= 0)).double().mean()),
                   "partial_l2": float(ofd_loss(s[:, None], t[:, None], margins[stage][channel:channel + 1]
                                                .detach().double().cpu())),
                   "plain_l2": float((s - t).square().sum() / n)}
    gb = None
    if bn is not None and stage in bn:
        g, b = bn[stage]
        gb = (float(g[channel]), float(b[channel]))
    return {"stage": stage, "channel": channel, "models": models, "stages": stages, "channels": c,
            "margin": margin, "bn": gb, "teacher": t, "students": students,
            "negative_share": float((t < 0).double().mean()), "below_margin_share": float((t < margin).double().mean()),
            "rows": rows}


class MarginExplorer(widgets.VBox):
    """Choose a distilled stage and a channel; see the teacher's pre-ReLU distribution with its margin and
    each student against the teacher with what the partial L2 ignores (Heo et al., ICCV 2019).

    Args:
        features, margins, bn, teacher: as :func:`margin_explorer_state`.
        stage, channel: initial values.

    Attributes: ``stage``, ``channel`` (controls), ``output`` (Output), ``state`` (the latest
    :func:`margin_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, features: Mapping[str, Mapping[str, torch.Tensor]], margins: Mapping[str, torch.Tensor],
                 bn: Mapping[str, tuple] | None = None, teacher: str = "teacher", stage: str | None = None,
                 channel: int = 0):
        super().__init__()
        _, stages, _ = _check_features(features, teacher)
        stage = stages[-1] if stage is None else stage
        first = margin_explorer_state(features, margins, stage, channel, bn, teacher)  # validate once, early
        self._features, self._margins, self._bn, self._teacher = features, margins, bn, teacher
        self.stage = widgets.Dropdown(options=stages, value=stage, description="stage")
        self.channel = widgets.IntSlider(value=channel, min=0, max=first["channels"] - 1, description="channel")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        self.stage.observe(self._on_stage, names="value")
        self.channel.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.stage, self.channel]), self.output)
        self.update()

    def _on_stage(self, _change) -> None:
        channels = self._features[self._teacher][self.stage.value].shape[1]
        with self.channel.hold_trait_notifications():
            self.channel.value = min(self.channel.value, channels - 1)
            self.channel.max = channels - 1
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        from kdteach.viz import plot_preact_response

        state = margin_explorer_state(self._features, self._margins, self.stage.value, self.channel.value, self._bn,
                                      self._teacher)
        stage, ch = state["stage"], state["channel"]
        fig = plot_preact_response(state["teacher"], state["students"], state["margin"], bn=state["bn"],
                                   title=f"{stage}, channel {ch}: margin {state['margin']:.3f} (one x-axis shared)")
        header = ["student", "ignored by partial L2", "partial L2 / image", "plain L2 / image"]
        body = [[m, f"{r['ignored']:.1%}", f"{r['partial_l2']:.4f}", f"{r['plain_l2']:.4f}"]
                for m, r in state["rows"].items()]
        plain = "; ".join(f"{m}: ignored {r['ignored']:.1%}, partial L2 {r['partial_l2']:.4f}, plain L2 "
                          f"{r['plain_l2']:.4f}" for m, r in state["rows"].items())
        caption = html.escape(f"Stage {stage}, channel {ch}: teacher {state['negative_share']:.0%} below 0, "
                              f"{state['below_margin_share']:.0%} below the margin {state['margin']:.3f}.")
        table = _html_output(f"<p>{caption}</p>{_html_table(header, body)}", plain)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, f"Figure: pre-ReLU responses at {stage}, channel {ch}"), table)
        return state
