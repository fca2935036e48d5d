"""Data-free losses: the generator's objectives of DAFL.

Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu, Tian, "Data-Free Learning of Student Networks", ICCV 2019
(arXiv:1904.01186); reference code: the authors' ``DAFL-train.py`` (huawei-noah/Efficient-Computing,
``Data-Efficient-Model-Compression/DAFL``). The frozen teacher acts as a fixed discriminator and a
generator G is trained so that the teacher's responses to G(z) look like its responses to real images:

    L_G = oh · L_oh + a · L_a + ie · L_ie

Unlike the distillation losses, these take the teacher's outputs **with** their gradients: they are
minimised with respect to the generator, through the frozen teacher. Nothing is detached inside.
Low-precision inputs are reduced in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._validate import as_float, check_tensor, full_precision

__all__ = ["dafl_onehot_loss", "dafl_activation_loss", "dafl_entropy_loss"]


def dafl_onehot_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """DAFL's one-hot loss L_oh (Eq. 3): the cross-entropy of the teacher's logits against its own
    predicted classes, ``(1/B) Σ_i CE(z_T,i, argmax_k z_T,i)``. Small when the teacher is confident
    on every generated image, as on real ones.

    Args:
        teacher_logits: (B, K) teacher logits on generated images (gradients flow through them).

    Returns:
        Scalar, mean over the batch (float32 for half/bfloat16 inputs).
    """
    check_tensor(teacher_logits, "teacher_logits", 2, "(B, K)")
    if teacher_logits.shape[1] < 2:
        raise ValueError(f"teacher_logits must have K >= 2 classes, got shape {tuple(teacher_logits.shape)}")
    with full_precision(teacher_logits.device):
        z = as_float(teacher_logits)
        return F.cross_entropy(z, z.detach().argmax(1))


def dafl_activation_loss(features: torch.Tensor) -> torch.Tensor:
    """DAFL's activation loss L_a (Eq. 4): ``−mean |f|`` over every entry of the teacher's features
    on generated images (the authors use the penultimate, pooled features). Real images excite a
    trained network's features strongly; minimising −mean|f| asks G for such images.

    Args:
        features: (B, D) pooled features or (B, C, H, W) feature maps (gradients flow through them).

    Returns:
        Scalar ``−(1/(B·D)) Σ |f|`` (float32 for half/bfloat16 inputs).
    """
    check_tensor(features, "features", (2, 4), "(B, D) or (B, C, H, W)")
    with full_precision(features.device):
        return -as_float(features).abs().mean()


def dafl_entropy_loss(teacher_logits: torch.Tensor) -> torch.Tensor:
    """DAFL's information-entropy loss L_ie (Eq. 5), as the authors' code computes it:
    ``Σ_k p̄_k log10 p̄_k`` with ``p̄ = (1/B) Σ_i softmax(z_T,i)`` the batch-mean prediction, i.e.
    minus the entropy (base 10) of the classes the teacher sees in the batch. Minimising it balances
    the generated classes: its minimum, −log10 K, is reached when p̄ is uniform.

    Args:
        teacher_logits: (B, K) teacher logits on generated images (gradients flow through them).

    Returns:
        Scalar in [−log10 K, 0] (float32 for half/bfloat16 inputs).
    """
    check_tensor(teacher_logits, "teacher_logits", 2, "(B, K)")
    if teacher_logits.shape[1] < 2:
        raise ValueError(f"teacher_logits must have K >= 2 classes, got shape {tuple(teacher_logits.shape)}")
    with full_precision(teacher_logits.device):
        p_mean = as_float(teacher_logits).softmax(1).mean(0)
        return (p_mean * torch.log(p_mean.clamp_min(torch.finfo(p_mean.dtype).tiny))).sum() / math.log(10.0)
