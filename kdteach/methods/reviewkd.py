"""ReviewKD: Chen, Liu, Zhao, Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021
(arXiv:2104.09044); the re-implementation in mdistiller (github.com/megvii-research/mdistiller,
``mdistiller/distillers/ReviewKD.py``, defaults in ``mdistiller/engine/cfg.py``, CIFAR-100 weight in
``configs/cifar100/reviewkd.yaml``).

Knowledge *review*: a teacher stage is matched not by the student's stage of the same depth alone
but by a fusion of that stage with all the student's *deeper* ones. The review path runs deep to
shallow over the student's features f_1 (shallowest stage after the stem) ... f_n (deepest stage)
and f_{n+1} = the pooled feature as a (B, D, 1, 1) map (mdistiller appends it, so the teacher's
pooled feature is a target too). Each level has an attention-based fusion module
(:class:`ABF`):

    x_i = BN(conv1x1(f_i))                               (C_s,i -> M channels, M = min(512, D_s))
    r_{i+1} = nearest-upsample(fused_{i+1}) to x_i's size (the deeper level's fused map)
    a = sigmoid(conv1x1([x_i, r_{i+1}]))                 (B, 2, H, W): two attention maps
    fused_i = a[:, 0] · x_i + a[:, 1] · r_{i+1}          (deepest level: fused = x, no attention)
    fused_i -> nearest-resized to the teacher's map size when it differs
    out_i = BN(conv3x3(fused_i))                         (M -> the teacher's C_t,i channels)

and the loss is the hierarchical context loss (:func:`kdteach.losses.hcl_loss`) between
(out_1, ..., out_{n+1}) and the teacher's (t_1, ..., t_n, pooled t):

    L = ce_weight · CE + warmup(e) · reviewkd_weight · hcl_loss(outs, teacher maps)

Weights (mdistiller): ``ce_weight`` 1 (``CFG.REVIEWKD.CE_WEIGHT``), ``reviewkd_weight`` 5
(``configs/cifar100/reviewkd.yaml``: ``REVIEWKD_WEIGHT: 5.0``; the config default is 1), the
distillation term ramped linearly over the first 20 of 240 epochs (``WARMUP_EPOCHS: 20``,
``min(epoch / 20, 1)`` with 1-based epochs). Here the ramp is the trainer's ``ctx.warmup`` =
``min(1, (e + 1) / W)`` for the 0-based epoch e (:attr:`Method.uses_warmup`), W the budget's
``warmup_epochs``: 20 at ``paper`` (the same 20 of 240), 2 at ``ci`` and ``quick``, 5 at ``gpu``: the
ramp keeps about its share of the schedule instead of its 20 epochs, which would exceed a short
budget.

The ABF modules are the method's extras, built from the declared stages of any zoo pair with the
same number of stages after the stem: channels from ``Stage.channels`` and ``feature_dim``, map
sizes at run time (nearest resizing, as mdistiller's ``F.interpolate(..., mode="nearest")``, so the
student's and teacher's strides need not agree). A pair whose stage counts differ is a clear error
naming both models' stages (mdistiller lists the features per pair by hand).

``review_batch`` (kdteach's cost knob, not in the paper or mdistiller; default None, the whole batch):
the review path and HCL run on the first ``review_batch`` images of each (shuffled) training batch only,
the cross-entropy on all of them, as KD-SVD's ``svd_batch``; the ABFs cost about ``review_batch / B``
of their full-batch cost.

Deviations, stated: one ``preact`` flag captures both models' stages before their activation
(mdistiller takes the teacher's ``preact_feats`` and, by default, the student's post-ReLU ``feats``;
``STU_PREACT=True`` is its option for the student's pre-ReLU features, the one used here); the ABF
sizes come from the maps at run time, not from per-pair ``SHAPES`` lists; the optimiser and schedule
are the budget's (mdistiller: SGD lr 0.05, batch 64, 240 epochs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ..features import POOL
from ..losses import hcl_loss
from .base import LossContext, Method, cross_entropy, stage_names
from .fitnet import _describe

__all__ = ["ReviewKD", "ABF", "ReviewOutput", "build_abfs", "review_path", "review_stage_pairs",
           "reviewed_features", "teacher_targets"]

#: mdistiller's ``MAX_MID_CHANNEL``: the ABF width is min(512, the student's pooled dimension)
MAX_MID_CHANNELS = 512


class ABF(nn.Module):
    """Attention-based fusion, one level of the review path (Chen et al., CVPR 2021, Fig. 3(c)).

    Args:
        in_channels: the student's channels at this level (C_s).
        mid_channels: the review path's width M (shared by all levels).
        out_channels: the teacher's channels at this level (C_t).
        fuse: whether a deeper level's fused map arrives (False for the deepest level).

    ``forward(x, residual=None, out_size=None)`` with x (B, C_s, H, W), residual (B, M, h, w) or None,
    out_size the teacher's (H_t, W_t): returns ``(out (B, C_t, H_t, W_t), fused (B, M, H_t, W_t),
    attention (B, 2, H, W) or None)``; attention[:, 0] weighs this level's map, [:, 1] the deeper one.
    Weights: kaiming-uniform (a = 1) for both convolutions, as mdistiller.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = (nn.Sequential(nn.Conv2d(2 * mid_channels, 2, kernel_size=1), nn.Sigmoid())
                         if fuse else None)
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                out_size: tuple[int, int] | None = None):
        x = self.conv1(x)
        attention = None
        if self.att_conv is not None:
            if residual is None:
                raise ValueError("this ABF fuses a deeper level: residual (B, M, h, w) is required")
            residual = F.interpolate(residual, size=tuple(x.shape[-2:]), mode="nearest")
            attention = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * attention[:, 0:1] + residual * attention[:, 1:2]
        if out_size is not None and tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode="nearest")
        return self.conv2(x), x, attention


