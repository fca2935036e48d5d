"""NST: Huang, Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer",
arXiv 2017 (arXiv:1707.01219).

The student's channels, read as a set of L2-normalised spatial maps (each neuron's selectivity
pattern), should be distributed like the teacher's: the squared MMD between the two sets
(:func:`kdteach.losses.nst_loss`) at every stage after the stem (the CRD benchmark's ``feat[1:-1]``,
as AT):

    L = ce_weight * CE(z_s, y) + beta * Σ_stages nst_loss(f_s, f_t, kernel)

Weights: β = 50, no KD term and the polynomial kernel are the CRD benchmark's (RepDistiller,
``scripts/run_cifar_distill.sh``: ``--distill nst --model_s resnet8x4 -a 0 -b 50``;
``train_student.py`` pairs ``feat[1:-1]`` and keeps the cross-entropy weight ``-r`` at its default
1; ``distiller_zoo/NST.py`` computes only the (x·y)² kernel). ``kernel="linear"`` and
``kernel="gaussian"`` select the paper's other two kernels at the same weight (the benchmark has no
weight for them; β = 50 is not tuned for them here either). The paper writes its weight as λ/2, so
the benchmark's β corresponds to λ = 2β there.

Scale: unlike AT's β, NST's weight needs no :func:`~kdteach.methods.area_rescaled` factor at the
``ci`` budget's 16x16 inputs. ``nst_loss`` is a mean of kernel entries (squared cosines between
channel maps, each in [0, 1]), not a mean over the H·W positions, so shrinking the maps does not
inflate it. Measured on ``example_batch(32)`` (CIFAR-10 test images) at 32x32 and at 16x16, untrained
pairs (student seed 0, teacher seed 1), per stage after the stem: tiny_student/tiny_teacher
0.188 → 0.175, 0.081 → 0.083, 0.088 → 0.076; resnet8x4/resnet32x4 0.058 → 0.058, 0.074 → 0.065,
0.056 → 0.041; ``at_loss`` on the same features grew 2.6-5x (the 4x that ``area_rescaled``
corrects). A ``ci`` run therefore uses β = 50 unchanged.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import NST_KERNELS, nst_loss
from .base import LossContext, Method, cross_entropy, paired_stage_names, stage_names


class NST(Method):
    """Neuron selectivity transfer over the stage outputs after the stem; terms ``ce`` and ``nst``."""

    name = "nst"
    paper = ("Z. Huang, N. Wang, Like What You Like: Knowledge Distill via Neuron Selectivity Transfer, "
             "arXiv 2017 (https://arxiv.org/abs/1707.01219)")
    defaults = MappingProxyType({"ce_weight": 1.0, "beta": 50.0, "kernel": "poly"})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if self.hparams["kernel"] not in NST_KERNELS:
            raise ValueError(f"hyper-parameter 'kernel' of method 'nst' must be one of {NST_KERNELS}, "
                             f"got {self.hparams['kernel']!r}")

    def check_models(self, student, teacher) -> None:
        """Both models need as many stages after the stem (channel counts and map sizes may differ)."""
        paired_stage_names(self.name, student, teacher, skip_first=True)

    def student_features(self, student) -> list[str]:
        """Stage names after the stem (benchmark ``feat[1:-1]``); the teacher's are its own."""
        return stage_names(student, skip_first=True)

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "nst": beta · Σ_i nst_loss(f_s,i (B,C_s,H,W), f_t,i (B,C_t,H,W), kernel)}``."""
        h = ctx.hparams
        pairs = zip(ctx.student_features.values(), ctx.teacher_features.values())
        mmd = sum(nst_loss(fs, ft, h["kernel"]) for fs, ft in pairs)
        return {"ce": h["ce_weight"] * cross_entropy(ctx), "nst": (h["beta"] * ctx.warmup) * mmd}
