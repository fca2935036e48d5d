"""KD-SVD: Lee, Kim, Song, "Self-supervised Knowledge Distillation Using Singular Value
Decomposition", ECCV 2018 (arXiv:1807.06819).

The student matches the teacher's "distilled feature vectors": top right singular vectors of each
stage's feature matrix, aligned in sign and order, related between consecutive stages by an RBF
kernel. Over the stages after the stem (the CRD benchmark's ``feat[1:-1]``):

    L = ce_weight * CE(z_s, y) + beta * kdsvd_loss([f_s], [f_t], k)

Weights from the CRD benchmark (``--distill kdsvd``, β = 1; its script sets ``-a 0``), k = 1.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import kdsvd_loss
from .base import LossContext, Method, cross_entropy, paired_stage_names, stage_names


class KDSVD(Method):
    """KD-SVD over the stage outputs after the stem; terms ``ce`` and ``kdsvd``."""

    name = "kdsvd"
    paper = ("S. H. Lee, D. H. Kim, B. C. Song, Self-supervised Knowledge Distillation Using Singular Value "
             "Decomposition, ECCV 2018 (https://arxiv.org/abs/1807.06819)")
    defaults = MappingProxyType({"ce_weight": 1.0, "beta": 1.0, "k": 1})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        k = self.hparams["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"hyper-parameter 'k' of method 'kdsvd' must be an int >= 1, got {k!r}")

    def student_features(self, student) -> list[str]:
        """Stage names after the stem (benchmark ``feat[1:-1]``)."""
        return stage_names(student, skip_first=True)

    def check_models(self, student, teacher) -> None:
        s_names, t_names = paired_stage_names(self.name, student, teacher, skip_first=True)
        if len(s_names) < 2:
            raise ValueError(f"method 'kdsvd' relates consecutive stages and needs at least 2 stages after the stem; "
                             f"got {s_names}")
        s_ch = [student.stage(n).channels for n in s_names]
        t_ch = [teacher.stage(n).channels for n in t_names]
        if s_ch != t_ch:
            raise ValueError(f"method 'kdsvd' compares channel-space singular vectors, so the student and teacher "
                             f"stages need equal channels; got student {s_ch} and teacher {t_ch}")

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "kdsvd": beta · kdsvd_loss([f_s,i (B,C,H,W)], [f_t,i], k)}``."""
        h = ctx.hparams
        term = kdsvd_loss(list(ctx.student_features.values()), list(ctx.teacher_features.values()), h["k"])
        return {"ce": h["ce_weight"] * cross_entropy(ctx), "kdsvd": (h["beta"] * ctx.warmup) * term}
