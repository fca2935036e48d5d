"""Decoupled knowledge distillation: KD split into a target-class and a non-target-class term.

Reference: B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, "Decoupled Knowledge Distillation",
CVPR 2022 (arXiv:2203.08679); the authors' code is mdistiller (github.com/megvii-research/mdistiller,
``mdistiller/distillers/DKD.py``).

For one image with label t and softened probabilities p = softmax(z / T) over C classes:

- the **binary** probabilities b = [p_t, 1 − p_t]: target class against all the others;
- the **non-target** probabilities p̂_i = p_i / (1 − p_t) for i ≠ t: the distribution among the
  wrong classes, renormalised (the target left out);
- TCKD = KL(b^teacher ‖ b^student), NCKD = KL(p̂^teacher ‖ p̂^student), and the paper's identity

      KL(p^teacher ‖ p^student) = TCKD + (1 − p_t^teacher) · NCKD

  (KD couples NCKD to the teacher's confidence: the surer the teacher, the less NCKD counts).
  DKD replaces the weight (1 − p_t^teacher) by a free constant β and adds a weight α on TCKD.

Both parts are KD on other logits, so they reuse :func:`kdteach.losses.kd_loss`: b is the
softmax at T of the two "logits" [z_t, T · logsumexp_{j≠t}(z_j / T)], and p̂ the softmax at T of
the C − 1 non-target logits.
"""

from __future__ import annotations

import numbers

import torch

from ._validate import as_float, check_positive, check_same_shape, check_tensor, full_precision
from .response import kd_loss

__all__ = ["binary_probs", "nontarget_probs", "dkd_terms", "dkd_loss"]


def _check_target(target: object, logits: torch.Tensor, name: str = "target") -> torch.Tensor:
    """Require (B,) integer class indices in [0, C) on the logits' device, and C >= 2."""
    b, c = logits.shape
    if c < 2:
        raise ValueError(f"decoupled distillation needs at least 2 classes (a target and a non-target), "
                         f"got logits of shape {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({b},) holding class indices, "
                        f"got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got dtype {target.dtype}")
    if target.dim() != 1 or target.shape[0] != b:
        raise ValueError(f"{name} must have shape ({b},) (one class index per row of the logits), "
                         f"got shape {tuple(target.shape)}")
    if target.device != logits.device:
        raise ValueError(f"{name} and the logits must be on the same device, got {target.device} and {logits.device}")
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= c:
        raise ValueError(f"{name} must hold class indices in [0, {c}), got values in [{lo}, {hi}]")
    return target.long()


def _check_weight(value: object, name: str) -> float:
    """A loss weight: a finite real number >= 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (v >= 0 and v != float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _decoupled_logits(logits: torch.Tensor, target: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(binary, others)``: (B, 2) logits whose softmax at ``t`` is b = [p_t, 1 − p_t], and the
    (B, C − 1) non-target logits (class order kept) whose softmax at ``t`` is p̂."""
    z = as_float(logits)
    b, c = z.shape
    is_target = torch.zeros_like(z, dtype=torch.bool).scatter_(1, target[:, None], True)
    others = z[~is_target].view(b, c - 1)
    rest = t * torch.logsumexp(others / t, dim=1, keepdim=True)       # log Σ_{j≠t} exp(z_j / T), times T
    return torch.cat([z.gather(1, target[:, None]), rest], dim=1), others


