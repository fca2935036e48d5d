"""Measurements of transferred knowledge on trained models: the "before and after" of the notebooks.

A notebook shows *that* a method moved the student towards its teacher; these functions measure how
far, on whole image sets, so that every notebook measures the same thing the same way. They are the
mechanism checks of section 5 (:class:`kdteach.train.Mechanism`):

- :func:`attention_maps`: the AT attention maps of a model's stages on a batch (AT, Sec. 3.1).
- :func:`attention_distance`: per stage pair, the AT loss between student and teacher averaged over
  an image set, i.e. how far apart their normalised attention maps are (at notebook).
- :func:`map_correlation`: per-image Pearson correlation of two stacks of maps (CAM vs CAM,
  attention vs attention), with maps of different sizes resized and constant maps guarded.
- :func:`fsp_matrices`, :func:`fsp_distance`: FSP matrices of a model and the FSP loss between two
  models over an image set (fsp notebook).
- :func:`soft_target_kl`: KL from the teacher's softened outputs to the student's (kd, takd).
- :func:`dfv_distance`: the KD-SVD distance between two models' distilled feature vectors (kdsvd).
- :func:`prediction_agreement`: top-1 agreement of two models (takd, dafl).
- :func:`symmetric_kl`: symmetric KL between two networks' predictions (dml: peers vs students alone).
- :func:`exit_divergence`: KL from a self-distilled network's deepest classifier to each exit (byot).

Mean and spread over seeds: :func:`kdteach.results.mean_std`.

References: S. Zagoruyko, N. Komodakis, "Paying More Attention to Attention", ICLR 2017 (attention
maps); B. Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016 (CAM);
each function's docstring cites the paper of its measurement.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .features import capture
from .losses import at_loss, attention_map, normalize_map
from .losses._validate import check_tensor

__all__ = ["attention_maps", "attention_distance", "map_correlation", "fsp_matrices", "fsp_distance", "soft_target_kl", "dfv_distance", "prediction_agreement", "symmetric_kl", "exit_divergence"]


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _stage_list(names: Iterable[str] | str, arg: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"{arg} must name at least one stage")
    return names


@contextmanager
def _evaluating(*models: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for ``models`` inside the block; their modes are restored after."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, was in zip(models, modes):
            m.train(was)


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _paired_logits(net_a: nn.Module, net_b: nn.Module, x: torch.Tensor, batch_size: int,
                   names: tuple[str, str] = ("student", "teacher")):
    """Yield ``(z_a, z_b, n)``: both networks' (n, K) logits on each batch of ``x`` (moved to
    ``net_a``'s device), in eval mode without gradients; their modes are restored afterwards.

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``batch_size`` not a positive int, or logits of
            different shapes (named by ``names``).
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")                  # also rejects an empty x
    _check_batch_size(batch_size)
    device = _device_of(net_a)
    with _evaluating(net_a, net_b):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            za, zb = net_a(xb), net_b(xb)
            if za.shape != zb.shape:
                raise ValueError(f"{names[0]} and {names[1]} logits must have the same shape (B, K), got "
                                 f"{tuple(za.shape)} and {tuple(zb.shape)}")
            yield za, zb, len(xb)


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
    with _evaluating(model), capture(model, names) as feats:
        model(x.to(_device_of(model)))
        return {n: attention_map(feats[n], p=p, mode=mode).float().cpu() for n in names}


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
    _check_batch_size(batch_size)
    s_names, t_names = [s for s, _ in pairs], [t for _, t in pairs]
    device = _device_of(student)
    total, size = {t: 0.0 for t in t_names}, {}
    with _evaluating(student, teacher), capture(student, s_names) as fs, capture(teacher, t_names) as ft:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            for s, t in pairs:
                total[t] += at_loss(fs[s], ft[t], p=p).item() * len(xb)
                size[t] = min(fs[s].shape[-2], ft[t].shape[-2]) * min(fs[s].shape[-1], ft[t].shape[-1])
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


# --------------------------------------------------------------------------------------------
# FSP (Yim, Joo, Bae, Kim, "A Gift from Knowledge Distillation", CVPR 2017)
# --------------------------------------------------------------------------------------------

def _fsp_stages(stages: Iterable[str] | str, arg: str) -> list[str]:
    names = _stage_list(stages, arg)
    if len(names) < 2:
        raise ValueError(f"{arg} must name at least two stages (an FSP matrix joins two consecutive stages), "
                         f"got {names!r}")
    return names


def _fsp_pairs(names: Sequence[str]) -> list[str]:
    return [f"{a}->{b}" for a, b in zip(names[:-1], names[1:])]


