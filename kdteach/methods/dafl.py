"""DAFL: Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu, Tian, "Data-Free Learning of Student Networks",
ICCV 2019 (arXiv:1904.01186).

The data-free protocol's reference method: no training image is ever seen. A generator G
(:class:`kdteach.models.generator.DAFLGenerator`) is trained against the frozen teacher T, used
as a fixed discriminator, so that T responds to G(z) as it does to real images:

    L_G = onehot_weight · L_oh(T(G(z))) + activation_weight · L_a(f_T(G(z))) + entropy_weight · L_ie(T(G(z)))

(:func:`~kdteach.losses.dafl_onehot_loss`, :func:`~kdteach.losses.dafl_activation_loss` on the
teacher's pooled features f_T, :func:`~kdteach.losses.dafl_entropy_loss`), and the student learns
from the teacher on the generated images only:

    L_S = kd_weight · kd_loss(S(G(z)), T(G(z)), T = 1)

(the authors' ``kdloss``: KL(p_T ‖ p_S) at temperature 1; images and teacher outputs detached).
Each step updates G on L_G, then S on L_S (:class:`kdteach.train.datafree.DataFreeTrainer`); the
real test split is used only to evaluate the student.

Defaults: the authors' CIFAR-10 command in their README (``--oh 0.05 --ie 5 --a 0.01 --lr_G 0.02
--latent_dim 1000``; Adam for G, as their code), and ``iters_per_epoch`` = 120, their
``--num_iter_per_epoch`` default. Deviations (listed in the notebook): the student uses the budget's
SGD recipe and schedule (the authors: SGD at lr 0.1, momentum 0.9, weight decay 5e-4, x0.1 steps),
the batch is the budget's (the authors: 1024), and the number of epochs is the budget's (2,000 in
the authors' CIFAR command).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from ..losses import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss, kd_loss
from .base import LossContext, Method


class DAFL(Method):
    """Data-free distillation through a generator; generator terms ``onehot``, ``activation``,
    ``entropy``; student term ``kd``."""

    name = "dafl"
    paper = ("H. Chen, Y. Wang, C. Xu, Z. Yang, C. Liu, B. Shi, C. Xu, C. Xu, Q. Tian, Data-Free Learning of "
             "Student Networks, ICCV 2019 (https://arxiv.org/abs/1904.01186)")
    defaults = MappingProxyType({"onehot_weight": 0.05, "activation_weight": 0.01, "entropy_weight": 5.0,
                                 "kd_weight": 1.0, "temperature": 1.0, "latent_dim": 1000, "lr_generator": 0.02,
                                 "iters_per_epoch": 120})
    protocol = "datafree"

    def validate_hparams(self) -> None:
        super().validate_hparams()
        for key in ("latent_dim", "iters_per_epoch"):
            v = self.hparams[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"hyper-parameter {key!r} of method 'dafl' must be an int >= 1, got {v!r}")
        for key in ("temperature", "lr_generator"):
            if not self.hparams[key] > 0:
                raise ValueError(f"hyper-parameter {key!r} of method 'dafl' must be > 0, got {self.hparams[key]!r}")

    def teacher_features(self, teacher: nn.Module) -> list[str]:
        """The teacher's pooled penultimate features, for the activation loss."""
        return ["pool"]

    def student_features(self, student: nn.Module) -> list[str]:
        return []

    def build_generator(self, budget, num_classes: int) -> nn.Module:
        """The generator G for ``budget``'s resolution (called under the run's seed)."""
        from ..models.generator import DAFLGenerator

        return DAFLGenerator(self.hparams["latent_dim"], budget.resolution, 3)

    def generator_optimizer(self, generator: nn.Module) -> torch.optim.Optimizer:
        """Adam at ``lr_generator`` (the authors' optimiser for G)."""
        return torch.optim.Adam(generator.parameters(), lr=self.hparams["lr_generator"])

    def generator_loss(self, teacher_logits: torch.Tensor, teacher_features: dict[str, torch.Tensor]
                       ) -> dict[str, torch.Tensor]:
        """G's weighted terms from the teacher's (B, K) logits and (B, D) pooled features on G(z),
        with their gradients (they flow back to G through the frozen teacher)."""
        h = self.hparams
        return {"onehot": h["onehot_weight"] * dafl_onehot_loss(teacher_logits),
                "activation": h["activation_weight"] * dafl_activation_loss(teacher_features["pool"]),
                "entropy": h["entropy_weight"] * dafl_entropy_loss(teacher_logits)}

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """The student's term on generated images: ``kd_weight · kd_loss(z_s, z_t, T)`` (z_t detached)."""
        h = ctx.hparams
        return {"kd": h["kd_weight"] * kd_loss(ctx.student_logits, ctx.teacher_logits, h["temperature"])}
