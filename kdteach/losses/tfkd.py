"""Response knowledge without a teacher: the virtual teacher of Tf-KD.

Reference: L. Yuan, F. E. H. Tay, G. Li, T. Wang, J. Feng, "Revisiting Knowledge Distillation via
Label Smoothing Regularization", CVPR 2020 (arXiv:1909.11723); code:
https://github.com/yuanli2333/Teacher-free-Knowledge-Distillation (``my_loss_function.py``,
``loss_kd_regularization``).

The paper's "manually designed teacher" (Tf-KD reg) puts probability ``a`` on the correct class c
and spreads the rest evenly over the other K − 1 classes,

    p^d(k) = a             if k = c,
    p^d(k) = (1 − a)/(K−1) otherwise,

and regularises the student with D_KL(p^d_τ, p_τ), the KD term with p^d in the teacher's place.

**Paper vs code.** The authors' code does not soften p^d the way KD softens a teacher: it applies
a softmax to the *probabilities* divided by τ, ``softmax(p^d / τ)``, and compares that with the
student's *unsoftened* ``softmax(z_s)`` (no τ on the student, no τ²). Since p^d lies in [0, 1],
``p^d / τ`` spans at most 1/τ, so the target is close to uniform: the correct class gets at most
``e^(1/τ) / (e^(1/τ) + K − 1)`` whatever ``a`` is (0.105 for K = 10 at τ = 20, and never more
than ``e / (e + K − 1)`` even at τ = 1). :func:`virtual_teacher_target` is that target;
:func:`tfkd_reg_loss` is the code's KL term. Reading p^d as a teacher's output with logits
``log p^d`` instead gives ``softmax(log p^d / τ)``: p^d itself at τ = 1, and the one-hot label as
a → 1 at any τ (at τ = 20, a = 0.99, K = 10 it gives the label 0.135 where the code's target gives
0.105). That reading is ``kd_loss(student_logits, virtual_teacher_probs(...).log(), τ)`` and needs
no function of its own.

Tf-KD self (a pre-trained copy of the student as the teacher) is KD: it uses
:func:`kdteach.losses.kd_loss` (see :mod:`kdteach.methods.tfkd` for the authors' weighting).
"""

from __future__ import annotations

import numbers

import torch

from ._validate import check_int_at_least, check_positive, check_tensor, shape_of
from .response import kd_loss, softened_probs

__all__ = ["virtual_teacher_probs", "virtual_teacher_target", "tfkd_reg_loss"]


def _check_target(target: object, num_classes: int, name: str = "target") -> torch.Tensor:
    """Require a (B,) integer tensor of class indices in [0, num_classes)."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a (B,) integer tensor of class indices, got {type(target).__name__}")
    if target.dim() != 1 or target.numel() == 0:
        raise ValueError(f"{name} must be a non-empty (B,) tensor of class indices, got shape {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of class indices, got dtype {target.dtype}")
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} must hold class indices in [0, {num_classes}), got values in [{lo}, {hi}]")
    return target


def _check_correct_prob(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"correct_prob must be a number in (0, 1], got {type(value).__name__} {value!r}")
    a = float(value)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"correct_prob must be a probability in (0, 1], got {value!r}")
    return a


def virtual_teacher_probs(target: torch.Tensor, num_classes: int, correct_prob: float = 0.99, *,
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The manually designed teacher of Tf-KD reg (Yuan et al., CVPR 2020, Sec. 5): per image, ``a``
    on the correct class and ``(1 − a) / (K − 1)`` on each other class.

    This is the paper's p^d and the authors' ``teacher_soft`` before their softmax (code default
    a = 0.99, hard-coded in ``loss_kd_regularization``). A "teacher" that is right on every training
    image, with a flat opinion about the wrong classes: label smoothing spread over the K − 1 other
    classes (with a = 1 − ε it is the authors' ``loss_label_smoothing`` target).

    Args:
        target: (B,) integer class indices c in [0, K) (the device of the result).
        num_classes: K >= 2.
        correct_prob: a in (0, 1]; a = 1 is the one-hot label, a = 1/K the uniform distribution.
        dtype: floating dtype of the result.

    Returns:
        (B, K) probabilities, each row summing to 1. No gradients (nothing to learn).

    Raises:
        TypeError / ValueError: ``target`` not a non-empty (B,) integer tensor with values in [0, K),
            ``num_classes`` < 2, ``correct_prob`` outside (0, 1], ``dtype`` not floating point.
    """
    k = check_int_at_least(num_classes, "num_classes", 2)
    y = _check_target(target, k)
    a = _check_correct_prob(correct_prob)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    probs = torch.full((y.shape[0], k), (1.0 - a) / (k - 1), dtype=dtype, device=y.device)
    return probs.scatter_(1, y.long().unsqueeze(1), a)


