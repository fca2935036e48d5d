"""Contrastive relation knowledge: CRD's noise-contrastive objective.

Reference: Y. Tian, D. Krishnan, P. Isola, "Contrastive Representation Distillation", ICLR 2020
(arXiv:1910.10699), Sec. 3.1-3.4, Eqs. 2-18; the authors' code (HobbitLong/RepDistiller,
``crd/criterion.py`` ``ContrastLoss`` and ``crd/memory.py`` ``ContrastMemory``).

CRD asks a critic to tell the *positive* pair (the student's and the teacher's embedding of the same
image) from N *negative* pairs (the student's embedding with the teacher's embeddings of N images of
other classes). The teacher's embeddings of past batches come from a memory bank (the method's
state, :mod:`kdteach.methods.crd`); these two functions are the math:

1. :func:`crd_scores`: h = exp(⟨v, m⟩ / τ) for the anchor v against its 1 + N bank entries m;
2. :func:`crd_nce_loss`: the NCE loss over those scores, with the noise probability 1 / num_data.
"""

from __future__ import annotations

import math

import torch

from ._validate import as_float, check_int_at_least, check_positive, check_tensor, full_precision

__all__ = ["crd_scores", "crd_nce_loss", "CRD_EPS"]

#: the small constant the authors' ``ContrastLoss`` adds to every denominator
CRD_EPS = 1e-7


def crd_scores(anchor: torch.Tensor, bank: torch.Tensor, index: torch.Tensor, temperature: float = 0.07
               ) -> torch.Tensor:
    """Unnormalised critic scores exp(⟨v_b, m_{index[b, k]}⟩ / τ): (B, D), (N, D), (B, 1 + K) -> (B, 1 + K).

    ``index[b, 0]`` is the positive (the other network's bank entry for the same image), ``index[b, 1:]``
    the K negatives. The bank is a constant (detached inside): gradients reach only the anchor. CRD then
    divides by a constant Z fixed from the first batch (the method's state) so that the scores have the
    scale of a probability (Z ≈ num_data · mean score; Eq. 11-13's normalisation, ``ContrastMemory``'s
    ``Z_v1``/``Z_v2``). A copy of the bank is kept for the backward pass, so the caller may update the
    bank in place before calling backward (CRD's momentum update does).

    The authors' code gathers the (B, 1 + K, D) bank rows and multiplies them with the anchors (a batched
    matrix-vector product). Here the anchors meet the whole bank in one matrix product (B, D) x (D, N) and
    the (B, 1 + K) columns are picked from it: the same dot products, without the (B, 1 + K, D) copy
    (1 GB at B = 128, K = 16,384, D = 128) and with a fast GEMM instead of a memory-bound gather. Computed
    in float32 or better (autocast off): exp(1 / 0.07) ≈ 1.6e6 loses too much in bfloat16.

    Raises:
        TypeError / ValueError: wrong ranks, dtypes or sizes (the message names the argument), an index
            outside the bank, or a temperature that is not > 0.
    """
    check_tensor(anchor, "anchor", 2, "(B, D) embeddings")
    check_tensor(bank, "bank", 2, "(N, D) memory bank")
    if bank.shape[1] != anchor.shape[1]:
        raise ValueError(f"bank must have shape (N, D) with D = {anchor.shape[1]} like anchor {tuple(anchor.shape)}, "
                         f"got {tuple(bank.shape)}")
    if not isinstance(index, torch.Tensor) or index.dtype != torch.int64 or index.dim() != 2 \
            or index.shape[0] != anchor.shape[0] or index.shape[1] < 2:
        got = f"{index.dtype} {tuple(index.shape)}" if isinstance(index, torch.Tensor) else type(index).__name__
        raise ValueError(f"index must be an int64 tensor (B, 1 + K) = ({anchor.shape[0]}, 1 + K) with K >= 1 "
                         f"negatives, the positive in column 0; got {got}")
    if index.device != anchor.device or bank.device != anchor.device:
        raise ValueError(f"anchor, bank and index must be on one device, got {anchor.device}, {bank.device}, "
                         f"{index.device}")
    tau = check_positive(temperature, "temperature")
    with full_precision(anchor.device):
        v = as_float(anchor)
        m = as_float(bank.detach()).to(v.dtype, copy=True)   # kept for backward: the bank may change in place
        return torch.exp(torch.gather((v / tau) @ m.t(), 1, index))      # 1/τ on the (B, D) side, not (B, 1 + K)


def crd_nce_loss(scores: torch.Tensor, num_data: int) -> torch.Tensor:
    """CRD's NCE loss over normalised critic scores (Tian et al., Eq. 16-18; ``ContrastLoss``).

    With h_b0 the positive score and h_bk (k = 1..N) the negative scores of example b, N negatives
    per positive and the noise probability P_n = 1 / num_data (negatives are drawn uniformly over the
    training set):

        L = −(1/B) Σ_b [ log( h_b0 / (h_b0 + N·P_n + ε) ) + Σ_k log( N·P_n / (h_bk + N·P_n + ε) ) ],

    ε = 1e-7 (:data:`CRD_EPS`). The first term pushes the positive's posterior of being "data" to 1,
    the second each negative's posterior of being "noise" to 1: the NCE estimate of Eq. 18 with
    M = N noise samples per data sample. Reduction: sum over the 1 + N columns, mean over the batch.

    Paper vs code: the paper writes the critic as h(T, S) = e^{g_T(t)ᵀ g_S(s) / τ} / (e^{...} + N/M)
    inside a log-likelihood and draws negatives uniformly; the authors' code (which this follows)
    divides the scores by the constant Z and uses the posterior form above, and its data loader draws
    negatives from images of *other classes* (the method's sampling, :mod:`kdteach.methods.crd`).

    Args:
        scores: (B, 1 + N) positive scores (≥ 0), the positive in column 0 (gradients flow through them).
        num_data: the size of the training set (the number of memory-bank entries), ≥ 1.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs).

    Raises:
        TypeError: ``scores`` is not a floating-point tensor or ``num_data`` not an integer.
        ValueError: ``scores`` is not (B, 1 + N) with N ≥ 1, or ``num_data`` < 1.
    """
    check_tensor(scores, "scores", 2, "(B, 1 + N) critic scores, the positive in column 0")
    if scores.shape[1] < 2:
        raise ValueError(f"scores must have the positive and at least one negative per row (B, 1 + N >= 2), "
                         f"got shape {tuple(scores.shape)}")
    n_data = check_int_at_least(num_data, "num_data", 1)
    with full_precision(scores.device):
        x = as_float(scores)
        n_neg = x.shape[1] - 1
        noise = n_neg / float(n_data)                                  # N · P_n
        log_pos = torch.log(x[:, 0]) - torch.log(x[:, 0] + (noise + CRD_EPS))
        log_neg = math.log(noise) - torch.log(x[:, 1:] + (noise + CRD_EPS))      # fewer passes over (B, N)
        return -(log_pos.sum() + log_neg.sum()) / x.shape[0]
