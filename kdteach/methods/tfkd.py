"""Tf-KD: Yuan, Tay, Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing
Regularization", CVPR 2020 (arXiv:1909.11723; code: github.com/yuanli2333/Teacher-free-Knowledge-Distillation).

KD is a learned label smoothing, and label smoothing a KD from a virtual teacher; so a student can
be distilled without a stronger teacher. The paper's two teacher-free methods are two registry
names (two protocols, so two classes rather than one class with a switch):

* ``tfkd_self`` (:class:`TfKDSelf`, "Tf-KD self"): the student is first trained alone; that
  pre-trained copy is then the KD teacher of a new student of the same architecture. A chain of two
  ordinary runs (``protocol = "sequence"``, :func:`kdteach.train.run_chain`): from Python pass the
  pre-trained copy as the teacher, ``distill("tfkd_self", teacher=zoo.student_baseline(seed=s)[0],
  seed=s)``; from the command line (``kdteach distill --method tfkd_self``) link 0 is the zoo's cached
  model of the student's architecture (:func:`kdteach.zoo.teacher`, trained alone with the budget's
  teacher schedule, or ``kdteach train-teacher --arch <student>``). Terms ``ce`` and ``kd``.
* ``tfkd_reg`` (:class:`TfKDReg`, "Tf-KD reg"): no teacher at all (``needs_teacher = False``); the
  student is regularised towards the manually designed teacher p^d of
  :func:`kdteach.losses.virtual_teacher_probs` (probability ``correct_prob`` on the label, the rest
  spread evenly). Terms ``ce`` and ``reg``.

**The authors' weighting.** Both follow the authors' ``my_loss_function.py``:

    Tf-KD self: (1 − α) · CE + α · multiplier · T² · KLDivLoss()(log softmax(z_s/T), softmax(z_t/T))
    Tf-KD reg:  (1 − α) · CE + α · multiplier · KLDivLoss()(log softmax(z_s), softmax(p^d/T))

``nn.KLDivLoss()`` with its default ``reduction='mean'`` averages the element-wise KL over all B·K
entries, i.e. it is the per-image KL (summed over classes, averaged over the batch) divided by the
number of classes K. kdteach's losses return the per-image KL, so the methods weight them by
``alpha · multiplier / K``: ``kd = alpha·multiplier/K · kd_loss(z_s, z_t, T)`` and
``reg = alpha·multiplier/K · tfkd_reg_loss(z_s, y, correct_prob, T)``. The multiplier was tuned for
CIFAR-100 (K = 100); on a K-class dataset the same α and multiplier weight the KL 100/K times more.
:func:`class_rescaled` gives the multiplier that keeps the authors' CIFAR-100 weight at another K
(the course's ``ci`` runs use it; the notebook lists it as a deviation).

**Paper vs code** (the methods follow the code): the paper writes both regularisers as
α · D_KL(p_τ^t, p_τ), KD's form with both sides softened at τ. The code's Tf-KD reg softens neither
side that way: its target is ``softmax(p^d / T)``, a softmax of probabilities (nearly uniform, see
:func:`kdteach.losses.virtual_teacher_target`), against the unsoftened student, with no T². The
correct-class probability a = 0.99 is hard-coded in the code; here it is ``correct_prob``. The code's
learning-rate warm-up over the first epoch and its schedule (×0.2 at epochs 60, 120, 160 of 200)
are not the methods' business: the budget's schedule applies.

Defaults: the authors' CIFAR-100 ResNet18 files (:data:`AUTHORS_CIFAR100` lists the others):
``experiments/kd_experiments/resnet18_distill/resnet18_self_teacher/params.json`` for ``tfkd_self``
(alpha 0.95, temperature 6, multiplier 50) and ``experiments/base_experiments/base_resnet18/params.json``
for ``tfkd_reg`` (reg_alpha 0.1, reg_temperature 20, multiplier 100; correct_prob 0.99 from
``loss_kd_regularization``).
"""

from __future__ import annotations

import numbers
from types import MappingProxyType

import torch

from ..losses import kd_loss, tfkd_reg_loss
from .base import LossContext, Method, cross_entropy

__all__ = ["TfKDSelf", "TfKDReg", "AUTHORS_CIFAR100", "class_rescaled"]

#: The authors' CIFAR-100 settings per student, from the repository's ``params.json`` files:
#: ``self`` from ``experiments/kd_experiments/<model>_distill/<model>_self_teacher/`` (alpha,
#: temperature, multiplier), ``reg`` from ``experiments/base_experiments/base_<model>/`` (reg_alpha,
#: reg_temperature, multiplier). ``correct_prob`` is 0.99 for every model (hard-coded).
AUTHORS_CIFAR100 = MappingProxyType({
    "resnet18": {"self": {"alpha": 0.95, "temperature": 6.0, "multiplier": 50.0},
                 "reg": {"alpha": 0.1, "temperature": 20.0, "multiplier": 100.0}},
    "mobilenetv2": {"self": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
                    "reg": {"alpha": 0.95, "temperature": 40.0, "multiplier": 1.0}},
    "shufflenetv2": {"self": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
                     "reg": {"alpha": 0.95, "temperature": 10.0, "multiplier": 1.0}},
    "googlenet": {"self": {"alpha": 0.4, "temperature": 20.0, "multiplier": 50.0},
                  "reg": {"alpha": 0.1, "temperature": 40.0, "multiplier": 50.0}},
    "densenet121": {"self": {"alpha": 0.9, "temperature": 20.0, "multiplier": 50.0}},
    "resnext29": {"self": {"alpha": 0.9, "temperature": 20.0, "multiplier": 100.0}},
})