def virtual_teacher_target(target: torch.Tensor, num_classes: int, correct_prob: float = 0.99,
                           temperature: float = 20.0, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The distribution the authors' code actually trains Tf-KD reg towards: ``softmax(p^d / T)``.

    ``loss_kd_regularization`` builds p^d (:func:`virtual_teacher_probs`) and passes it to
    ``F.softmax(teacher_soft / T)``: a softmax of *probabilities*, not of logits. Because p^d / T
    spans at most 1 / T, the result is nearly uniform: with K = 10, a = 0.99, T = 20 the correct
    class gets 0.1045 and every other class 0.0995; its correct-class probability never exceeds
    ``e^(1/T) / (e^(1/T) + K − 1)`` for any a. The paper's notation p^d_τ ("p^d softened at τ")
    suggests a teacher's softened output; read with logits log p^d that would be
    ``softened_probs(virtual_teacher_probs(...).log(), T)``, a target that is p^d at T = 1 and
    tends to the one-hot label as a → 1 (the code's target never does).

    Args:
        target: (B,) integer class indices in [0, K).
        num_classes: K >= 2.
        correct_prob: a in (0, 1] (code: 0.99).
        temperature: T > 0 (the authors' ``reg_temperature``: 20 for ResNet18, 40 for MobileNetV2).
        dtype: floating dtype of the result.

    Returns:
        (B, K) probabilities ``softened_probs(p^d, T)``, each row summing to 1.

    Raises:
        TypeError / ValueError: as :func:`virtual_teacher_probs`, or ``temperature`` not > 0.
    """
    check_positive(temperature, "temperature")
    return softened_probs(virtual_teacher_probs(target, num_classes, correct_prob, dtype=dtype), temperature)


def tfkd_reg_loss(student_logits: torch.Tensor, target: torch.Tensor, correct_prob: float = 0.99,
                  temperature: float = 20.0) -> torch.Tensor:
    """Tf-KD reg's regulariser as the authors' code computes it: (1/B) Σ_i KL(softmax(p^d_i / T) ‖ softmax(z_s,i)).

    The target is :func:`virtual_teacher_target` (a softmax of the virtual teacher's probabilities
    over T); the student is *not* softened and there is no T² factor. The KL is summed over classes
    and averaged over the batch: it is ``kd_loss(student_logits, p^d / T, temperature=1)``, KD at
    T = 1 with p^d / T as the "teacher logits". Its gradient with respect to z_s is
    (softmax(z_s) − softmax(p^d / T)) / B.

    **Where the paper and the code differ** (the function follows the code):

    - paper: α · D_KL(p^d_τ, p_τ), the KD form, both sides softened at τ (Sec. 5, Tf-KD reg);
      code: ``nn.KLDivLoss()(F.log_softmax(outputs), F.softmax(teacher_soft / T))``, the student at
      T = 1 and the target ``softmax(p^d / T)``, nearly uniform;
    - reduction: the code's ``nn.KLDivLoss()`` (default ``reduction='mean'``) divides the summed KL
      by B·K, not B, and then multiplies by ``params.multiplier`` (100 for ResNet18 on CIFAR-100).
      This function returns the per-image KL averaged over the batch, the KL divergence itself;
      the 1/K and the multiplier are loss weights and live in :class:`kdteach.methods.tfkd.TfKDReg`.

    Args:
        student_logits: (B, K) student logits z_s (gradients flow here).
        target: (B,) integer class indices in [0, K), on the logits' device.
        correct_prob: a in (0, 1] (code: 0.99).
        temperature: T > 0 of the target (code: ``reg_temperature``).

    Returns:
        Scalar loss (float32 for half/bfloat16 logits, else their dtype), >= 0. No loss weight applied.

    Raises:
        TypeError / ValueError: logits not a floating (B, K) tensor, ``target`` not (B,) class indices
            in [0, K) on the same device, ``correct_prob`` outside (0, 1], ``temperature`` not > 0.
    """
    check_tensor(student_logits, "student_logits", 2, "(B, K)")
    b, k = student_logits.shape
    if k < 2:
        raise ValueError(f"student_logits must have at least 2 classes, got shape {tuple(student_logits.shape)}")
    y = _check_target(target, k)
    if y.shape[0] != b:
        raise ValueError(f"target must hold one class index per image of student_logits {tuple(student_logits.shape)}, "
                         f"got shape {shape_of(y)}")
    if y.device != student_logits.device:
        raise ValueError(f"target and student_logits must be on the same device, got {y.device} and "
                         f"{student_logits.device}")
    t = check_positive(temperature, "temperature")
    dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    pd = virtual_teacher_probs(y, k, correct_prob, dtype=dtype)
    return kd_loss(student_logits, pd / t, temperature=1.0)
