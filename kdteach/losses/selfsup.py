"""Self-supervision as knowledge: SSKD's transformed views, contrastive similarity matrices and its two
selective KL terms.

Reference: G. Xu, Z. Liu, X. Li, C. C. Loy, "Knowledge Distillation Meets Self-Supervision", ECCV 2020
(arXiv:2006.07114), Sec. 3; the authors' code (xuguodong03/SSKD, ``student.py``, ``wrapper.py``), which
these functions follow.

Each image is shown in its normal view and in transformed views (rotations by 90, 180 and 270 degrees).
A projection head maps a network's penultimate features to embeddings; the *contrastive similarity
matrix* holds the cosine between every transformed view's embedding (rows) and every normal view's
(columns), so row j should peak at the column of its own image. The teacher's matrix, from a head trained
on this pretext task, is the knowledge: the student imitates it row by row (:func:`sskd_ss_loss`), and
imitates the teacher's class predictions on the transformed views (:func:`sskd_tf_loss`); both keep only
the rows where the teacher is right or close to right (:func:`error_rank_keep`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._validate import as_float, check_same_shape, check_tensor, full_precision

__all__ = ["rotation_views", "view_targets", "contrastive_similarity", "error_rank_keep", "sskd_head_loss",
           "sskd_ss_loss", "sskd_tf_loss"]


def rotation_views(x: torch.Tensor) -> torch.Tensor:
    """The three rotated views of each image: (B, C, H, W) with H = W -> (3B, C, H, W), image-major
    (rows 3i, 3i + 1, 3i + 2 are image i rotated by 90, 180 and 270 degrees counter-clockwise), the order
    of the authors' code (their loader stacks the four views of an image)."""
    check_tensor(x, "x", 4, "(B, C, H, W) images")
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"x must hold square images for rotations by 90 degrees, got shape {tuple(x.shape)}")
    views = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in (1, 2, 3)], dim=1)   # (B, 3, C, H, W)
    return views.flatten(0, 1)


def view_targets(num_images: int, views_per_image: int = 3, device=None) -> torch.Tensor:
    """(views_per_image · B,) int64: the normal view's column of each transformed row, j // views_per_image."""
    return torch.arange(num_images * views_per_image, device=device) // views_per_image


