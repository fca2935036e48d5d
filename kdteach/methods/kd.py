"""KD: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS Deep Learning
Workshop 2014 (arXiv:1503.02531).

The student matches the teacher's temperature-softened class probabilities:

    L = ce_weight * CE(z_s, y) + kd_weight * T² KL(softmax(z_t/T) ‖ softmax(z_s/T))

with hyper-parameters ``ce_weight`` = α_CE, ``kd_weight`` = α_KD and ``temperature`` = T.

Defaults, and where each comes from (the CRD benchmark's code, RepDistiller,
https://github.com/HobbitLong/RepDistiller):

- ``temperature`` = 4: ``train_student.py``'s default ``--kd_T 4`` (its ``DistillKL(opt.kd_T)``).
- ``ce_weight`` = 0.1, ``kd_weight`` = 0.9: the KD command of ``scripts/run_cifar_distill.sh``
  (``--distill kd -r 0.1 -a 0.9 -b 0``; ``-r`` is the classification weight, ``-a`` the KD weight).
  They are not ``train_student.py``'s defaults (``-r 1``, ``-a`` unset).

Hinton et al. give no single weighting: they report the best results with a considerably lower
weight on the hard-label term (Sec. 2) and use T = 20 for their MNIST student (Sec. 3).
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import kd_loss
from .base import LossContext, Method, cross_entropy


class KD(Method):
    """Hinton et al.'s knowledge distillation on logits (B, K); terms ``ce`` and ``kd``."""

    name = "kd"
    paper = ("G. Hinton, O. Vinyals, J. Dean, Distilling the Knowledge in a Neural Network, "
             "NIPS-W 2014 (https://arxiv.org/abs/1503.02531)")
    defaults = MappingProxyType({"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'kd' must be > 0, "
                             f"got {self.hparams['temperature']!r}")

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "kd": kd_weight · warmup · kd_loss(z_s, z_t, T)}`` on (B, K) logits."""
        h = ctx.hparams
        return {
            "ce": h["ce_weight"] * cross_entropy(ctx),
            "kd": (h["kd_weight"] * ctx.warmup) * kd_loss(ctx.student_logits, ctx.teacher_logits, h["temperature"]),
        }