def fsp_matrices(model: nn.Module, x: torch.Tensor, stages: Iterable[str], batch_size: int = 500
                 ) -> dict[str, torch.Tensor]:
    """FSP matrices of ``model`` between consecutive ``stages`` on images ``x`` (Yim et al., CVPR 2017, Eq. 1).

    Runs the model in eval mode without gradients, batch by batch, and applies
    :func:`kdteach.losses.fsp_matrix` to each pair of consecutive captured stage outputs (the larger
    map average-pooled to the smaller, as in the CRD benchmark).

    Args:
        model: a kdteach model (declared stages).
        x: (N, 3, H, W) normalised images.
        stages: at least two stage names, in order (e.g. ``FSP().student_features(model)``).
        batch_size: images per forward pass.

    Returns:
        ``{"lower->upper": (N, C_lower, C_upper)}`` per-image matrices on the CPU, float32, in order.
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    names = _fsp_stages(stages, "stages")
    _check_batch_size(batch_size)
    from .losses import fsp_matrix

    out: dict[str, list[torch.Tensor]] = {p: [] for p in _fsp_pairs(names)}
    with _evaluating(model), capture(model, names) as feats:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(_device_of(model)))
            for pair, a, b in zip(out, names[:-1], names[1:]):
                out[pair].append(fsp_matrix(feats[a], feats[b]).float().cpu())
    return {pair: torch.cat(mats) for pair, mats in out.items()}


def fsp_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, stages: Iterable[str],
                 teacher_stages: Iterable[str] | None = None, batch_size: int = 500) -> dict[str, float]:
    """FSP distance to the teacher: per pair of consecutive stages, :func:`kdteach.losses.fsp_loss`
    between the student's and the teacher's FSP matrices, averaged over all images of ``x``
    (Yim et al., CVPR 2017, Eq. 2, in the CRD benchmark's reduction).

    ``fsp_loss`` is the mean over B·C1·C2 entries of (G_s − G_t)², so weighting each batch by its
    size gives the mean over the N images; 0 means identical matrices. The value is the stage-1
    training loss of FSP (with weight 1) measured on held-out images, per pair; sum the values for
    the total loss.

    Args:
        student, teacher: kdteach models on the same device (both run in eval mode, no gradients).
        x: (N, 3, H, W) normalised images.
        stages: the student's stage names, at least two, in order.
        teacher_stages: the teacher's matching stage names (default: the same names as ``stages``).
        batch_size: images per forward pass.

    Returns:
        ``{"lower->upper": mean fsp_loss}``, keyed by the student's stage names, in order.

    Raises:
        ValueError: bad ``x`` or ``batch_size``, fewer than two stages, ``teacher_stages`` of another
            length, or matrices of different shapes (the two networks need equal widths).
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    s_names = _fsp_stages(stages, "stages")
    t_names = s_names if teacher_stages is None else _fsp_stages(teacher_stages, "teacher_stages")
    if len(t_names) != len(s_names):
        raise ValueError(f"teacher_stages must name as many stages as stages ({len(s_names)}), got {t_names!r}")
    _check_batch_size(batch_size)
    if len(x) == 0:
        raise ValueError("x must hold at least one image, got shape (0, ...)")
    from .losses import fsp_loss, fsp_matrix

    pairs = _fsp_pairs(s_names)
    total = {p: 0.0 for p in pairs}
    device = _device_of(student)
    with _evaluating(student, teacher), capture(student, s_names) as fs, capture(teacher, t_names) as ft:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            for k, pair in enumerate(pairs):
                g_s = fsp_matrix(fs[s_names[k]], fs[s_names[k + 1]])
                g_t = fsp_matrix(ft[t_names[k]], ft[t_names[k + 1]])
                total[pair] += fsp_loss([g_s], [g_t]).item() * len(xb)
    return {p: total[p] / len(x) for p in pairs}


def soft_target_kl(student: nn.Module, teacher: nn.Module, x: torch.Tensor, temperature: float,
                   batch_size: int = 500) -> float:
    """Mean KL divergence from the teacher's softened outputs to the student's, over all images of ``x``.

    ``(1/N) Σ_n KL(softmax(z_t,n / T) ‖ softmax(z_s,n / T))`` in nats, the quantity KD minimises
    (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531,
    Sec. 2), *without* the T² factor of the loss: it is :func:`kdteach.losses.kd_loss` divided by T²,
    weighted by batch size so the result is the mean over all N images. 0 when the student's softened
    distribution equals the teacher's on every image; lower is closer.

    Args:
        student, teacher: classifiers returning (B, K) logits, on the same device (both run in eval
            mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        temperature: T > 0 (the kd method's ``temperature``, 4 by default).
        batch_size: images per forward pass.

    Returns:
        The mean KL divergence (float, nats, >= 0).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``temperature`` not > 0, ``batch_size`` not a
            positive int, or logits of different shapes.
    """
    from .losses import kd_loss
    from .losses._validate import check_positive

    t = check_positive(temperature, "temperature")
    total = sum(kd_loss(zs, zt, t).item() / (t * t) * n for zs, zt, n in _paired_logits(student, teacher, x, batch_size))
    return total / len(x)


def dfv_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, stages: Iterable[str],
                 teacher_stages: Iterable[str] | None = None, k: int = 1, batch_size: int = 500) -> float:
    """DFV distance to the teacher: :func:`kdteach.losses.kdsvd_loss` between the student's and the
    teacher's stage features, averaged over all images of ``x`` (Lee, Kim, Song, "Self-supervised
    Knowledge Distillation Using Singular Value Decomposition", ECCV 2018, Sec. 3).

    The distilled feature vectors (DFV) of a stage are its top-k right singular vectors, the
    student's aligned to the teacher's and both scaled by the teacher's normalised singular values;
    the value is Σ over consecutive stage pairs of Σ (G_s − G_t)² / N, with G the RBF-kernel
    correlation of the DFVs of the two stages (the KD-SVD training loss with weight 1, measured on
    held-out images). ``kdsvd_loss`` divides by its batch size, so weighting each batch by its size
    gives the mean over the N images; 0 means identical DFV correlations, lower is closer.

    Args:
        student, teacher: kdteach models on the same device (both run in eval mode, no gradients;
            their modes are restored).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        stages: the student's stage names, at least two, in order (e.g. ``KDSVD().student_features(model)``).
        teacher_stages: the teacher's matching stage names (default: the same names as ``stages``).
        k: teacher singular vectors per stage (the kdsvd method's ``k``, 1 by default).
        batch_size: images per forward pass.

    Returns:
        The mean KD-SVD loss over the images (float, >= 0).

    Raises:
        ValueError: bad ``x``, ``k`` or ``batch_size``, fewer than two stages, ``teacher_stages`` of
            another length, or stages of different channel counts (raised by ``kdsvd_loss``).
    """
    from .losses import kdsvd_loss
    from .losses._validate import check_int_at_least

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    s_names = _stage_list(stages, "stages")
    t_names = s_names if teacher_stages is None else _stage_list(teacher_stages, "teacher_stages")
    if len(s_names) < 2:
        raise ValueError(f"stages must name at least two stages (KD-SVD relates consecutive stages), got {s_names!r}")
    if len(t_names) != len(s_names):
        raise ValueError(f"teacher_stages must name as many stages as stages ({len(s_names)}), got {t_names!r}")
    k = check_int_at_least(k, "k", 1)
    _check_batch_size(batch_size)
    device = _device_of(student)
    total = 0.0
    with _evaluating(student, teacher), capture(student, s_names) as fs, capture(teacher, t_names) as ft:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            total += kdsvd_loss([fs[n] for n in s_names], [ft[n] for n in t_names], k).item() * len(xb)
    return total / len(x)