def contrastive_similarity(transformed: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """SSKD's contrastive similarity matrix: cos(transformed_j, normal_i), (M, D) x (B, D) -> (M, B)
    (the authors' ``F.cosine_similarity`` of the expanded embeddings; rows: transformed views, columns:
    normal views)."""
    check_tensor(transformed, "transformed", 2, "(M, D) embeddings of the transformed views")
    check_tensor(normal, "normal", 2, "(B, D) embeddings of the normal views")
    if transformed.shape[1] != normal.shape[1]:
        raise ValueError(f"transformed and normal must have the same embedding size D, got shapes "
                         f"{tuple(transformed.shape)} and {tuple(normal.shape)}")
    with full_precision(normal.device):
        a = F.normalize(as_float(transformed), dim=1, eps=1e-8)
        b = F.normalize(as_float(normal), dim=1, eps=1e-8).to(a.dtype)
        return a @ b.t()


def error_rank_keep(teacher_scores: torch.Tensor, target: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """SSKD's error-level ranking: the rows to distil, (M, K) scores and (M,) targets -> sorted (n,) row indices.

    Each row's error level is the rank of its target among the teacher's scores (0: the teacher's top
    choice). Every row of rank 0 is kept, plus the ``keep_ratio`` share (rounded down) of the others with
    the smallest ranks (a stable sort breaks ties by row order); the authors' ``ratio_tf`` / ``ratio_ss``.
    """
    check_tensor(teacher_scores, "teacher_scores", 2, "(M, K) teacher scores")
    if not isinstance(target, torch.Tensor) or target.shape != teacher_scores.shape[:1] or target.dtype != torch.int64:
        raise ValueError(f"target must be an int64 tensor ({teacher_scores.shape[0]},), got "
                         f"{target.dtype if isinstance(target, torch.Tensor) else type(target).__name__} "
                         f"{tuple(target.shape) if isinstance(target, torch.Tensor) else ''}")
    if isinstance(keep_ratio, bool) or not 0.0 <= float(keep_ratio) <= 1.0:
        raise ValueError(f"keep_ratio must be in [0, 1], got {keep_ratio!r}")
    target_score = teacher_scores.gather(1, target.unsqueeze(1))
    rank = (teacher_scores > target_score).sum(1)                        # classes scored above the target
    wrong = int((rank > 0).sum())
    order = torch.sort(rank, stable=True).indices
    keep = order[: teacher_scores.shape[0] - wrong + int(wrong * float(keep_ratio))]
    return torch.sort(keep).values


def _selected_kl(student_scores: torch.Tensor, teacher_scores: torch.Tensor, keep: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """T² · batchmean KL(softmax(t/T) ‖ softmax(s/T)) over the rows ``keep`` (0 when none is kept)."""
    if keep.numel() == 0:
        return student_scores.sum() * 0.0
    log_s = F.log_softmax(student_scores[keep] / temperature, dim=1)
    p_t = F.softmax(teacher_scores[keep] / temperature, dim=1)
    return F.kl_div(log_s, p_t, reduction="batchmean") * temperature ** 2


def sskd_head_loss(similarity: torch.Tensor) -> torch.Tensor:
    """The pretext loss of SSKD's teacher head (``student.py``'s first loop): cross-entropy of the (M, B)
    cosine matrix, taken as logits without a temperature, against each row's own image (:func:`view_targets`)."""
    check_tensor(similarity, "similarity", 2, "(M, B) contrastive similarity matrix")
    m, b = similarity.shape
    if m % b:
        raise ValueError(f"similarity must have a whole number of transformed views per image (M = k·B), got "
                         f"shape {tuple(similarity.shape)}")
    with full_precision(similarity.device):
        s = as_float(similarity)
        return F.cross_entropy(s, view_targets(b, m // b, s.device))


def sskd_ss_loss(student_similarity: torch.Tensor, teacher_similarity: torch.Tensor, temperature: float = 0.5,
                 keep_ratio: float = 0.75) -> torch.Tensor:
    """SSKD's self-supervision term (Xu et al., Eq. 4; the authors' ``loss4``).

    Both (M, B) contrastive similarity matrices (M = 3B rotated views), row-softmaxed at T = 0.5; the
    student's rows imitate the teacher's by KL, T²-scaled, averaged over the kept rows: the teacher's
    correct rows (its top column is the row's own image) and the ``keep_ratio`` = 0.75 of its wrong rows
    with the smallest error level (:func:`error_rank_keep`). Teacher input detached inside.

    Raises:
        ValueError: shapes differ or are not (k·B, B), or a bad temperature / ratio.
    """
    check_tensor(student_similarity, "student_similarity", 2, "(M, B) contrastive similarity matrix")
    check_tensor(teacher_similarity, "teacher_similarity", 2, "(M, B) contrastive similarity matrix")
    check_same_shape(student_similarity, "student_similarity", teacher_similarity, "teacher_similarity")
    m, b = student_similarity.shape
    if m % b:
        raise ValueError(f"student_similarity must be (k·B, B) with whole k, got shape {tuple(student_similarity.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    with full_precision(student_similarity.device):
        s = as_float(student_similarity)
        t = as_float(teacher_similarity.detach()).to(s.dtype)
        keep = error_rank_keep(t, view_targets(b, m // b, s.device), keep_ratio)
        return _selected_kl(s, t, keep, temperature)


def sskd_tf_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                 temperature: float = 4.0, keep_ratio: float = 1.0) -> torch.Tensor:
    """SSKD's transformation term (the authors' ``loss3``): KD on the transformed views' class logits.

    (M, K) logits of the M transformed views and their (M,) class labels (the image's label); T²-scaled
    batchmean KL(softmax(z_t/T) ‖ softmax(z_s/T)) over the kept rows: the rows the teacher classifies
    correctly plus the ``keep_ratio`` share (default 1.0: all) of the others, by the rank of the label
    among the teacher's scores (:func:`error_rank_keep`). Teacher input detached inside.
    """
    check_tensor(student_logits, "student_logits", 2, "(M, K) logits")
    check_tensor(teacher_logits, "teacher_logits", 2, "(M, K) logits")
    check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    with full_precision(student_logits.device):
        s = as_float(student_logits)
        t = as_float(teacher_logits.detach()).to(s.dtype)
        keep = error_rank_keep(t, target, keep_ratio)
        return _selected_kl(s, t, keep, temperature)
