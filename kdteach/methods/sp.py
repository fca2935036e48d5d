"""SP: Tung, Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019 (arXiv:1907.09682).

Images that the teacher finds similar should be similar for the student: the row-normalised B×B
similarity matrices of one layer's features (:func:`kdteach.losses.sp_loss`) are matched within each
batch. Only the batch size has to agree, so any zoo pair works without a connector:

    L = ce_weight · CE(z_s, y) + beta · sp_loss(f_s, f_t)

Weights and feature: β = 3000, no KD term and the cross-entropy at weight 1 are the CRD benchmark's
(RepDistiller ``scripts/run_cifar_distill.sh``: ``--distill similarity --model_s resnet8x4 -a 0 -b 3000``;
``-r`` keeps ``train_student.py``'s default 1). The feature is the last stage's output, the benchmark's
``feat[-2]`` (``g_s = [feat_s[-2]]``; the feature list is [stem, stage 1, ..., stage n, pool], so
``feat[-2]`` is stage n after its activation, before pooling), captured here as the model's deepest
declared stage.

Deviations and choices, stated: the paper (Eq. 4) allows a sum over several layer pairs with weight γ
and tunes γ per experiment; this module follows the benchmark (one pair, β = 3000). sp_loss depends on
the batch size (a mean over B² entries of unit rows of length B), not on the map size: the weight is not
rescaled at the ``ci`` budget's 16x16 inputs (no :func:`~kdteach.methods.area_rescaled` factor). The
``paper`` budget trains with the benchmark's batch of 64, for which β was set; ``ci``, ``quick`` and
``gpu`` train with batches of 128, where the same spread of similarities gives roughly half the loss, so
β = 3000 there acts like about 1500 at batch 64. β is kept at the benchmark's value at every budget (pass
``--set beta=...`` to change it).
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import sp_loss
from .base import LossContext, Method, cross_entropy, stage_names

__all__ = ["SP"]


class SP(Method):
    """Similarity-preserving KD on the deepest stage's output; terms ``ce`` and ``sp``."""

    name = "sp"
    paper = ("F. Tung, G. Mori, Similarity-Preserving Knowledge Distillation, ICCV 2019 "
             "(https://arxiv.org/abs/1907.09682)")
    defaults = MappingProxyType({"ce_weight": 1.0, "beta": 3000.0})

    def student_features(self, student) -> list[str]:
        """The deepest stage (benchmark ``feat[-2]``); the teacher's is its own deepest stage."""
        names = stage_names(student)
        if not names:
            raise ValueError(f"method 'sp' needs a model that declares its stages, got {type(student).__name__}")
        return names[-1:]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "sp": beta · sp_loss(f_s (B, C_s, H_s, W_s), f_t (B, C_t, H_t, W_t))}``."""
        h = ctx.hparams
        (fs,), (ft,) = ctx.student_features.values(), ctx.teacher_features.values()
        return {"ce": h["ce_weight"] * cross_entropy(ctx), "sp": (h["beta"] * ctx.warmup) * sp_loss(fs, ft)}
