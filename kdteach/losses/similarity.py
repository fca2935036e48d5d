"""Relation knowledge as batch similarities: the similarity-preserving (SP) loss.

Reference: F. Tung, G. Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019
(arXiv:1907.09682); the CRD benchmark (HobbitLong/RepDistiller, ``distiller_zoo/SP.py``,
``Similarity``), which the function reproduces (DESIGN §8).

Inputs that are similar for the teacher should be similar for the student: for a batch of B images,
the B×B matrix of inner products between the flattened features of one layer, each row L2-normalised,
is matched between the two networks. Only the batch size has to agree: the channel counts and map
sizes of the two networks may differ, so SP needs no connector.
"""

from __future__ import annotations

import torch

from ._validate import as_float, check_same_batch, check_tensor, full_precision

__all__ = ["sp_similarity", "sp_loss"]

FEATURE = "(B, C, H, W) or (B, D)"


def sp_similarity(feature: torch.Tensor) -> torch.Tensor:
    """SP's batch similarity matrix G (Tung & Mori, ICCV 2019, Eq. 1-2): (B, ...) -> (B, B).

    With Q the feature flattened to (B, C·H·W), G̃ = Q·Qᵀ and G = G̃ with each row divided by its L2 norm
    (``F.normalize`` with eps 1e-12, as the benchmark). G[i, j] is how similar image j is to image i for
    this network; the rows are unit vectors, so the entries do not depend on the feature's scale.

    Args:
        feature: (B, C, H, W) or (B, D) features of one layer (float; half/bfloat16 computed in float32).

    Returns:
        (B, B) float tensor (float32 for half/bfloat16 input), differentiable.

    Raises:
        TypeError / ValueError: not a floating-point tensor of rank 2 or 4, or empty.
    """
    check_tensor(feature, "feature", (2, 4), FEATURE)
    with full_precision(feature.device):
        q = as_float(feature).flatten(1)
        return torch.nn.functional.normalize(q @ q.T, dim=1)


def sp_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """SP's similarity-preserving loss (Tung & Mori, ICCV 2019), benchmark reduction.

    L = ‖G_t − G_s‖²_F / B², with G = :func:`sp_similarity` of each network's feature (row-L2-normalised
    Q·Qᵀ of the flattened (B, C·H·W) features): the mean over the B² entries of the squared differences.

    Paper vs code: the paper (Eq. 2-4) normalises the rows the same way, writes
    (1/b²)·Σ over the chosen layer pairs of ‖G_T − G_S‖²_F and adds it to the cross-entropy with a weight
    γ; the benchmark applies the loss to one pair, the last stage's outputs (``feat[-2]``), with weight
    β = 3000 (:mod:`kdteach.methods.sp`). Because the rows of G are
    unit vectors, L does not change when a feature is scaled, and it depends on the batch size: each
    entry of a unit row of length B is about 1/√B, so L shrinks roughly like 1/B for a fixed spread of
    similarities (the weight was set for the benchmark's batch of 64).

    Args:
        student_feature: (B, C_s, H_s, W_s) or (B, D_s) student features; gradients flow here.
        teacher_feature: (B, C_t, H_t, W_t) or (B, D_t) teacher features of the same B images (detached
            inside); shapes other than B may differ from the student's.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs). No loss weight.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: an input has another rank or is empty, or the batch sizes or devices differ.
    """
    check_tensor(student_feature, "student_feature", (2, 4), FEATURE)
    check_tensor(teacher_feature, "teacher_feature", (2, 4), FEATURE)
    check_same_batch(student_feature, "student_feature", teacher_feature, "teacher_feature")
    with full_precision(student_feature.device):
        g_s = sp_similarity(student_feature)
        g_t = sp_similarity(teacher_feature.detach())
        return (g_t - g_s).pow(2).mean()