def prediction_agreement(student: nn.Module, teacher: nn.Module, x: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 agreement: the percentage of images of ``x`` on which the student's predicted class (argmax
    of its logits) equals the teacher's, right or wrong.

    The response-level measure of how much of a teacher's behaviour a student took on, used by the takd
    notebook to ask whether a student distilled through a teacher assistant ends up closer to the big
    teacher or only to the assistant (Mirzadeh et al., "Improved Knowledge Distillation via Teacher
    Assistant", AAAI 2020, Sec. 3: the student fits its own teacher, which the gap can make hard).
    100 when the two always pick the same class; about 100/K for unrelated classifiers over K classes.

    Args:
        student, teacher: classifiers returning (B, K) logits, on the same device (both run in eval
            mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        batch_size: images per forward pass.

    Returns:
        The agreement in percent (float in [0, 100]).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``batch_size`` not a positive int, or logits of
            different shapes.
    """
    same = sum(int((zs.argmax(dim=1) == zt.argmax(dim=1)).sum())
               for zs, zt, _n in _paired_logits(student, teacher, x, batch_size))
    return 100.0 * same / len(x)


def symmetric_kl(net_a: nn.Module, net_b: nn.Module, x: torch.Tensor, temperature: float = 1.0,
                 batch_size: int = 500) -> float:
    """Mean symmetric KL divergence between two networks' softened outputs over all images of ``x``.

    ``(1/N) Σ_n ½ [KL(p_a,n ‖ p_b,n) + KL(p_b,n ‖ p_a,n)]`` in nats, with ``p = softmax(z / T)``:
    how far apart two classifiers' predictive distributions are, whichever is called the teacher.
    The measure of mutual learning (Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018,
    Sec. 3: each network of a cohort minimises KL(p_peer ‖ p_own) towards the others): a pair trained
    with DML should end closer than two networks trained alone from different seeds. Each direction
    is :func:`kdteach.losses.kd_loss` divided by T² (as in :func:`soft_target_kl`), weighted by batch
    size so the result is the mean over all N images; both networks run once per batch. 0 when the
    two distributions are equal on every image; lower is closer.

    Args:
        net_a, net_b: classifiers returning (B, K) logits, on the same device (both run in eval
            mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images (moved to the networks' device batch by batch).
        temperature: T > 0 (DML uses T = 1).
        batch_size: images per forward pass.

    Returns:
        The mean symmetric KL divergence (float, nats, >= 0).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``temperature`` not > 0, ``batch_size`` not a
            positive int, or logits of different shapes.
    """
    from .losses import kd_loss
    from .losses._validate import check_positive

    t = check_positive(temperature, "temperature")
    total = 0.0
    for za, zb, n in _paired_logits(net_a, net_b, x, batch_size, names=("net_a", "net_b")):
        # kd_loss(z_s, z_t, T) = T² KL(p_t ‖ p_s): the first call is KL(p_b ‖ p_a), the second KL(p_a ‖ p_b)
        total += 0.5 * (kd_loss(za, zb, t) + kd_loss(zb, za, t)).item() / (t * t) * n
    return total / len(x)


def exit_divergence(student: nn.Module, extras: nn.ModuleDict, method, x: torch.Tensor, temperature: float,
                    batch_size: int = 500) -> dict[str, dict[str, float]]:
    """How close each shallow exit of a BYOT network is to its deepest classifier, over all images of ``x``.

    For every exit k of :meth:`kdteach.methods.byot.BYOT.heads` (``exit1``, ``exit2``, ...): the mean
    KL divergence ``(1/N) Σ_n KL(softmax(z_C,n / T) ‖ softmax(z_k,n / T))`` in nats, without the T²
    factor (it is :func:`kdteach.losses.kd_loss` divided by T², the quantity BYOT's loss 2 weights by
    α; Zhang et al., "Be Your Own Teacher", ICCV 2019, Sec. 3), and the agreement: the fraction of
    images on which the exit's top-1 class equals the deepest classifier's. z_C (N, K) are the
    student's own logits, z_k (N, K) the exit's. Batches are weighted by their size, so the values
    are means over the N images. Lower KL / higher agreement: the exit is closer to its teacher.

    Args:
        student: a kdteach model (its ``fc`` is the deepest classifier); extras: the method's exits
            (:meth:`~kdteach.methods.byot.BYOT.build_extras`); both on the same device, run in eval
            mode without gradients, their modes restored.
        method: the BYOT method instance (its ``heads`` gives the exits' logits).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        temperature: T > 0 (BYOT's ``temperature``, 3 by default).
        batch_size: images per forward pass.

    Returns:
        ``{"exit1": {"kl": float, "agreement": float}, ...}`` in exit order (agreement in [0, 1]).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``temperature`` not > 0, ``batch_size`` not a
            positive int, or ``method.heads`` giving no ``exit<k>`` head.
    """
    from .losses import kd_loss
    from .losses._validate import check_positive

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    t = check_positive(temperature, "temperature")
    _check_batch_size(batch_size)
    device = _device_of(student)
    kl: dict[str, float] = {}
    agree: dict[str, float] = {}
    with _evaluating(student, extras):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            z_c = student(xb).float()
            exits = {k: v for k, v in method.heads(xb, student, extras).items() if k.startswith("exit")}
            if not exits:
                raise ValueError(f"method.heads gave no exit<k> head (got {sorted(method.heads(xb, student, extras))})")
            top_c = z_c.argmax(1)
            for name, z in exits.items():
                kl[name] = kl.get(name, 0.0) + kd_loss(z.float(), z_c, t).item() / (t * t) * len(xb)
                agree[name] = agree.get(name, 0.0) + (z.argmax(1) == top_c).sum().item()
    return {name: {"kl": kl[name] / len(x), "agreement": agree[name] / len(x)} for name in kl}