#: The number of classes the authors' multipliers were tuned for (CIFAR-100).
REFERENCE_CLASSES = 100


def class_rescaled(multiplier: float, num_classes: int, reference: int = REFERENCE_CLASSES) -> float:
    """The multiplier that gives, on a ``num_classes``-class dataset, the weight ``alpha · multiplier /
    reference`` the authors' code gives the per-image KL on CIFAR-100.

    The code's ``nn.KLDivLoss()`` divides by K, so the weight of the per-image KL is α · multiplier / K:
    0.1 · 100 / 100 = 0.1 for Tf-KD reg on CIFAR-100 but 1.0 with the same numbers on CIFAR-10.
    ``multiplier · num_classes / reference`` keeps 0.1 (the ``ci`` budget's CIFAR-10: 100 → 10).

    Args:
        multiplier: the authors' multiplier (>= 0).
        num_classes: K of the dataset used (>= 2).
        reference: K the multiplier was chosen for (CIFAR-100: 100).

    Returns:
        ``multiplier * num_classes / reference``.
    """
    if isinstance(multiplier, bool) or not isinstance(multiplier, numbers.Real) or not multiplier >= 0:
        raise ValueError(f"multiplier must be a number >= 0, got {multiplier!r}")
    for name, value in (("num_classes", num_classes), ("reference", reference)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    return float(multiplier) * int(num_classes) / int(reference)


def _validate_common(method: Method) -> None:
    h = method.hparams
    if not 0.0 <= h["alpha"] <= 1.0:
        raise ValueError(f"hyper-parameter 'alpha' of method {method.name!r} must lie in [0, 1] (the weight "
                         f"(1 - alpha) goes to the cross-entropy), got {h['alpha']!r}")
    if not h["temperature"] > 0:
        raise ValueError(f"hyper-parameter 'temperature' of method {method.name!r} must be > 0, got "
                         f"{h['temperature']!r}")
    if not h["multiplier"] >= 0:
        raise ValueError(f"hyper-parameter 'multiplier' of method {method.name!r} must be >= 0, got "
                         f"{h['multiplier']!r}")


def _kl_weight(ctx: LossContext) -> float:
    """alpha · multiplier / K: the authors' weight of the per-image KL (their KLDivLoss divides by K)."""
    h = ctx.hparams
    return h["alpha"] * h["multiplier"] / ctx.student_logits.shape[1]


class TfKDSelf(Method):
    """Tf-KD self: KD from a pre-trained copy of the student (a two-link chain student -> student);
    terms ``ce`` = (1 − α) · CE and ``kd`` = α · multiplier / K · kd_loss(z_s, z_t, T)."""

    name = "tfkd_self"
    paper = ("L. Yuan, F. E. H. Tay, G. Li, T. Wang, J. Feng, Revisiting Knowledge Distillation via Label Smoothing "
             "Regularization, CVPR 2020 (https://arxiv.org/abs/1909.11723)")
    defaults = MappingProxyType(dict(AUTHORS_CIFAR100["resnet18"]["self"]))
    protocol = "sequence"

    def validate_hparams(self) -> None:
        super().validate_hparams()
        _validate_common(self)

    def chain(self, teacher: str, student: str) -> list[str]:
        """``[student, student]``: the teacher is always a pre-trained model of the student's own
        architecture (``teacher``, the budget's or a given teacher's architecture, is not used)."""
        return [student, student]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": (1 − α)·CE(z_s, y), "kd": α·multiplier/K · kd_loss(z_s, z_t, T)}`` on (B, K) logits."""
        h = ctx.hparams
        return {
            "ce": (1.0 - h["alpha"]) * cross_entropy(ctx),
            "kd": _kl_weight(ctx) * kd_loss(ctx.student_logits, ctx.teacher_logits, h["temperature"]),
        }


class TfKDReg(Method):
    """Tf-KD reg: no teacher; the student is pulled towards the authors' virtual-teacher target
    softmax(p^d / T); terms ``ce`` = (1 − α) · CE and ``reg`` = α · multiplier / K · tfkd_reg_loss."""

    name = "tfkd_reg"
    paper = TfKDSelf.paper
    defaults = MappingProxyType({**AUTHORS_CIFAR100["resnet18"]["reg"], "correct_prob": 0.99})
    needs_teacher = False

    def validate_hparams(self) -> None:
        super().validate_hparams()
        _validate_common(self)
        a = self.hparams["correct_prob"]
        if not 0.0 < a <= 1.0:
            raise ValueError(f"hyper-parameter 'correct_prob' of method 'tfkd_reg' must be a probability in (0, 1], "
                             f"got {a!r}")

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": (1 − α)·CE(z_s, y), "reg": α·multiplier/K · tfkd_reg_loss(z_s, y, correct_prob, T)}``."""
        h = ctx.hparams
        return {
            "ce": (1.0 - h["alpha"]) * cross_entropy(ctx),
            "reg": _kl_weight(ctx) * tfkd_reg_loss(ctx.student_logits, ctx.y, h["correct_prob"], h["temperature"]),
        }
