"""Response (logit) knowledge: the soft targets of Hinton et al.

Reference: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge in a Neural Network",
NIPS Deep Learning Workshop 2014 (arXiv:1503.02531).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import as_float, check_positive, check_same_shape, check_tensor, full_precision

__all__ = ["softened_probs", "kd_loss"]


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