def binary_probs(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """DKD's binary probabilities b = [p_t, 1 − p_t] with p = softmax(z / T) (Zhao et al. 2022, Sec. 3).

    Column 0 is the probability of the target class, column 1 the total of all the others; the
    second column is computed by log-sum-exp over the non-target logits, so it stays exact when p_t
    is close to 1 (where ``1 - p_t`` would cancel).

    Args:
        logits: (B, C) logits z, C >= 2.
        target: (B,) integer class indices in [0, C) (the ground-truth labels).
        temperature: T > 0.

    Returns:
        (B, 2) probabilities, rows summing to 1 (float32 for half/bfloat16 inputs).
    """
    check_tensor(logits, "logits", 2, "(B, C)")
    y = _check_target(target, logits)
    t = check_positive(temperature, "temperature")
    with full_precision(logits.device):
        binary, _ = _decoupled_logits(logits, y, t)
        return torch.softmax(binary / t, dim=1)


def nontarget_probs(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """DKD's non-target probabilities p̂_i = p_i / (1 − p_t), i ≠ t, with p = softmax(z / T)
    (Zhao et al. 2022, Sec. 3): how the probability outside the target class is shared among the
    wrong classes.

    Args:
        logits: (B, C) logits z, C >= 2.
        target: (B,) integer class indices in [0, C).
        temperature: T > 0.

    Returns:
        (B, C) tensor: p̂ in the non-target columns (each row sums to 1 over them) and exactly 0 in
        the target column, so that column i is still class i (float32 for half/bfloat16 inputs).
    """
    check_tensor(logits, "logits", 2, "(B, C)")
    y = _check_target(target, logits)
    t = check_positive(temperature, "temperature")
    with full_precision(logits.device):
        _, others = _decoupled_logits(logits, y, t)
        out = torch.zeros(logits.shape, dtype=others.dtype, device=others.device)
        is_target = torch.zeros_like(out, dtype=torch.bool).scatter_(1, y[:, None], True)
        return out.masked_scatter(~is_target, torch.softmax(others / t, dim=1))


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              temperature: float = 4.0, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """The two parts of DKD, unweighted: ``(TCKD, NCKD)``, each T²-scaled (Zhao et al. 2022, Sec. 3).

    TCKD = T² · KL(b^t ‖ b^s) with b = [p_t, 1 − p_t] (:func:`binary_probs`); NCKD = T² · KL(p̂^t ‖ p̂^s)
    over the C − 1 non-target classes (:func:`nontarget_probs`); p = softmax(z / T). Each is
    :func:`kdteach.losses.kd_loss` applied to decoupled logits (see the module docstring), so for
    ``reduction="mean"`` they are averaged over the batch exactly as ``kd_loss`` averages. Per image,
    ``kd_loss`` = TCKD + (1 − p_t^teacher) · NCKD, with p_t^teacher the teacher's softened
    probability of the target class (the paper's reformulation of KD; the T² multiplies all three).

    Args:
        student_logits: (B, C) student logits (gradients flow here), C >= 2.
        teacher_logits: (B, C) teacher logits (detached inside).
        target: (B,) integer class indices in [0, C): the ground-truth labels.
        temperature: T > 0 (the same for both parts, as in mdistiller).
        reduction: ``"mean"``: two scalars, averaged over the batch (what :func:`dkd_loss` weights);
            ``"none"``: two (B,) tensors, one value per image (for analysis on small batches: it
            calls ``kd_loss`` once per image).

    Returns:
        ``(tckd, nckd)``: scalars or (B,) tensors (float32 for half/bfloat16 inputs, else the input
        dtype). With C = 2 there is one non-target class, so NCKD is 0.

    Raises:
        TypeError / ValueError: logits not floating (B, C) of equal shape and device, C < 2, target
            not (B,) integer indices in [0, C) on the same device, temperature not > 0, or an
            unknown reduction.
    """
    check_tensor(student_logits, "student_logits", 2, "(B, C)")
    check_tensor(teacher_logits, "teacher_logits", 2, "(B, C)")
    check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    y = _check_target(target, student_logits)
    t = check_positive(temperature, "temperature")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    with full_precision(student_logits.device):
        bin_s, oth_s = _decoupled_logits(student_logits, y, t)
        bin_t, oth_t = _decoupled_logits(teacher_logits.detach(), y, t)
        bin_t, oth_t = bin_t.to(bin_s.dtype), oth_t.to(oth_s.dtype)
        if reduction == "mean":
            return kd_loss(bin_s, bin_t, t), kd_loss(oth_s, oth_t, t)
        rows = range(student_logits.shape[0])
        tckd = torch.stack([kd_loss(bin_s[i:i + 1], bin_t[i:i + 1], t) for i in rows])
        nckd = torch.stack([kd_loss(oth_s[i:i + 1], oth_t[i:i + 1], t) for i in rows])
        return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> torch.Tensor:
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022, Sec. 3): α · TCKD + β · NCKD.

    TCKD and NCKD as in :func:`dkd_terms`: each T² · KL at temperature T, summed over its classes
    (2 for TCKD, the C − 1 non-target classes for NCKD) and averaged over the batch. This
    reproduces mdistiller's ``dkd_loss`` (``mdistiller/distillers/DKD.py``) with its defaults
    α = 1, β = 8, T = 4 (``mdistiller/engine/cfg.py``; β = 8 is also the value its CIFAR-100
    config ``res32x4_res8x4.yaml`` keeps). α = 1 and β = 1 − p_t^teacher *per image* give back
    :func:`kdteach.losses.kd_loss` (the paper's reformulation of KD); a constant β cannot, which is the point.

    How mdistiller separates the target class, and where this function differs (values agree to
    float precision on ordinary logits; the tests check it):

    - TCKD: it builds b by multiplying the softened probabilities with a one-hot ``gt_mask`` and
      its complement ``other_mask`` and summing each row, then takes ``torch.log`` of b. Here b's
      logarithm comes from log-sum-exp over the non-target logits, which stays finite when p_t
      rounds to 1 or 0 (``torch.log`` would give −inf and a NaN loss there).
    - NCKD: it subtracts 1000 from the *tempered* target logit (``z / T - 1000 * gt_mask``) and takes
      softmax / log_softmax over all C classes, so the target gets probability e^−1000, which is 0
      in float32 and float64, and the C-class KL equals the (C − 1)-class KL. Here the target column
      is removed instead (the paper's definition of p̂); the two differ only if a target logit
      exceeds the others by about 1000 · T.
    - The paper writes the decomposition for softmax probabilities without a temperature; the code
      (mdistiller, and this function) applies T to both parts and multiplies each by T², as KD does.

    Args:
        student_logits: (B, C) student logits (gradients flow here), C >= 2.
        teacher_logits: (B, C) teacher logits (detached inside).
        target: (B,) integer ground-truth labels in [0, C).
        alpha: α >= 0, the weight of TCKD (mdistiller: 1.0).
        beta: β >= 0, the weight of NCKD (mdistiller: 8.0; its CIFAR-100 configs override it with
            2.0 for resnet56 -> resnet20 and resnet110 -> resnet32, and 6.0 for WRN-40-2 -> WRN-16-2,
            WRN-40-2 -> WRN-40-1, VGG13 -> VGG8 and VGG13 -> MobileNetV2).
        temperature: T > 0 (mdistiller: 4.0).

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs, else the input dtype). No warm-up or other
        weight applied (mdistiller's linear warm-up lives in :class:`kdteach.methods.dkd.DKD`).
    """
    a = _check_weight(alpha, "alpha")
    b = _check_weight(beta, "beta")
    tckd, nckd = dkd_terms(student_logits, teacher_logits, target, temperature)
    return a * tckd + b * nckd
