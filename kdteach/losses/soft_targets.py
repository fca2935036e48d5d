"""Soft targets other than the teacher's, and the KD loss against any target distribution.

Reference: J. Tang, R. Shivanna, Z. Zhao, D. Lin, A. Singh, E. H. Chi, S. Jain, "Understanding and
Improving Knowledge Distillation", arXiv:2002.03532 (2020). The paper splits what a teacher's soft
targets carry into three levels: knowledge of the "universe" (a regularisation that label smoothing
also gives), domain knowledge (which classes are alike) and instance-specific knowledge (how hard
each image is, which rescales the per-image gradients). The targets here take levels away one at a
time so that their effects can be seen on their own:

- :func:`smoothed_targets`: uniform label smoothing (1 − ε)·onehot + ε/K, the same for every image
  of a class (only the "universe" level); :func:`matched_epsilon` picks the ε whose target class
  gets, on average, as much probability as the teacher gives it;
- :func:`permute_nontarget`: the teacher's distribution with its non-target probabilities shuffled
  among the non-target classes, per image (keeps the target probability and the set of non-target
  values, so the smoothing and the per-image confidence; destroys which classes are alike);
- :func:`soft_target_loss`: T² · KL(q ‖ softmax(z_s / T)) against a given distribution q, which is
  :func:`kdteach.losses.kd_loss` when q = softmax(z_t / T).

The paper describes its controlled teachers in words; these functions are kdteach's constructions
of the three levels, not a transcription of the authors' code (we found none public).
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ._validate import as_float, check_positive, check_same_shape, check_tensor, full_precision
from .tfkd import virtual_teacher_probs

__all__ = ["smoothed_targets", "matched_epsilon", "permute_nontarget", "soft_target_loss"]

_SUM_TOLERANCE = 1e-3        # rows of a target distribution must sum to 1 within this (float32 softmax)
_SUM_TOLERANCE_LOW = 1e-2    # ... and within this when stored in float16 / bfloat16


def _check_labels(target: object, batch: int, num_classes: int, name: str = "target") -> torch.Tensor:
    """Require a (batch,) integer tensor of class indices in [0, num_classes); returns it as int64."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch},) holding class indices, "
                        f"got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got dtype {target.dtype}")
    if target.dim() != 1 or (batch >= 0 and target.shape[0] != batch) or target.numel() == 0:
        want = f"({batch},)" if batch >= 0 else "(B,) with B >= 1"
        raise ValueError(f"{name} must have shape {want} (one class index per image), got shape {tuple(target.shape)}")
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} must hold class indices in [0, {num_classes}), got values in [{lo}, {hi}]")
    return target.long()


def _check_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or int(num_classes) < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def _check_distribution(q: torch.Tensor, name: str) -> None:
    """Rows of ``q`` must be probability distributions: entries >= 0, each row summing to 1."""
    tol = _SUM_TOLERANCE_LOW if q.dtype in (torch.float16, torch.bfloat16) else _SUM_TOLERANCE
    with torch.no_grad():
        q = q.float()
        bad = bool(((q < 0).any() | ((q.sum(dim=1) - 1).abs() > tol).any()) | ~torch.isfinite(q).all())
    if bad:
        raise ValueError(f"{name} must hold one probability distribution per row (entries >= 0, rows summing "
                         f"to 1 within {tol:g}), got row sums in [{float(q.sum(1).min()):.4g}, "
                         f"{float(q.sum(1).max()):.4g}] and minimum entry {float(q.min()):.4g}")


