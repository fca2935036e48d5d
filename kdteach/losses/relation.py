"""Relation knowledge between the examples of a batch: RKD's distance and angle potentials.

Reference: W. Park, D. Kim, Y. Lu, M. Cho, "Relational Knowledge Distillation", CVPR 2019
(arXiv:1904.05068), Sec. 3.2, Eqs. 4-8; CRD benchmark code (HobbitLong/RepDistiller,
``distiller_zoo/RKD.py``, ``RKDLoss``), which the authors' own code (lenscloth/RKD) agrees with on
the CIFAR setting.

Instead of matching what the teacher outputs for each example, RKD matches the *structure* of a
batch of embeddings: the pairwise distances (a 2-example potential) and the angles formed by every
triple (a 3-example potential). Both are invariant to rotating or translating the embedding space,
and the distance potential is normalised by the batch's mean distance, so it is invariant to scale
too: the student may live in a space of another size and dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import as_float, check_positive, check_same_batch, check_tensor, full_precision

__all__ = ["pairwise_distances", "rkd_distance_potential", "rkd_angle_potential", "rkd_terms", "rkd_loss"]

EMBEDDING = "(B, D) embeddings or (B, C, H, W) features (flattened per example)"


def _flat(e: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(e, name, (2, 4), EMBEDDING)
    if e.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 examples (RKD compares pairs), got shape {tuple(e.shape)}")
    return as_float(e).flatten(1)


def pairwise_distances(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between the rows of ``embedding``: (B, D) -> (B, B), zero diagonal.

    Computed as the benchmark's ``pdist`` does: ‖a‖² + ‖b‖² − 2 a·b clamped at ``eps`` before the square
    root (so the gradient stays finite), then the diagonal set to exactly 0. (B, C, H, W) inputs are
    flattened per example.
    """
    e = _flat(embedding, "embedding")
    sq = e.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (e @ e.t())).clamp(min=eps)
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d2.sqrt().masked_fill(eye, 0.0)


def rkd_distance_potential(embedding: torch.Tensor) -> torch.Tensor:
    """RKD's distance-wise potential ψ_D (Park et al., Eq. 4-5): (B, D) -> (B, B).

    ψ_D(t_i, t_j) = ‖t_i − t_j‖₂ / μ, with μ the mean of the B·(B − 1) off-diagonal distances of the
    batch (the benchmark takes the mean of the distances that are > 0; they are the same unless two
    examples coincide). Invariant to scaling, rotating and translating the embedding space.
    """
    d = pairwise_distances(embedding)
    return d / d[d > 0].mean()


def rkd_angle_potential(embedding: torch.Tensor) -> torch.Tensor:
    """RKD's angle-wise potential ψ_A (Park et al., Eq. 6-7): (B, D) -> (B, B, B).

    Entry [i, j, k] = cos of the angle at vertex i between the directions to j and to k,
    ⟨(e_j − e_i)/‖e_j − e_i‖, (e_k − e_i)/‖e_k − e_i‖⟩ (the benchmark's indexing; the paper puts the
    vertex in the middle, ψ_A(t_i, t_j, t_k) = cos∠t_i t_j t_k, the same set of angles). Directions
    to the vertex itself are the zero vector, so entries with j = i or k = i are 0 (and j = k gives 1).
    Invariant to scaling, rotating and translating the embedding space.
    """
    e = _flat(embedding, "embedding")
    diff = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)      # [i, j] = unit(e_j - e_i)
    return torch.bmm(diff, diff.transpose(1, 2))


def rkd_terms(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two unweighted RKD terms ``(distance, angle)`` (see :func:`rkd_loss`)."""
    s = _flat(student_embedding, "student_embedding")
    t = _flat(teacher_embedding, "teacher_embedding").detach()
    check_same_batch(s, "student_embedding", t, "teacher_embedding")
    with full_precision(s.device):
        t = t.to(s.dtype)
        with torch.no_grad():
            t_d, t_a = rkd_distance_potential(t), rkd_angle_potential(t)
        distance = F.smooth_l1_loss(rkd_distance_potential(s), t_d)
        angle = F.smooth_l1_loss(rkd_angle_potential(s), t_a)
    return distance, angle


def rkd_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, distance_weight: float = 25.0,
             angle_weight: float = 50.0) -> torch.Tensor:
    """Relational KD loss, CRD benchmark form (Park et al., CVPR 2019, Eqs. 5, 7, 8; ``RKDLoss``).

    L = w_D · mean_{i,j} ℓ_δ(ψ_D(s_i, s_j) − ψ_D(t_i, t_j)) + w_A · mean_{i,j,k} ℓ_δ(ψ_A(s) − ψ_A(t)),

    with ψ_D the mean-normalised pairwise distances (:func:`rkd_distance_potential`, B² entries), ψ_A
    the cosines of the triplet angles (:func:`rkd_angle_potential`, B³ entries) and ℓ_δ the Huber
    (smooth-L1, δ = 1) loss, each averaged over all its entries (``F.smooth_l1_loss``'s mean).
    ``distance_weight`` and ``angle_weight`` are the CRD benchmark's ``RKDLoss(w_d=25, w_a=50)`` (the
    authors' own metric-learning commands weight the two terms 1 : 2); they are part of the loss's
    definition here, as in the benchmark, and the method puts its own weight on the sum (the
    benchmark's ``-b 1``).

    Paper vs benchmark: the paper sums ℓ_δ over all pairs and triples of a mini-batch; both codes average
    them, which only rescales the terms (and makes them independent of the batch size). The angle
    potential of the paper is written over distinct triples; the averaged B³ entries also include the
    entries with repeated indices (0 when the vertex repeats, 1 when j = k; equal for student and teacher,
    so they add 0 to the loss but count in the mean).

    Args:
        student_embedding: (B, D_s) student embeddings (or (B, C, H, W), flattened); gradients flow here.
        teacher_embedding: (B, D_t) teacher embeddings, any dimension D_t (detached inside).
        distance_weight: λ_D ≥ 0; angle_weight: λ_A ≥ 0.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs).

    Raises:
        TypeError: an input is not a floating-point tensor, or a weight is not a number.
        ValueError: a rank other than 2 or 4, fewer than 2 examples, different batch sizes or devices,
            or a negative weight.
    """
    for value, name in ((distance_weight, "distance_weight"), (angle_weight, "angle_weight")):
        if value != 0:
            check_positive(value, name)
    distance, angle = rkd_terms(student_embedding, teacher_embedding)
    return distance_weight * distance + angle_weight * angle
