"""AB: Heo, Lee, Yun, Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by
Hidden Neurons", AAAI 2019 (arXiv:1811.03233).

A ReLU neuron's *activation boundary* is where its pre-activation crosses 0. AB transfers the side of
each boundary the teacher's neurons are on (active or not), not their response magnitudes, with the
squared-hinge surrogate :func:`kdteach.losses.ab_loss` on **pre-activation** features
(``preact = True``: the trainer captures each stage's input of its activation module, the CRD
benchmark's ``preact=True`` features; see :mod:`kdteach.models`).

Two stages, as in the paper (initialisation by boundary transfer, then ordinary training) and the
CRD benchmark (RepDistiller ``train_student.py --distill abound``, ``helper/pretrain.py``):

1. ``init``: the student's feature layers (not ``fc``) and the connectors minimise

       L_init = ab_weight · Σ_i 2^(i − n + 1) · ab_loss(c_i(s_i), t_i; margin)

   over the n stage pairs after the stem (the benchmark's ``feat[1:-1]``, i = 0 shallowest; the
   deepest stage has weight 1, each shallower one half the next, ``ABLoss``'s ``self.w``), with
   ``ab_weight`` = 3/1000 (``ABLoss``'s ``/ 1000 * 3``; the authors' CIFAR script has the same three
   weights and factor) and margin 1. The benchmark back-propagates this sum without a further weight.
   ``init_epochs`` epochs (None: the budget's ``init_epochs``, the length the benchmark gives its
   two-stage methods, ``--init_epochs 30`` at ``paper``, scaled to the budget like :mod:`fitnet`'s and
   :mod:`fsp`'s first stages; ``ci``: 3) at the budget's initial learning rate held constant.
2. ``main``: cross-entropy only, no teacher (``scripts/run_cifar_distill.sh``: ``--distill abound -a 0
   -b 1``; the main loop sets ``loss_kd = 0`` for AB, so ``-b`` has no effect and ``-a 0`` drops KD).
   The connectors are discarded.

The connector c_i (:func:`ab_connector`) maps the student's stage i to the teacher's: the identity when
channels and stride agree, else the benchmark's ``ConvReg`` without its ReLU (the target is a
pre-activation, which may be negative), i.e. the conv (or transposed conv) + BN of the FitNets
regressor built from the declared stage channels and strides (:func:`kdteach.methods.fitnet.regressor_spec`),
so any zoo pair with the same number of stages works. A pair whose stage lists differ in length, or
whose strides' ratio is not an integer, is a clear error naming both models' stages.

Deviations and choices, stated:

* The authors' CIFAR code (``cifar10_AB_distillation.py``, ``models/distillation_module.py``) trains
  its second stage with a KD loss (T = 3, no CE term); its connectors are the identity when the two
  WRNs have equal widths and a 1x1 conv (no bias) + BN otherwise, for maps of equal size. The
  benchmark trains the second stage with CE and its ``ConvReg`` also handles maps of different
  sizes. This module follows the benchmark (its 1x1 conv has a bias, which the BN makes redundant).
* :func:`~kdteach.losses.ab_loss` is a *sum* over the C·H·W entries of a stage, so at the ``ci``
  budget's 16x16 inputs it is about a quarter of its 32x32 value; stage 1 has no other term, so this
  acts as a 4x smaller stage-1 learning rate. ``ab_weight`` is kept at the benchmark's 3/1000 at every
  resolution (pass ``--set ab_weight=...`` to change it); no :func:`~kdteach.methods.area_rescaled`
  factor, which corrects the opposite case (losses that grow as the maps shrink).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from ..losses import ab_loss
from .base import LossContext, Method, StagePlan, check_init_epochs, cross_entropy, init_then_main, stage_names
from .fitnet import _describe, hint_regressor

__all__ = ["AB", "ab_connector", "ab_stage_pairs", "paired_stages", "preact_regressor", "stage_weights"]


def ab_stage_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple]:
    """The (student, teacher) :class:`~kdteach.models.Stage` pairs AB transfers: every stage after the stem.

    Raises:
        ValueError: the two models have different numbers of stages (the message names both).
    """
    return paired_stages("ab", student, teacher)


def paired_stages(method: str, student: nn.Module, teacher: nn.Module) -> list[tuple]:
    """Every stage after the stem of ``student`` paired one to one with ``teacher``'s (AB, OFD).

    Raises:
        ValueError: the two models have different numbers of stages (the message names ``method`` and both models).
    """
    s_names, t_names = stage_names(student, skip_first=True), stage_names(teacher, skip_first=True)
    if len(s_names) != len(t_names):
        raise ValueError(f"method {method!r} pairs the stages after the stem one to one, but the student "
                         f"{_describe(student)} has {len(s_names)} of them and the teacher {_describe(teacher)} "
                         f"has {len(t_names)}")
    return [(student.stage(s), teacher.stage(t)) for s, t in zip(s_names, t_names)]


def ab_connector(student_stage, teacher_stage, *, student: str = "student", teacher: str = "teacher") -> nn.Module:
    """The connector from a student stage's pre-activation (B, C_s, H_s, W_s) to the teacher's (B, C_t, H_t, W_t).

    ``nn.Identity()`` when channels and strides are equal (the benchmark keeps the student's feature
    as it is); otherwise the FitNets regressor's conv (or transposed conv) + BN for these two stages
    (:func:`kdteach.methods.fitnet.regressor_spec`'s shape rule), without its ReLU.

    Raises:
        ValueError: the strides' ratio is not an integer; the message names both stages and models.
    """
    if (student_stage.channels, student_stage.stride) == (teacher_stage.channels, teacher_stage.stride):
        return nn.Identity()
    return preact_regressor("ab", student_stage, teacher_stage, student=student, teacher=teacher)


def preact_regressor(method: str, student_stage, teacher_stage, *, student: str = "student",
                     teacher: str = "teacher") -> nn.Sequential:
    """The FitNets regressor's conv (or transposed conv) + BN for two stages, without its ReLU (the target is a
    pre-activation, which may be negative): (B, C_s, H_s, W_s) -> (B, C_t, H_t, W_t). Used by AB and OFD.

    Raises:
        ValueError: the strides' ratio is not an integer; the message names ``method``, both stages and models.
    """
    try:
        regressor = hint_regressor(student_stage, teacher_stage, student=student, teacher=teacher)
    except ValueError as err:
        raise ValueError(f"method {method!r} cannot connect the student's stage {student_stage.name!r} "
                         f"({student_stage.channels} channels, stride {student_stage.stride}) to the teacher's stage "
                         f"{teacher_stage.name!r} ({teacher_stage.channels} channels, stride {teacher_stage.stride}): "
                         f"the strides' ratio is not an integer; student {student}, teacher {teacher}") from err
    return regressor[:2]                                         # conv + BN; the target is a pre-activation


def stage_weights(n: int) -> list[float]:
    """The benchmark's per-stage weights 2^(i − n + 1), i = 0 (shallowest) .. n − 1 (deepest, weight 1)."""
    return [2.0 ** (i - n + 1) for i in range(n)]


