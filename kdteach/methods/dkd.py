"""DKD: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", CVPR 2022 (arXiv:2203.08679).

KD's loss is split into a target-class term (TCKD, the binary "target vs the rest" probabilities)
and a non-target term (NCKD, the distribution among the wrong classes); KD weights NCKD by the
teacher's 1 − p_t, DKD by a constant β:

    L = ce_weight * CE(z_s, y) + warmup(epoch) * (alpha * TCKD + beta * NCKD)

with TCKD, NCKD = :func:`kdteach.losses.dkd_terms` (each T² · KL at temperature T, batch mean) and
α·TCKD + β·NCKD = :func:`kdteach.losses.dkd_loss`. The terms are logged apart, already weighted:
``ce``, ``tckd`` (= warmup·α·TCKD) and ``nckd`` (= warmup·β·NCKD); their sum is the loss.

Defaults, and where each comes from (the authors' code, mdistiller,
https://github.com/megvii-research/mdistiller):

- ``ce_weight`` = 1.0, ``alpha`` = 1.0, ``beta`` = 8.0, ``temperature`` = 4.0: ``CFG.DKD`` in
  ``mdistiller/engine/cfg.py`` (``CE_WEIGHT``, ``ALPHA``, ``BETA``, ``T``). Its CIFAR-100 configs
  (``configs/cifar100/dkd/*.yaml``) keep them for resnet32x4 -> resnet8x4 (the pair of the
  ``gpu`` and ``paper`` budgets), resnet32x4 -> ShuffleNetV1/V2, ResNet50 -> MobileNetV2 and
  WRN-40-2 -> ShuffleNetV1, and override β only: 2.0 for resnet56 -> resnet20 and
  resnet110 -> resnet32, 6.0 for WRN-40-2 -> WRN-16-2 / WRN-40-1, VGG13 -> VGG8 and
  VGG13 -> MobileNetV2. β is tuned per pair; the ``ci`` tiny pair has no authors' value, so it
  uses the default.
- Warm-up: ``CFG.DKD.WARMUP`` = 20; ``DKD.forward_train`` multiplies the whole DKD term (not the
  cross-entropy) by ``min(epoch / 20, 1)`` with 1-based epochs, i.e. a linear ramp over the first
  20 of 240 epochs. Here the factor is the trainer's ``ctx.warmup`` = ``min(1, (e + 1) / W)`` for
  0-based epoch e (:attr:`Method.uses_warmup`), with W = the budget's ``warmup_epochs``: 20 of
  240 epochs at ``paper`` (mdistiller's schedule exactly), 5 of 60 at ``gpu`` (the same 1/12),
  2 of 20 at ``ci`` and ``quick`` (20/12 = 1.67 epochs, rounded to 2: 1/10). **Deviation:** the
  ramp's length in epochs is the budget's, scaled from the paper's 20/240; a schedule override
  (``epochs=N``) keeps the budget's ``warmup_epochs``.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import dkd_terms
from .base import LossContext, Method, cross_entropy


class DKD(Method):
    """Decoupled KD on logits (B, K) with the ground-truth labels; terms ``ce``, ``tckd``, ``nckd``."""

    name = "dkd"
    paper = ("B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, Decoupled Knowledge Distillation, "
             "CVPR 2022 (https://arxiv.org/abs/2203.08679)")
    defaults = MappingProxyType({"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0})
    uses_warmup = True

    def validate_hparams(self) -> None:
        super().validate_hparams()   # ce_weight, alpha, beta >= 0
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'dkd' must be > 0, "
                             f"got {self.hparams['temperature']!r}")

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "tckd": warmup · alpha · TCKD, "nckd": warmup · beta · NCKD}``
        on (B, K) logits and (B,) labels; ``tckd + nckd`` = warmup · ``dkd_loss(z_s, z_t, y, α, β, T)``."""
        h = ctx.hparams
        tckd, nckd = dkd_terms(ctx.student_logits, ctx.teacher_logits, ctx.y, h["temperature"])
        return {
            "ce": h["ce_weight"] * cross_entropy(ctx),
            "tckd": (h["alpha"] * ctx.warmup) * tckd,
            "nckd": (h["beta"] * ctx.warmup) * nckd,
        }
