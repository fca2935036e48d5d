"""KD with the teacher's knowledge removed level by level: J. Tang, R. Shivanna, Z. Zhao, D. Lin,
A. Singh, E. H. Chi, S. Jain, "Understanding and Improving Knowledge Distillation",
arXiv:2002.03532 (2020).

The paper reads a teacher's soft targets as three levels of knowledge: of the "universe" (the
regularisation label smoothing also gives), of the domain (which classes are alike) and of the
instance (how hard each image is, which rescales its gradient). The two methods here train exactly
like :class:`kdteach.methods.kd.KD`,

    L = ce_weight · CE(z_s, y) + kd_weight · T² · KL(q ‖ softmax(z_s / T)),

with the teacher's softened distribution q = softmax(z_t / T) replaced by a target that keeps only
some of the levels (:func:`kdteach.losses.soft_target_loss`):

- ``kd_ls`` (:class:`KDLabelSmoothing`): q = (1 − ε) · onehot(y) + ε / K
  (:func:`kdteach.losses.smoothed_targets`), the same for every image of a class: only the
  universe level. It needs no teacher at all.
- ``kd_permuted`` (:class:`KDPermuted`): the teacher's q with its non-target probabilities
  shuffled among the non-target classes, independently per image and per step
  (:func:`kdteach.losses.permute_nontarget`): the target probability (hence the per-image
  rescaling) and the amount of smoothing stay, the class relationships go.

Defaults and where they come from: ``ce_weight`` 0.1, ``kd_weight`` 0.9 and ``temperature`` 4 are
the ``kd`` method's (the CRD benchmark's KD command and ``train_student.py`` default; see
:mod:`kdteach.methods.kd`), so that only the target differs from KD. ``epsilon`` = 0.1 is the usual
label-smoothing value (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016, Sec. 7);
note that at T = 4 it asks the student for 0.91 on the true class of softmax(z / 4), a much sharper
target than a teacher softened at T = 4. The understanding_kd notebook therefore passes the ε that
gives the true class the teacher's mean softened probability (:func:`kdteach.losses.matched_epsilon`),
a kdteach control, not a value from the paper. The paper describes its controlled teachers in words
and we found no public code of theirs; these are kdteach's constructions.

Determinism: ``kd_permuted`` draws each step's permutations from a CPU generator seeded by
(``perm_seed``, epoch, step), never from the global random state, so a resumed run permutes exactly
as an uninterrupted one and the same on every device; runs with different seeds see different
batches, so their permutations differ too.
"""

from __future__ import annotations

from types import MappingProxyType

import torch

from ..losses import permute_nontarget, smoothed_targets, soft_target_loss, softened_probs
from .base import LossContext, Method, cross_entropy
from .kd import KD

__all__ = ["KDLabelSmoothing", "KDPermuted", "step_generator"]

_PAPER = ("J. Tang, R. Shivanna, Z. Zhao, D. Lin, A. Singh, E. H. Chi, S. Jain, Understanding and Improving "
          "Knowledge Distillation, arXiv 2020 (https://arxiv.org/abs/2002.03532)")


def step_generator(perm_seed: int, epoch: int, step: int) -> torch.Generator:
    """The CPU generator of one training step: seeded by (``perm_seed``, ``epoch``, ``step``) only."""
    return torch.Generator().manual_seed((int(perm_seed) * 1_000_003 + int(epoch)) * 100_003 + int(step))


class _ReplacedTargetKD(Method):
    """KD whose target distribution is built by :meth:`target_probs`; terms ``ce`` and ``kd``."""

    defaults = MappingProxyType(dict(KD.defaults))

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method {self.name!r} must be > 0, "
                             f"got {self.hparams['temperature']!r}")

    def target_probs(self, ctx: LossContext) -> torch.Tensor:
        """(B, K) target distributions for this batch."""
        raise NotImplementedError

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "kd": kd_weight · soft_target_loss(z_s, q, T)}`` on (B, K) logits."""
        h = ctx.hparams
        q = self.target_probs(ctx)
        return {"ce": h["ce_weight"] * cross_entropy(ctx),
                "kd": (h["kd_weight"] * ctx.warmup) * soft_target_loss(ctx.student_logits, q, h["temperature"])}


class KDLabelSmoothing(_ReplacedTargetKD):
    """KD with the uniform-smoothing "teacher" q = (1 − ε) · onehot(y) + ε / K (no teacher is loaded)."""

    name = "kd_ls"
    paper = _PAPER + ": KD with the teacher replaced by uniform label smoothing"
    defaults = MappingProxyType({**KD.defaults, "epsilon": 0.1})
    needs_teacher = False

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not 0.0 <= self.hparams["epsilon"] <= 1.0:
            raise ValueError(f"hyper-parameter 'epsilon' of method 'kd_ls' must be in [0, 1], "
                             f"got {self.hparams['epsilon']!r}")

    def target_probs(self, ctx: LossContext) -> torch.Tensor:
        """(B, K) smoothed labels of the batch (float32, on the logits' device)."""
        return smoothed_targets(ctx.y, ctx.student_logits.shape[1], ctx.hparams["epsilon"])


class KDPermuted(_ReplacedTargetKD):
    """KD with the teacher's non-target probabilities permuted per image and per step."""

    name = "kd_permuted"
    paper = _PAPER + ": KD with the teacher's class relationships removed"
    defaults = MappingProxyType({**KD.defaults, "perm_seed": 0})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        v = self.hparams["perm_seed"]
        if not (float(v).is_integer() and v >= 0):
            raise ValueError(f"hyper-parameter 'perm_seed' of method 'kd_permuted' must be an integer >= 0, "
                             f"got {self.hparams['perm_seed']!r}")

    def target_probs(self, ctx: LossContext) -> torch.Tensor:
        """(B, K) teacher distributions at T with the non-target entries shuffled (seeded by the step)."""
        if ctx.teacher_logits is None:
            raise ValueError("method 'kd_permuted' needs the teacher's logits (got teacher_logits=None)")
        p_t = softened_probs(ctx.teacher_logits.detach(), ctx.hparams["temperature"])
        g = step_generator(ctx.hparams["perm_seed"], ctx.epoch, ctx.step)
        return permute_nontarget(p_t, ctx.y, g)