def smoothed_targets(target: torch.Tensor, num_classes: int, epsilon: float,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform label smoothing: q = (1 − ε) · onehot(y) + ε / K, the "teacher" that knows nothing.

    This is the label-smoothing target of Szegedy et al. (CVPR 2016, Sec. 7) that Tang et al. (2020,
    the first of their three levels) compare a teacher with: every image of class y gets the same
    target, 1 − ε + ε/K on y and ε/K on each other class. It carries neither class relationships nor
    per-image difficulty. It is Tf-KD's virtual teacher written with ε:
    ``virtual_teacher_probs(y, K, correct_prob=1 − ε + ε/K)`` (:mod:`kdteach.losses.tfkd`), which
    builds it.

    Args:
        target: (B,) integer labels y in [0, K).
        num_classes: K >= 2.
        epsilon: ε in [0, 1]; 0 gives the one-hot label, 1 the uniform distribution.
        dtype: floating dtype of the result.

    Returns:
        (B, K) tensor on ``target``'s device, each row a distribution (no reduction; no gradient).
    """
    k = _check_classes(num_classes)
    y = _check_labels(target, -1, k)
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon must be a number in [0, 1], got {epsilon!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    eps = float(epsilon)
    return virtual_teacher_probs(y, k, 1.0 - eps + eps / k, dtype=dtype)


def matched_epsilon(probs: torch.Tensor, target: torch.Tensor) -> float:
    """The ε for which :func:`smoothed_targets` puts, on the true class, the mean probability that
    ``probs`` put there: 1 − ε + ε/K = mean_i p_i(y_i), i.e. ε = (1 − mean p(y)) · K / (K − 1).

    With ``probs`` = a teacher's softened outputs on the training images, the uniform target and
    the teacher smooth by the same amount on average, so a comparison of the two isolates how the
    teacher spreads the rest (kdteach's control for Tang et al.'s first level, not the paper's).

    Args:
        probs: (N, K) probability distributions (e.g. ``softened_probs(teacher_logits, T)``).
        target: (N,) integer labels in [0, K).

    Returns:
        ε as a float, clipped to [0, 1] (a mean target probability below 1/K gives 1).
    """
    check_tensor(probs, "probs", 2, "(N, K)")
    k = _check_classes(probs.shape[1])
    y = _check_labels(target, probs.shape[0], k)
    _check_distribution(probs, "probs")
    mean_conf = float(probs.detach().gather(1, y.to(probs.device)[:, None]).mean())
    return min(1.0, max(0.0, (1.0 - mean_conf) * k / (k - 1)))


def permute_nontarget(probs: torch.Tensor, target: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """The teacher with its class relationships removed: per row, the values at the non-target
    classes are shuffled among the non-target classes by a uniformly random permutation.

    For image i with label y_i, ``out[i, y_i] = probs[i, y_i]`` and ``out[i, j] = probs[i, π_i(j)]``
    for j ≠ y_i, with π_i a random permutation of the K − 1 other classes, drawn independently per
    row. The target probability, the multiset of non-target values and hence the entropy stay; what
    goes is *which* wrong classes get the mass, the domain knowledge of Tang et al. (2020, second
    level). Softmax commutes with the permutation, so permuting logits and then softening equals
    softening and then permuting.

    The random keys are drawn on the CPU from ``generator`` and moved to ``probs``'s device, so a
    seeded generator gives the same permutations on every device (the training methods seed one per
    step). The operation is a gather and a scatter: differentiable with respect to ``probs``.

    Args:
        probs: (B, K) values per class, usually probabilities (any real values work), K >= 2.
        target: (B,) integer labels in [0, K), on ``probs``'s device.
        generator: a CPU ``torch.Generator`` (None: the global CPU generator).

    Returns:
        (B, K) tensor of ``probs``'s dtype and device (no reduction).
    """
    check_tensor(probs, "probs", 2, "(B, K)")
    b, k = probs.shape
    y = _check_labels(target, b, _check_classes(k))
    if y.device != probs.device:
        raise ValueError(f"target and probs must be on the same device, got {y.device} and {probs.device}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError(f"generator must be a CPU torch.Generator or None, got {generator!r}")
    columns = torch.arange(k, device=probs.device).expand(b, k)
    is_target = columns == y[:, None]
    keys = torch.rand(b, k, generator=generator).to(probs.device)
    # both orders start with the target column; then the other columns, ascending (src) or shuffled (dst)
    src = torch.where(is_target, -1, columns).argsort(dim=1, stable=True)
    dst = torch.where(is_target, -1.0, keys).argsort(dim=1, stable=True)
    return torch.zeros_like(probs).scatter(1, dst, probs.gather(1, src))


def soft_target_loss(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float = 4.0
                     ) -> torch.Tensor:
    """KD against a given target distribution q: T² · (1/B) Σ_i KL(q_i ‖ softmax(z_s,i / T)).

    The distillation term of Hinton et al. (2015) with the teacher's softened probabilities replaced
    by any distribution q (a smoothed label, a permuted teacher): Tang et al. (2020) study KD by
    swapping what the student is asked to match. ``q`` is used as given (it is *not* softened again);
    with q = softmax(z_t / T) this equals ``kd_loss(student_logits, teacher_logits, T)``. The gradient
    with respect to the student logits is T · (p_s − q) / B with p_s = softmax(z_s / T). Entries
    q = 0 contribute 0 (0 · log 0 = 0).

    Args:
        student_logits: (B, K) student logits z_s (gradients flow here).
        target_probs: (B, K) target distributions q, rows >= 0 summing to 1 (detached inside).
        temperature: T > 0, applied to the student only.

    Returns:
        Scalar: the KL summed over classes, averaged over the batch, times T² (float32 for
        half/bfloat16 inputs, else the input dtype). No loss weight applied.
    """
    check_tensor(student_logits, "student_logits", 2, "(B, K)")
    check_tensor(target_probs, "target_probs", 2, "(B, K)")
    check_same_shape(student_logits, "student_logits", target_probs, "target_probs")
    t = check_positive(temperature, "temperature")
    with full_precision(student_logits.device):
        log_p_s = F.log_softmax(as_float(student_logits) / t, dim=1)
        _check_distribution(target_probs.detach(), "target_probs")
        q = as_float(target_probs.detach()).to(log_p_s.dtype)
        # F.kl_div(input=log p_s, target=q) = Σ q (log q − log p_s), with 0 · log 0 = 0
        return F.kl_div(log_p_s, q, reduction="sum") * (t * t) / student_logits.shape[0]
