"""Measurements of transferred knowledge on trained models: the "before and after" of the notebooks.

A notebook shows *that* a method moved the student towards its teacher; these functions measure how
far, on whole image sets, so that every notebook measures the same thing the same way:

- :func:`attention_maps`: the AT attention maps of a model's stages on a batch (AT, Sec. 3.1).
- :func:`attention_distance`: per stage pair, the AT loss between student and teacher averaged over
  an image set, i.e. how far apart their normalised attention maps are.
- :func:`map_correlation`: per-image Pearson correlation of two stacks of maps (CAM vs CAM,
  attention vs attention), with maps of different sizes resized and constant maps guarded.

Mean and spread over seeds: :func:`kdteach.results.mean_std`.

References: S. Zagoruyko, N. Komodakis, "Paying More Attention to Attention", ICLR 2017 (attention
maps); B. Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016 (CAM).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .features import capture
from .losses import at_loss, attention_map, normalize_map
from .losses._validate import check_tensor

__all__ = ["attention_maps", "attention_distance", "map_correlation"]


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _stage_list(names: Iterable[str] | str, arg: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"{arg} must name at least one stage")
    return names


def attention_maps(model: nn.Module, x: torch.Tensor, stages: Iterable[str] | str, mode: str = "sum_p",
                   p: float = 2) -> dict[str, torch.Tensor]:
    """Attention maps of ``model``'s ``stages`` on images ``x`` (Zagoruyko & Komodakis, ICLR 2017).

    Runs the model once in eval mode without gradients (on the model's device) and applies
    :func:`kdteach.losses.attention_map` to each captured stage output.

    Args:
        model: a kdteach model (declared stages).
        x: (N, 3, H, W) normalised images.
        stages: stage names (see :func:`kdteach.features.feature_names`).
        mode: ``"sum"``, ``"sum_p"`` or ``"max_p"`` (:data:`kdteach.losses.ATTENTION_MODES`).
        p: the exponent of ``"sum_p"`` / ``"max_p"``.

    Returns:
        ``{stage: (N, h, w)}`` un-normalised maps on the CPU, float32, in the order of ``stages``.
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    names = _stage_list(stages, "stages")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, names) as feats:
            model(x.to(_device_of(model)))
            return {n: attention_map(feats[n], p=p, mode=mode).float().cpu() for n in names}
    finally:
        model.train(was_training)


def attention_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor,
                       pairs: Sequence[tuple[str, str]], p: float = 2, batch_size: int = 500
                       ) -> dict[str, tuple[float, int]]:
    """AT loss between student and teacher stages, averaged over all images of ``x``.

    For each (student stage, teacher stage) pair this is :func:`kdteach.losses.at_loss` (the CRD
    benchmark form: mean over images and positions of the squared difference of the L2-normalised
    maps), weighted by batch size so the result is the mean over all N images. Since the maps are
    unit vectors, the value lies in [0, 2/(h·w)]; ``1 - value·h·w/2`` is the mean cosine between the
    student's and the teacher's maps.

    Args:
        student, teacher: kdteach models on the same device (both run in eval mode, no gradients).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        pairs: ``[(student_stage, teacher_stage), ...]``.
        p: the attention exponent.
        batch_size: images per forward pass.

    Returns:
        ``{teacher_stage: (mean at_loss, h·w)}`` with h·w the compared map size.
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    pairs = [tuple(pair) for pair in pairs]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"pairs must be a non-empty list of (student_stage, teacher_stage), got {pairs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    s_names, t_names = [s for s, _ in pairs], [t for _, t in pairs]
    device = _device_of(student)
    modes = (student.training, teacher.training)
    student.eval()
    teacher.eval()
    total, size = {t: 0.0 for t in t_names}, {}
    try:
        with torch.no_grad(), capture(student, s_names) as fs, capture(teacher, t_names) as ft:
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(device)
                student(xb)
                teacher(xb)
                for s, t in pairs:
                    total[t] += at_loss(fs[s], ft[t], p=p).item() * len(xb)
                    size[t] = min(fs[s].shape[-2], ft[t].shape[-2]) * min(fs[s].shape[-1], ft[t].shape[-1])
    finally:
        student.train(modes[0])
        teacher.train(modes[1])
    return {t: (total[t] / len(x), size[t]) for t in t_names}


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two stacks of maps (CAMs, attention maps).

    ``b`` is resized bilinearly to ``a``'s spatial size when they differ. Each map is min-max
    normalised first (:func:`kdteach.losses.normalize_map`), which does not change a correlation
    but guards constant maps: a constant (e.g. all-zero) map gets correlation 0, not NaN.

    Args:
        a: (N, h, w) maps.
        b: (N, h', w') maps of the same N images.

    Returns:
        (N,) correlations in [-1, 1], float32.
    """
    check_tensor(a, "a", 3, "(N, h, w)")
    check_tensor(b, "b", 3, "(N, h, w)")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must hold maps of the same images (dimension 0), got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.float(), b.float().to(a.device)
    if b.shape[-2:] != a.shape[-2:]:
        b = F.interpolate(b[:, None], size=a.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    a, b = normalize_map(a).flatten(1), normalize_map(b).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-12), torch.zeros_like(den))