class AB(Method):
    """Two-stage AB: stage ``init`` has term ``ab`` (boundary transfer through the connectors), stage
    ``main`` term ``ce`` (no teacher)."""

    name = "ab"
    paper = ("B. Heo, M. Lee, S. Yun, J. Y. Choi, Knowledge Transfer via Distillation of Activation Boundaries "
             "Formed by Hidden Neurons, AAAI 2019 (https://arxiv.org/abs/1811.03233)")
    defaults = MappingProxyType({"ce_weight": 1.0, "ab_weight": 3e-3, "margin": 1.0, "init_epochs": None})
    preact = True

    def validate_hparams(self) -> None:
        super().validate_hparams()
        check_init_epochs(self.name, self.hparams["init_epochs"])
        m = self.hparams["margin"]
        if not m > 0:
            raise ValueError(f"hyper-parameter 'margin' of method 'ab' must be > 0, got {m!r}")

    def student_features(self, student) -> list[str]:
        """Every stage after the stem (benchmark ``feat[1:-1]``), captured before the activation."""
        return stage_names(student, skip_first=True)

    def check_models(self, student, teacher) -> None:
        names = dict(student=_describe(student), teacher=_describe(teacher))
        for s, t in ab_stage_pairs(student, teacher):
            ab_connector(s, t, **names)

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"connector": ModuleList of ab_connector(s_i, t_i)}``, one per stage pair."""
        names = dict(student=_describe(student), teacher=_describe(teacher))
        return nn.ModuleDict({"connector": nn.ModuleList(
            [ab_connector(s, t, **names) for s, t in ab_stage_pairs(student, teacher)])})

    def stages(self, budget) -> list[StagePlan]:
        """``init`` (stage-1 epochs, features + connectors, constant lr), then ``main`` (CE, no teacher)."""
        return init_then_main(self.name, self.hparams["init_epochs"], budget, main_teacher=False)

    @staticmethod
    def boundary_losses(ctx: LossContext) -> list[torch.Tensor]:
        """Per stage pair, ``ab_loss(connector_i(s_i), t_i, margin)`` (unweighted, shallow to deep)."""
        s_feats, t_feats = list(ctx.student_features.values()), list(ctx.teacher_features.values())
        return [ab_loss(c(s), t, ctx.hparams["margin"])
                for c, s, t in zip(ctx.extras["connector"], s_feats, t_feats)]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Stage ``init``: ``{"ab": ab_weight · Σ_i 2^(i−n+1) · ab_loss_i}``; stage ``main``: ``{"ce": ...}``."""
        h = ctx.hparams
        if ctx.stage == "init":
            losses = self.boundary_losses(ctx)
            return {"ab": h["ab_weight"] * sum(w * l for w, l in zip(stage_weights(len(losses)), losses))}
        return {"ce": h["ce_weight"] * cross_entropy(ctx)}
