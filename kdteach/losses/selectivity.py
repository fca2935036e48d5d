"""Feature knowledge as a distribution of neurons: neuron selectivity transfer (NST).

Reference: Z. Huang, N. Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity
Transfer", arXiv:1707.01219 (2017), Sec. 3; CRD benchmark code (HobbitLong/RepDistiller,
``distiller_zoo/NST.py``, ``NSTLoss``).

A feature map (C, H, W) is read as C samples, one per channel ("neuron"): the channel's spatial map
flattened to a vector of H·W entries and L2-normalised, its *selectivity pattern* (where in the image
that neuron fires). Teacher and student each give such a set of vectors, with C_t and C_s members;
NST makes the two sets alike as distributions by minimising their squared maximum mean discrepancy
(MMD) under a kernel k. The channel counts may differ: MMD compares distributions, not channel i
with channel i.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import check_positive, check_same_batch, check_tensor, full_precision
from .feature import FEATURE, _pool_to_common, _student_teacher

__all__ = ["NST_KERNELS", "selectivity_vectors", "nst_kernel", "nst_loss"]

#: The kernels of Huang & Wang (2017), Sec. 3.3: x·y, (x·y)² (d = 2, c = 0), exp(−‖x − y‖² / (2σ²)).
NST_KERNELS = ("linear", "poly", "gaussian")


def selectivity_vectors(feature: torch.Tensor) -> torch.Tensor:
    """Each channel's spatial map as an L2-normalised vector (Huang & Wang 2017, Sec. 3.2).

    Args:
        feature: (B, C, H, W) activations.

    Returns:
        (B, C, H·W): row c of sample b is vec(f_{b,c}) / ‖vec(f_{b,c})‖₂ (an all-zero channel stays
        zero, ``F.normalize``'s convention, as in the benchmark). Same dtype as ``feature``.
    """
    check_tensor(feature, "feature", 4, FEATURE)
    return F.normalize(feature.flatten(2), dim=2)


def _check_kernel_name(kernel: object) -> None:
    if kernel not in NST_KERNELS:
        raise ValueError(f"kernel must be one of {NST_KERNELS}, got {kernel!r}")


def _check_kernel(kernel: object, sigma2: object) -> float | None:
    _check_kernel_name(kernel)
    if sigma2 is None:
        return None
    if kernel != "gaussian":
        raise ValueError(f"sigma2 is the bandwidth of kernel='gaussian' only, got sigma2={sigma2!r} with "
                         f"kernel={kernel!r}")
    return check_positive(sigma2, "sigma2")


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, Na, Nb) squared Euclidean distances between the rows of a (B, Na, D) and b (B, Nb, D)."""
    dot = torch.bmm(a, b.transpose(1, 2))
    return (a.square().sum(-1).unsqueeze(2) + b.square().sum(-1).unsqueeze(1) - 2 * dot).clamp_min(0)


def nst_kernel(a: torch.Tensor, b: torch.Tensor, kernel: str = "poly", sigma2: float | torch.Tensor = 1.0
               ) -> torch.Tensor:
    """Kernel matrix between two sets of selectivity vectors, per sample.

    Args:
        a: (B, Na, D) vectors (rows of :func:`selectivity_vectors`).
        b: (B, Nb, D) vectors, the same B and D.
        kernel: ``"linear"`` k = x·y, ``"poly"`` k = (x·y)², ``"gaussian"`` k = exp(−‖x − y‖² / (2σ²)).
        sigma2: σ² of the Gaussian kernel, a number > 0 or a (B,) tensor (one per sample); ignored
            by the other kernels.

    Returns:
        (B, Na, Nb) kernel values K[b, i, j] = k(a[b, i], b[b, j]).
    """
    check_tensor(a, "a", 3, "(B, Na, D)")
    check_tensor(b, "b", 3, "(B, Nb, D)")
    check_same_batch(a, "a", b, "b")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b must have the same vector length D, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    _check_kernel_name(kernel)
    if kernel == "gaussian":
        s2 = sigma2.reshape(-1, 1, 1) if isinstance(sigma2, torch.Tensor) else sigma2
        return torch.exp(-_sq_distances(a, b) / (2 * s2))
    dot = torch.bmm(a, b.transpose(1, 2))
    return dot if kernel == "linear" else dot.square()


def _mean_pair_sq_distance(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B,) the mean of ‖x − y‖² over all ordered pairs of the pooled C_s + C_t vectors of each sample."""
    both = torch.cat([s, t], dim=1)
    return _sq_distances(both, both).mean(dim=(1, 2))


def _poly_mmd(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """(B,) MMD² under k = (x·y)² of the normalised rows of the flattened maps fs (B, C_s, D) and
    ft (B, C_t, D), in the cheaper of two equal forms.

    * Kernel form (matrices C×C): the raw Gram matrices F Fᵀ are scaled by 1 / (‖f_i‖ ‖f_j‖) (norms
      from their diagonals, clamped at 1e-12 like ``F.normalize``), so no (C, D)-sized normalised copy
      and its backward are needed.
    * Second-moment form (matrices D×D, D = H·W, when D is small against C): since
      (x·y)² = ⟨x xᵀ, y yᵀ⟩_F, MMD² = ‖SᵀS / C_s − TᵀT / C_t‖²_F on the normalised rows S, T.
    """
    cs, ct, d = fs.shape[1], ft.shape[1], fs.shape[2]
    if (cs + ct) * d * d < (cs * cs + cs * ct + ct * ct) * d:
        s, t = F.normalize(fs, dim=2), F.normalize(ft, dim=2)
        m_s = torch.bmm(s.transpose(1, 2), s) / cs
        m_t = torch.bmm(t.transpose(1, 2), t) / ct
        return (m_s - m_t).square().sum(dim=(1, 2))
    g_ss, g_st, g_tt = (torch.bmm(a, b.transpose(1, 2)) for a, b in ((fs, fs), (fs, ft), (ft, ft)))
    inv_s = torch.diagonal(g_ss, dim1=1, dim2=2).clamp_min(1e-24).rsqrt()
    inv_t = torch.diagonal(g_tt, dim1=1, dim2=2).clamp_min(1e-24).rsqrt()

    def mean_k(g, a, b):
        return (g * a.unsqueeze(2) * b.unsqueeze(1)).square().mean(dim=(1, 2))

    return mean_k(g_tt, inv_t, inv_t) + mean_k(g_ss, inv_s, inv_s) - 2 * mean_k(g_st, inv_s, inv_t)


def _kernel_mmd(s: torch.Tensor, t: torch.Tensor, kernel: str, sigma2: float | torch.Tensor = 1.0) -> torch.Tensor:
    """(B,) MMD² from the three kernel means (each over all entries of its matrix, diagonal included)."""
    k_tt = nst_kernel(t, t, kernel, sigma2).mean(dim=(1, 2))
    k_ss = nst_kernel(s, s, kernel, sigma2).mean(dim=(1, 2))
    k_st = nst_kernel(s, t, kernel, sigma2).mean(dim=(1, 2))
    return k_tt + k_ss - 2 * k_st


def nst_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor, kernel: str = "poly",
             sigma2: float | None = None) -> torch.Tensor:
    """Neuron selectivity transfer: squared MMD between the channel distributions (Huang & Wang 2017).

    With S (C_s, H·W) and T (C_t, H·W) the L2-normalised channel rows of one sample
    (:func:`selectivity_vectors`; if the spatial sizes differ, the larger map is average-pooled to
    the smaller one first, as in the benchmark), the per-sample loss is

        MMD² = mean_{i,i'} k(t_i, t_i') + mean_{j,j'} k(s_j, s_j') − 2 mean_{i,j} k(s_j, t_i),

    each mean over all entries of its kernel matrix (C_t², C_s², C_s·C_t, diagonals included), and
    the loss is the mean of MMD² over the batch. The teacher-teacher term carries no gradient.

    Kernels (Sec. 3.3 of the paper):

    * ``"poly"`` (default, what the CRD benchmark's ``NSTLoss`` computes): k = (x·y)², the paper's
      polynomial kernel with d = 2, c = 0. Since (x·y)² = ⟨x xᵀ, y yᵀ⟩_F, MMD² is also the squared
      Frobenius distance between the second-moment matrices SᵀS / C_s and TᵀT / C_t (H·W × H·W);
      the function computes whichever form has the smaller matrices (the value is the same), the
      kernel form from the raw Gram matrices rescaled by the channel norms.
    * ``"linear"``: k = x·y. The three means collapse to ‖mean_j s_j − mean_i t_i‖², the squared
      distance between the mean normalised maps, an attention-transfer-like target; computed in
      that closed form.
    * ``"gaussian"``: k = exp(−‖x − y‖² / (2σ²)). ``sigma2=None`` sets σ² per sample to the mean
      squared distance over all pairs of the C_s + C_t vectors (the paper sets σ² from the mean
      squared distance of the pairs), treated as a constant (detached): the gradient is the one at
      that fixed bandwidth. Pass a number to fix σ² yourself.

    Paper vs benchmark: the paper writes the total loss as CE + λ/2 · MMD², the weight halved; the
    benchmark adds β · MMD² (β = 50 in its NST command) and always uses the polynomial kernel, with
    the batch mean above (its ``.mean()`` over the (B, C, C) kernel tensors). This function follows
    the benchmark and leaves the weight to the method (:mod:`kdteach.methods.nst`). The value is a
    mean of kernel entries (each in [0, 1] for ``poly`` and ``gaussian``), with no 1/(H·W) factor, so
    unlike :func:`kdteach.losses.at_loss` it does not grow when the maps shrink.

    Args:
        student_feature: (B, C_s, H_s, W_s) student activations (gradients flow here).
        teacher_feature: (B, C_t, H_t, W_t) teacher activations (detached inside); C_t may differ
            from C_s.
        kernel: one of :data:`NST_KERNELS`.
        sigma2: the Gaussian bandwidth σ² > 0, or None for the mean-pair-distance rule; only with
            ``kernel="gaussian"``.

    Returns:
        Scalar loss, the batch mean of the per-sample MMD² (float32 for half/bfloat16 inputs). No
        loss weight.

    Raises:
        TypeError: an input is not a floating-point tensor; ``sigma2`` is not a number.
        ValueError: an input is not 4-D or is empty; batch sizes or devices differ; an unknown
            ``kernel``; ``sigma2`` <= 0 or given with another kernel.
    """
    check_tensor(student_feature, "student_feature", 4, FEATURE)
    check_tensor(teacher_feature, "teacher_feature", 4, FEATURE)
    check_same_batch(student_feature, "student_feature", teacher_feature, "teacher_feature")
    sigma2 = _check_kernel(kernel, sigma2)
    with full_precision(student_feature.device):
        fs, ft = _pool_to_common(*_student_teacher(student_feature, teacher_feature))
        if kernel == "poly":
            return _poly_mmd(fs.flatten(2), ft.flatten(2)).mean()
        s, t = selectivity_vectors(fs), selectivity_vectors(ft)
        if kernel == "linear":
            return (s.mean(1) - t.mean(1)).square().sum(1).mean()
        bandwidth = _mean_pair_sq_distance(s.detach(), t).clamp_min(1e-12) if sigma2 is None else sigma2
        return _kernel_mmd(s, t, "gaussian", bandwidth).mean()