def review_stage_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple]:
    """The (student, teacher) :class:`~kdteach.models.Stage` pairs after the stem, one to one.

    Raises:
        ValueError: the two models have different numbers of stages after the stem (names both models' stages).
    """
    s_names, t_names = stage_names(student, skip_first=True), stage_names(teacher, skip_first=True)
    if len(s_names) != len(t_names):
        raise ValueError(f"method 'reviewkd' reviews the stages after the stem one to one (plus the pooled "
                         f"feature), but the student {_describe(student)} has {len(s_names)} of them and the "
                         f"teacher {_describe(teacher)} has {len(t_names)}")
    return [(student.stage(s), teacher.stage(t)) for s, t in zip(s_names, t_names)]


def build_abfs(student: nn.Module, teacher: nn.Module) -> nn.ModuleList:
    """The ABF modules, shallow to deep: one per stage pair after the stem, then the pooled feature's.

    Widths: in = the student's stage channels (``feature_dim`` for the pooled level), mid = min(512,
    the student's ``feature_dim``), out = the teacher's stage channels (its ``feature_dim``); every
    level but the deepest fuses.
    """
    pairs = review_stage_pairs(student, teacher)
    ins = [s.channels for s, _ in pairs] + [student.feature_dim]
    outs = [t.channels for _, t in pairs] + [teacher.feature_dim]
    mid = min(MAX_MID_CHANNELS, student.feature_dim)
    return nn.ModuleList([ABF(c_in, mid, c_out, fuse=i < len(ins) - 1)
                          for i, (c_in, c_out) in enumerate(zip(ins, outs))])


@dataclass
class ReviewOutput:
    """The review path's result, shallow to deep (level n is the pooled feature).

    Attributes:
        outputs: (B, C_t,i, H_t,i, W_t,i) maps compared with the teacher's by HCL.
        attentions: (B, 2, H_i, W_i) ABF attention maps ([:, 0] this level, [:, 1] the deeper fused
            map), None for the deepest level (it fuses nothing).
    """

    outputs: list[torch.Tensor]
    attentions: list[torch.Tensor | None]


