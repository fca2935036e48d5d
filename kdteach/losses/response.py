"""Response (logit) knowledge: the soft targets of Hinton et al.

Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
NIPS Deep Learning Workshop 2014 (arXiv:1503.02531).

MLKD's batch- and class-level terms (:func:`mlkd_batch_loss`, :func:`mlkd_class_loss`): Y. Jin,
J. Wang, D. Lin, "Multi-level Logit Distillation", CVPR 2023; its instance level is :func:`kd_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import as_float, check_positive, check_same_shape, check_tensor, full_precision

__all__ = ["softened_probs", "kd_loss", "mlkd_class_loss", "mlkd_batch_loss"]


def softened_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Temperature-softened class probabilities p = softmax(z / T) (Hinton et al., 2015, Eq. 1).

    Args:
        logits: (B, C) logits z.
        temperature: T > 0; T = 1 is the ordinary softmax, larger T gives softer distributions.

    Returns:
        (B, C) probabilities, each row summing to 1 (float32 for half/bfloat16 inputs).
    """
    check_tensor(logits, "logits", 2, "(B, C)")
    t = check_positive(temperature, "temperature")
    with full_precision(logits.device):
        return F.softmax(as_float(logits) / t, dim=1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Knowledge-distillation loss of Hinton et al. (2015): T² · (1/B) Σ_i KL(p_t,i ‖ p_s,i).

    p = softmax(z / T) for student and teacher. The KL divergence is summed over classes and
    averaged over the batch, then multiplied by T² so that the gradient's scale does not shrink
    as 1/T² when T grows (Hinton et al., Sec. 2); this is the CRD benchmark's ``DistillKL``.
    Its gradient with respect to the student logits is T · (p_s − p_t) / B.

    Args:
        student_logits: (B, C) student logits z_s (gradients flow here).
        teacher_logits: (B, C) teacher logits z_t (detached inside).
        temperature: T > 0.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs, else the input dtype). No loss weight applied.
    """
    check_tensor(student_logits, "student_logits", 2, "(B, C)")
    check_tensor(teacher_logits, "teacher_logits", 2, "(B, C)")
    check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    t = check_positive(temperature, "temperature")
    with full_precision(student_logits.device):
        log_p_s = F.log_softmax(as_float(student_logits) / t, dim=1)
        log_p_t = F.log_softmax(as_float(teacher_logits.detach()).to(log_p_s.dtype) / t, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True)
        return kl * (t * t) / student_logits.shape[0]


# ------------------------------------------------------------------------------------------------
# MLKD: batch- and class-level alignment of the softened predictions
# ------------------------------------------------------------------------------------------------

def _check_mlkd(student_logits: object, teacher_logits: object, temperature: object) -> float:
    check_tensor(student_logits, "student_logits", 2, "(B, K)")
    check_tensor(teacher_logits, "teacher_logits", 2, "(B, K)")
    check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    return check_positive(temperature, "temperature")


def mlkd_class_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float = 4.0) -> torch.Tensor:
    """MLKD's class-level alignment: Σ (P_tᵀP_t − P_sᵀP_s)² / K, with P = softmax(z / T).

    Jin, Wang, Lin, "Multi-level Logit Distillation", CVPR 2023 (github.com/Jin-Ying/
    Multi-Level-Logit-Distillation). P (B, K) holds a batch's softened predictions row by row; the
    K x K matrix PᵀP sums, over the batch, the products p_i p_j of two classes' probabilities: how
    often the network gives mass to classes i and j together (a class-correlation matrix). The
    loss is the squared Frobenius distance between the teacher's and the student's matrices, summed
    over all K² entries and divided by K (not K²). No T² factor and no loss weight. This is the
    authors' ``cc_loss`` (``mdistiller/distillers/KD_ours.py``) with ``reduce=True``; their method
    adds it at five temperatures and scales it by a class-confidence mask fraction
    (:class:`kdteach.methods.mlkd.MLKD`).

    Args:
        student_logits: (B, K) student logits z_s (gradients flow here).
        teacher_logits: (B, K) teacher logits z_t (detached inside).
        temperature: T > 0.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs, else the input dtype), >= 0; it grows with B
        (the matrices are sums over the batch).
    """
    t = _check_mlkd(student_logits, teacher_logits, temperature)
    with full_precision(student_logits.device):
        p_s = softened_probs(student_logits, t)
        p_t = softened_probs(teacher_logits.detach(), t).to(p_s.dtype)
        diff = p_t.transpose(0, 1) @ p_t - p_s.transpose(0, 1) @ p_s          # (K, K)
        return diff.pow(2).sum() / p_s.shape[1]


def mlkd_batch_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float = 4.0) -> torch.Tensor:
    """MLKD's batch-level alignment: Σ (P_t P_tᵀ − P_s P_sᵀ)² / B, with P = softmax(z / T).

    Jin, Wang, Lin, "Multi-level Logit Distillation", CVPR 2023. The B x B matrix P Pᵀ holds the
    inner products of the batch's softened predictions, image against image: large where two images
    get similar predictions (an input-correlation, or Gram, matrix of the predictions). The loss is
    the squared Frobenius distance between the teacher's and the student's matrices, summed over all
    B² entries and divided by B. No T² factor and no loss weight. This is the authors' ``bc_loss``
    (``mdistiller/distillers/KD_ours.py``) with ``reduce=True``; their method adds it at five
    temperatures and scales it by a prediction-confidence mask fraction
    (:class:`kdteach.methods.mlkd.MLKD`).

    Args:
        student_logits: (B, K) student logits z_s (gradients flow here).
        teacher_logits: (B, K) teacher logits z_t (detached inside).
        temperature: T > 0.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs, else the input dtype), >= 0.
    """
    t = _check_mlkd(student_logits, teacher_logits, temperature)
    with full_precision(student_logits.device):
        p_s = softened_probs(student_logits, t)
        p_t = softened_probs(teacher_logits.detach(), t).to(p_s.dtype)
        diff = p_t @ p_t.transpose(0, 1) - p_s @ p_s.transpose(0, 1)          # (B, B)
        return diff.pow(2).sum() / p_s.shape[0]
