"""ReviewKD's hierarchical context loss (HCL).

Reference: P. Chen, S. Liu, H. Zhao, J. Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021
(arXiv:2104.09044); the re-implementation in mdistiller (github.com/megvii-research/mdistiller,
``mdistiller/distillers/ReviewKD.py``, function ``hcl_loss``), which the authors' CIFAR code matches.

The review path (:mod:`kdteach.methods.reviewkd`) turns the student's features into one map per
teacher stage; HCL compares each pair not only position by position but also after average pooling
to a pyramid of coarser grids, so the student is also asked to match the teacher's regional context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import as_float, check_same_shape, check_tensor, check_tensor_list, full_precision

__all__ = ["hcl_loss", "hcl_level_weights", "HCL_LEVELS"]

#: the pooled grid sizes of the pyramid, finest first (mdistiller's ``[4, 2, 1]``)
HCL_LEVELS = (4, 2, 1)


def hcl_level_weights(height: int) -> list[tuple[int, float]]:
    """The levels HCL uses on a map of height ``height`` and their normalised weights.

    Level 0 is the full map (grid ``height``) with raw weight 1; each pooled grid l in
    :data:`HCL_LEVELS` with l < ``height`` follows with half the raw weight of the previous *used*
    level (1/2, 1/4, ...); grids with l >= ``height`` are skipped (mdistiller's ``if l >= h: continue``,
    so a 1x1 map is compared by its MSE only). The weights are divided by their sum.

    Args:
        height: H of the (B, C, H, W) maps (>= 1).

    Returns:
        ``[(grid, weight), ...]`` starting with ``(height, w_0)``; the weights sum to 1.

    Raises:
        ValueError: ``height`` is not an integer >= 1.
    """
    if isinstance(height, bool) or not isinstance(height, int) or height < 1:
        raise ValueError(f"height must be an integer >= 1, got {height!r}")
    raw, weight = [(height, 1.0)], 1.0
    for level in HCL_LEVELS:
        if level >= height:
            continue
        weight /= 2.0
        raw.append((level, weight))
    total = sum(w for _, w in raw)
    return [(g, w / total) for g, w in raw]


def hcl_loss(student_features, teacher_features) -> torch.Tensor:
    """ReviewKD's hierarchical context loss, summed over pairs of equal-shape maps (Chen et al., CVPR 2021).

    For each pair (s, t) of (B, C, H, W) maps, with P_l the adaptive average pooling to an l x l grid,

        ℓ(s, t) = [ MSE(s, t) + Σ_{used l} c_l · MSE(P_l s, P_l t) ] / (1 + Σ_{used l} c_l)

    where the used levels are l ∈ (4, 2, 1) with l < H, and c_l = 1/2, 1/4, 1/8 for the first,
    second, third used level (:func:`hcl_level_weights`). MSE is the mean over all B·C·h·w entries.
    L = Σ over the pairs of ℓ. The teacher maps are detached.

    Paper vs code: the paper's HCL pools to levels of a spatial pyramid and weights them without
    giving numbers; the weights, the skip rule (levels with l >= H are dropped, tested on H only, so
    non-square maps use H) and the normalisation by the weights' sum are mdistiller's ``hcl_loss``.
    The original code's sum over the pairs has no per-pair weight; ReviewKD's loss weight (5 for
    CIFAR-100 in mdistiller's config) is applied by the method, not here.

    Computation: pooling is linear, so each level pools the difference s − t once (mdistiller pools s
    and t apart); a level whose bins nest in the previous level's (e.g. 2x2 in 4x4 of an 8x8 map) pools
    that level instead of the full map. The value is the same up to rounding.

    Args:
        student_features: list/tuple of (B, C_i, H_i, W_i) student maps (the review path's outputs).
        teacher_features: list/tuple of the teacher's maps, the same length, each pair of equal shape.

    Returns:
        Scalar loss (float32 for half/bfloat16 inputs). No loss weight.

    Raises:
        TypeError: an argument is not a list/tuple of floating-point tensors.
        ValueError: the lists are empty or of different lengths, a map is not 4-D or is empty, or the
            shapes (or devices) of a pair differ.
    """
    students = check_tensor_list(student_features, "student_features")
    teachers = check_tensor_list(teacher_features, "teacher_features")
    if len(students) != len(teachers):
        raise ValueError(f"student_features and teacher_features must have the same length, got "
                         f"{len(students)} and {len(teachers)} maps")
    total = None
    for i, (s, t) in enumerate(zip(students, teachers)):
        s_name, t_name = f"student_features[{i}]", f"teacher_features[{i}]"
        check_tensor(s, s_name, 4, "(B, C, H, W)")
        check_tensor(t, t_name, 4, "(B, C, H, W)")
        check_same_shape(s, s_name, t, t_name)
        with full_precision(s.device):
            s = as_float(s)
            diff = s - t.detach().to(s.dtype)            # pooling is linear: P(s) - P(t) = P(s - t)
            term, prev = None, diff
            for grid, weight in hcl_level_weights(s.shape[2]):
                if grid != s.shape[2]:
                    # pool from the previous (coarser-than-full) level when its bins nest exactly, else from diff
                    nested = prev is not diff and prev.shape[-1] % grid == 0 and prev.shape[-2] % grid == 0 \
                        and diff.shape[-1] % prev.shape[-1] == 0 and diff.shape[-2] % prev.shape[-2] == 0
                    prev = F.adaptive_avg_pool2d(prev if nested else diff, grid)
                mse = prev.square().mean()
                term = weight * mse if term is None else term + weight * mse
        total = term if total is None else total + term
    return total