def _as_maps(features) -> list[torch.Tensor]:
    return [f if f.dim() == 4 else f[:, :, None, None] for f in features]


def review_path(abfs: nn.ModuleList, student_features, out_sizes) -> ReviewOutput:
    """Run the review path deep to shallow (Chen et al., CVPR 2021, Fig. 2(d)).

    Args:
        abfs: :func:`build_abfs`'s modules, shallow to deep.
        student_features: the student's maps shallow to deep, (B, C_i, H_i, W_i), the last may be the
            (B, D) pooled feature.
        out_sizes: the teacher's (H, W) per level, shallow to deep.

    Returns:
        :class:`ReviewOutput` (shallow to deep).
    """
    feats = _as_maps(student_features)
    if not len(feats) == len(abfs) == len(out_sizes):
        raise ValueError(f"review_path needs one ABF and one teacher size per student feature, got "
                         f"{len(feats)} features, {len(abfs)} ABF modules and {len(out_sizes)} sizes")
    outputs: list = [None] * len(feats)
    attentions: list = [None] * len(feats)
    residual = None
    for i in reversed(range(len(feats))):
        outputs[i], residual, attentions[i] = abfs[i](feats[i], residual, tuple(out_sizes[i]))
    return ReviewOutput(outputs, attentions)


def teacher_targets(ctx: LossContext) -> list[torch.Tensor]:
    """The teacher's stage maps after the stem and its pooled feature as (B, D, 1, 1), shallow to deep."""
    return _as_maps(ctx.teacher_features.values())


def reviewed_features(ctx: LossContext) -> ReviewOutput:
    """The review path on one batch's student features, sized to the teacher's maps."""
    targets = teacher_targets(ctx)
    return review_path(ctx.extras["abf"], list(ctx.student_features.values()),
                       [tuple(t.shape[-2:]) for t in targets])


class ReviewKD(Method):
    """ReviewKD: the review path with ABF modules and HCL; terms ``ce`` and ``reviewkd``."""

    name = "reviewkd"
    paper = ("P. Chen, S. Liu, H. Zhao, J. Jia, Distilling Knowledge via Knowledge Review, CVPR 2021 "
             "(https://arxiv.org/abs/2104.09044)")
    defaults = MappingProxyType({"ce_weight": 1.0, "reviewkd_weight": 5.0, "review_batch": None})
    preact = True
    uses_warmup = True

    def validate_hparams(self) -> None:
        super().validate_hparams()
        n = self.hparams["review_batch"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"hyper-parameter 'review_batch' of method 'reviewkd' must be None (the whole batch) or "
                             f"an int >= 1, got {n!r}")

    def student_features(self, student) -> list[str]:
        """The stages after the stem, then ``"pool"`` (mdistiller's ``feats`` + ``pooled_feat``)."""
        return stage_names(student, skip_first=True) + [POOL]

    def check_models(self, student, teacher) -> None:
        review_stage_pairs(student, teacher)

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"abf": build_abfs(student, teacher)}``."""
        return nn.ModuleDict({"abf": build_abfs(student, teacher)})

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "reviewkd": warmup · reviewkd_weight · hcl_loss(review path, teacher)}``."""
        h = ctx.hparams
        n = h["review_batch"]
        if n is not None:      # the review path and HCL on the first n images of the batch only (cost knob)
            ctx = dataclasses.replace(ctx, student_features={k: v[:n] for k, v in ctx.student_features.items()},
                                      teacher_features={k: v[:n] for k, v in ctx.teacher_features.items()})
        outs = reviewed_features(ctx).outputs
        hcl = hcl_loss(outs, teacher_targets(ctx))
        return {"ce": h["ce_weight"] * cross_entropy(ctx), "reviewkd": (h["reviewkd_weight"] * ctx.warmup) * hcl}
