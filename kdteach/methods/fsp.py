"""FSP: Yim, Joo, Bae, Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
Minimization and Transfer Learning", CVPR 2017.

The "flow of solution procedure" between consecutive layers is the Gram-like matrix
G = (1/HW) Σ_hw F1 F2ᵀ. Training has two stages, as in the paper and the CRD benchmark:

1. ``init``: the student's feature layers (not its classifier) learn to match the teacher's FSP
   matrices between every pair of consecutive stage outputs, stem included (benchmark
   ``feat[:-1]``), with the budget's initial learning rate held constant for ``budget.init_epochs``.
2. ``main``: ordinary training with cross-entropy only.

What the CRD benchmark (RepDistiller) itself runs, from ``train_student.py``, ``helper/pretrain.py``
and ``helper/loops.py``: ``--init_epochs 30`` (default) before the 240 main epochs; the init stage
trains ``model_s.get_feat_modules()`` by SGD at the constant ``--learning_rate`` (default 0.05) and
sums the per-pair losses without a weight (``loss = sum(loss_group)``); the main stage sets
``loss_kd = 0`` for FSP. Its ``scripts/run_cifar_distill.sh`` passes ``-b 50`` for FSP, but ``-b``
only multiplies that main-stage term, so it has no effect: the weight the benchmark ran is 1, this
module's ``fsp_weight`` default. The paper's own stage 1 differs: its learning rate starts at 0.001 and
decays (Sec. 4.1.1), and it pools with max instead of average.

The weight does not depend on the input resolution: G averages over the h·w positions and
:func:`kdteach.losses.fsp_loss` over the C1·C2 entries, so no area factor appears (unlike AT's β).

Both stages are kept: collapsing them into one loss would be another method.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import fsp_loss, fsp_matrix
from .base import (LossContext, Method, StagePlan, check_init_epochs, cross_entropy, init_then_main,
                   paired_stage_names, stage_names)


class FSP(Method):
    """Two-stage FSP distillation; stage ``init`` has term ``fsp``, stage ``main`` term ``ce``."""

    name = "fsp"
    paper = ("J. Yim, D. Joo, J. Bae, J. Kim, A Gift from Knowledge Distillation: Fast Optimization, Network "
             "Minimization and Transfer Learning, CVPR 2017")
    defaults = MappingProxyType({"ce_weight": 1.0, "fsp_weight": 1.0, "init_epochs": None})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        check_init_epochs(self.name, self.hparams["init_epochs"])

    def student_features(self, student) -> list[str]:
        """All stage outputs, stem included (benchmark ``feat[:-1]``)."""
        return stage_names(student, skip_first=False)

    def check_models(self, student, teacher) -> None:
        s_names, t_names = paired_stage_names(self.name, student, teacher, skip_first=False)
        s_ch = [student.stage(n).channels for n in s_names]
        t_ch = [teacher.stage(n).channels for n in t_names]
        if s_ch != t_ch:
            raise ValueError(f"method 'fsp' compares FSP matrices (C_i x C_i+1) of consecutive stages, so the student "
                             f"and teacher stages need equal channels; got student {s_ch} and teacher {t_ch}")

    def stages(self, budget) -> list[StagePlan]:
        """``init`` (budget's init epochs, features only, constant lr) then ``main`` (no teacher)."""
        return init_then_main(self.name, self.hparams["init_epochs"], budget, main_teacher=False)

    @staticmethod
    def matrices(features) -> list[torch.Tensor]:
        """FSP matrices (B, C_i, C_i+1) between consecutive features of a list of (B, C, H, W) maps."""
        fs = list(features)
        return [fsp_matrix(a, b) for a, b in zip(fs[:-1], fs[1:])]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Stage ``init``: ``{"fsp": fsp_weight · fsp_loss(G_s, G_t)}``; stage ``main``: ``{"ce": ...}``."""
        h = ctx.hparams
        if ctx.stage == "init":
            g_s = self.matrices(ctx.student_features.values())
            g_t = self.matrices(ctx.teacher_features.values())
            return {"fsp": h["fsp_weight"] * fsp_loss(g_s, g_t)}
        return {"ce": h["ce_weight"] * cross_entropy(ctx)}
