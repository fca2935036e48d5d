"""RKD: Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019 (arXiv:1904.05068).

The student matches the *relations* among the examples of a batch in the teacher's embedding space:
the mean-normalised pairwise distances and the angles of every triple (:func:`kdteach.losses.rkd_loss`),
on the penultimate (``"pool"``, (B, D)) features of both networks, whose dimensions may differ:

    L = ce_weight · CE(z_s, y) + rkd_weight · [25 · L_distance + 50 · L_angle]

Defaults, and where each comes from (the CRD benchmark's code, RepDistiller):

- ``rkd_weight`` = 1, ``ce_weight`` = 1: ``scripts/run_cifar_distill.sh`` trains RKD with
  ``--distill rkd -a 0 -b 1`` (``-r`` left at ``train_student.py``'s default 1, no KD term);
- ``distance_weight`` = 25, ``angle_weight`` = 50: ``RKDLoss(w_d=25, w_a=50)`` (the authors' own
  metric-learning commands, lenscloth/RKD's README, use ``--dist_ratio 1 --angle_ratio 2``, the same 1:2 ratio);
- the features: the benchmark's ``feat_s[-1]``, ``feat_t[-1]``, the flattened output of the final pooling.

The paper trains RKD together with the classification loss (and, in its CIFAR-100 and Tiny ImageNet
experiments, Sec. 4.2, also combined with Hinton's KD term); pass ``--set kd_weight=...`` to add that term
(T = 4, :func:`kdteach.losses.kd_loss`). No loss weight depends on the resolution: both potentials
are computed on pooled (B, D) vectors and normalised.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import kd_loss, rkd_terms
from .base import LossContext, Method, cross_entropy

__all__ = ["RKD"]


class RKD(Method):
    """Relational KD on the pooled features: terms ``ce``, ``rkd`` (and ``kd`` when ``kd_weight`` > 0)."""

    name = "rkd"
    paper = ("W. Park, D. Kim, Y. Lu, M. Cho, Relational Knowledge Distillation, CVPR 2019 "
             "(https://arxiv.org/abs/1904.05068)")
    defaults = MappingProxyType({"ce_weight": 1.0, "rkd_weight": 1.0, "distance_weight": 25.0,
                                 "angle_weight": 50.0, "kd_weight": 0.0, "temperature": 4.0})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'rkd' must be > 0, "
                             f"got {self.hparams['temperature']!r}")

    def student_features(self, student) -> list[str]:
        """The penultimate features ``"pool"`` (B, D) (benchmark ``feat[-1]``)."""
        return ["pool"]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce", "rkd"}`` (+ ``"kd"``): rkd = rkd_weight · (w_D · distance + w_A · angle) on ``"pool"``."""
        h = ctx.hparams
        distance, angle = rkd_terms(ctx.student_features["pool"], ctx.teacher_features["pool"])
        terms = {"ce": h["ce_weight"] * cross_entropy(ctx),
                 "rkd": h["rkd_weight"] * (h["distance_weight"] * distance + h["angle_weight"] * angle)}
        if h["kd_weight"] > 0:
            terms["kd"] = h["kd_weight"] * kd_loss(ctx.student_logits, ctx.teacher_logits, h["temperature"])
        return terms
