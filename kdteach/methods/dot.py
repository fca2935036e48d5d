"""DOT: B. Zhao, Q. Cui, R. Song, J. Liang, "DOT: A Distillation-Oriented Trainer", ICCV 2023
(arXiv:2307.08436; code: github.com/megvii-research/mdistiller, ``mdistiller/engine/dot.py`` and the
``DOT`` trainer of ``mdistiller/engine/trainer.py``).

DOT keeps KD's loss and changes the optimiser. The two terms of KD,

    L_task = ce_weight · CE(z_s, y),    L_kd = kd_weight · T² KL(softmax(z_t/T) ‖ softmax(z_s/T)),

are back-propagated separately (two backward passes through one forward pass), and each gradient
gets its own momentum buffer: μ − Δ for the task gradient and μ + Δ for the distillation gradient,
with μ the budget's SGD momentum (:class:`kdteach.optim.DistillationOrientedSGD`). A larger
momentum on the distillation gradient lets the distillation loss dominate the optimisation, which
the paper argues breaks the trade-off between the two losses that plain KD shows.

Defaults, and where each comes from (the authors' code):

- ``delta`` = 0.075: ``CFG.SOLVER.DOT.DELTA`` in ``mdistiller/engine/cfg.py`` and every CIFAR-100
  config of ``configs/cifar100/dot/`` (so 0.825 and 0.975 with ``MOMENTUM: 0.9``).
- ``ce_weight`` = 0.1, ``kd_weight`` = 0.9, ``temperature`` = 4: those configs use
  ``DISTILLER.TYPE: "KD"`` with mdistiller's KD defaults (``CFG.KD.LOSS.CE_WEIGHT`` 0.1,
  ``CFG.KD.LOSS.KD_WEIGHT`` 0.9, ``CFG.KD.TEMPERATURE`` 4), the same as :mod:`kdteach.methods.kd`.
- the solver of those configs (SGD, lr 0.05, 0.01 for ShuffleNet-V2, weight decay 5e-4, batch 64,
  240 epochs, x0.1 at 150/180/210) is the ``paper`` budget's recipe; it is not a hyper-parameter here.

Which terms are the task loss: :attr:`DOT.task_terms` (``"ce"``); every other term is distillation.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import torch
from torch import nn

from ..optim import DistillationOrientedSGD
from .kd import KD

__all__ = ["DOT"]


class DOT(KD):
    """KD trained with DOT's optimiser (two momenta); terms ``ce`` (task) and ``kd`` (distillation)."""

    name = "dot"
    paper = ("B. Zhao, Q. Cui, R. Song, J. Liang, DOT: A Distillation-Oriented Trainer, ICCV 2023 "
             "(https://arxiv.org/abs/2307.08436)")
    defaults = MappingProxyType({**KD.defaults, "delta": 0.075})
    #: the loss terms whose gradient gets the task momentum μ − Δ; the others get μ + Δ
    task_terms: tuple[str, ...] = ("ce",)

    def validate_hparams(self) -> None:
        super().validate_hparams()
        d = self.hparams["delta"]
        if not -1.0 < d < 1.0:
            raise ValueError(f"hyper-parameter 'delta' of method 'dot' must lie in (-1, 1) (momenta 0.9 - delta and "
                             f"0.9 + delta), got {d!r}")

    def optimizer(self, params: list[nn.Parameter], budget, lr: float) -> torch.optim.Optimizer:
        """:class:`~kdteach.optim.DistillationOrientedSGD` with the budget's momentum μ and weight
        decay and the method's Δ: task momentum μ − Δ, distillation momentum μ + Δ.

        Raises:
            ValueError: μ ± Δ outside [0, 1) for this budget (names ``momentum`` and ``delta``).
        """
        return DistillationOrientedSGD(params, lr=lr, momentum=budget.momentum, delta=self.hparams["delta"],
                                       weight_decay=budget.weight_decay)

    def backward(self, terms: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Two backward passes: the distillation terms' sum first (its gradients collected by
        :meth:`~kdteach.optim.DistillationOrientedSGD.collect_distillation_grads`), then the task
        terms' sum (left in ``.grad`` for ``step()``), as the authors' ``DOT.train_iter``.

        Raises:
            TypeError: ``optimizer`` is not a DistillationOrientedSGD.
            ValueError: no term is a task term (:attr:`task_terms`).
        """
        if not isinstance(optimizer, DistillationOrientedSGD):
            raise TypeError(f"method 'dot' back-propagates into a DistillationOrientedSGD, got {type(optimizer).__name__}")
        task = [t for k, t in terms.items() if k in self.task_terms]
        distill = [t for k, t in terms.items() if k not in self.task_terms and t.requires_grad]
        if not task:
            raise ValueError(f"method 'dot' needs a task term {list(self.task_terms)} among {list(terms)}")
        if distill:
            sum(distill).backward(retain_graph=True)
            optimizer.collect_distillation_grads()
        sum(task).backward()
