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
- :func:`decoupled_kl`: that KL split into DKD's target-class and non-target-class parts (dkd).
- :func:`dfv_distance`: the KD-SVD distance between two models' distilled feature vectors (kdsvd).
- :func:`prediction_agreement`: top-1 agreement of two models (takd, dafl).
- :func:`symmetric_kl`: symmetric KL between two networks' predictions (dml: peers vs students alone).
- :func:`exit_divergence`: KL from a self-distilled network's deepest classifier to each exit (byot).
- :func:`class_probability_matrix`, :func:`class_relations`, :func:`class_relation_distance`: the
  K×K mean predicted distribution per true class, its wrong-class rows renormalised, and how
  differently two of them spread the wrong-class probability;
  :func:`kd_gradient_norms`: per-image KD and CE gradients against the teacher's confidence
  (understanding_kd).
- :func:`virtual_teacher_kl`: KL from Tf-KD reg's virtual-teacher target to a model's predictions;
  :func:`prediction_entropy`: the mean entropy of a model's predictions (tfkd).
- :func:`hint_residual`: the fraction of a teacher hint layer's variance that the best per-position
  affine map of a student's guided layer leaves unexplained (fitnet).
- :func:`activation_agreement`: per position, the fraction of neurons a student and a teacher stage
  agree on being active or inactive (ab).
- :func:`ofd_distance`: OFD's partial L2 per image between a (connected or best linearly read-out)
  student stage and the teacher's margin-ReLU'd pre-activation (ofd).
- :func:`similarity_distance`: MLKD's batch- and class-level distances (B x B and K x K matrices of
  softened predictions) between two models over an image set (mlkd).
- :func:`review_residual`: per teacher stage, the fraction of its variance that the best per-position
  affine map of the student's same and deeper stages leaves unexplained (reviewkd).
- :func:`relation_distance`: RKD's distance and angle terms between two models' penultimate features,
  averaged over fixed-size batches of an image set (rkd).
- :func:`sp_distance`: SP's loss between the row-normalised batch similarity matrices of a student stage
  and a teacher stage, averaged over fixed-size batches of an image set (sp).

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

__all__ = ["attention_maps", "attention_distance", "map_correlation", "fsp_matrices", "fsp_distance", "soft_target_kl", "decoupled_kl", "dfv_distance", "prediction_agreement", "symmetric_kl", "exit_divergence",
           "class_probability_matrix", "class_relation_distance", "kd_gradient_norms",
           "virtual_teacher_kl", "prediction_entropy", "similarity_distance", "hint_residual",
           "activation_agreement", "pooled_features", "linear_cka", "representation_cka",
           "crd_retrieval",
           "relation_distance", "ofd_distance", "sp_distance"]


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


def decoupled_kl(student: nn.Module, teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                 temperature: float, batch_size: int = 500) -> dict[str, float]:
    """KL from the teacher's softened outputs to the student's, split as DKD splits it, over all images.

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, Sec. 3: with b = [p_t, 1 − p_t] the
    target-vs-rest probabilities and p̂ the distribution among the non-target classes (t = the
    image's label, p = softmax(z / T)), the mean over the N images of

    - ``"tckd"``: KL(b_teacher ‖ b_student), the target-class part;
    - ``"nckd"``: KL(p̂_teacher ‖ p̂_student), the non-target part, which DKD weights by β;
    - ``"kl"``: KL(p_teacher ‖ p_student) = tckd + (1 − p_t,teacher) · nckd image by image (the same
      quantity as :func:`soft_target_kl`);

    in nats, *without* the T² of the losses: :func:`kdteach.losses.dkd_terms` and
    :func:`kdteach.losses.kd_loss` divided by T², weighted by batch size. 0 for a student equal to
    its teacher; lower is closer.

    Args:
        student, teacher: classifiers returning (B, K) logits, on the same device (both run in eval
            mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images (moved to the models' device batch by batch).
        labels: (N,) integer ground-truth labels of ``x`` (the "target" class of each image).
        temperature: T > 0 (the dkd method's ``temperature``, 4 by default).
        batch_size: images per forward pass.

    Returns:
        ``{"tckd": float, "nckd": float, "kl": float}`` (nats, >= 0).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``labels`` not (N,) class indices in [0, K),
            ``temperature`` not > 0, ``batch_size`` not a positive int, or logits of different shapes.
    """
    from .losses import dkd_terms, kd_loss
    from .losses._validate import check_positive

    t = check_positive(temperature, "temperature")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != len(x):
        raise ValueError(f"labels must be a ({len(x)},) tensor of class indices, one per image of x, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    sums = {"tckd": 0.0, "nckd": 0.0, "kl": 0.0}
    start = 0
    for zs, zt, n in _paired_logits(student, teacher, x, batch_size):
        y = labels[start:start + n].to(zs.device)
        start += n
        tckd, nckd = dkd_terms(zs, zt, y, t)
        for key, value in (("tckd", tckd), ("nckd", nckd), ("kl", kd_loss(zs, zt, t))):
            sums[key] += value.item() / (t * t) * n
    return {key: value / len(x) for key, value in sums.items()}


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




def _check_class_labels(labels: object, n: int, k: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool \
            or labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be a ({n},) integer tensor of class indices, one per row, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}"
                         f"{' dtype ' + str(labels.dtype) if isinstance(labels, torch.Tensor) else ''}")
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(f"labels must hold class indices in [0, {k}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.long()


def class_probability_matrix(probs: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
                             ) -> torch.Tensor:
    """The K×K class-similarity matrix of a set of predictions: row i is the mean predicted
    distribution over the images whose true class is i.

    With a teacher's softened outputs this is the "dark knowledge" matrix of the kd notebook: its
    off-diagonal entries say which classes the teacher finds alike, the domain knowledge that Tang
    et al. ("Understanding and Improving Knowledge Distillation", arXiv:2002.03532, 2020) call the
    second level of a teacher's knowledge. Compare two matrices with :func:`class_relation_distance`.

    Args:
        probs: (N, K) predicted distributions (e.g. ``softened_probs(logits, T)``), on any device.
        labels: (N,) integer true classes in [0, K).
        num_classes: K (default ``probs.shape[1]``; must equal it).

    Returns:
        (K, K) float32 tensor on the CPU; each row of a class present in ``labels`` sums to the mean
        row sum of ``probs`` (1 for distributions); rows of absent classes are 0.

    Raises:
        ValueError: ``probs`` not (N, K), ``labels`` not (N,) class indices, ``num_classes`` not K.
    """
    check_tensor(probs, "probs", 2, "(N, K)")
    n, k = probs.shape
    if num_classes is not None and num_classes != k:
        raise ValueError(f"num_classes must equal probs.shape[1] = {k}, got {num_classes!r}")
    y = _check_class_labels(labels, n, k).cpu()
    p = probs.detach().float().cpu()
    counts = torch.bincount(y, minlength=k).clamp_min(1).float()
    return torch.zeros(k, k).index_add_(0, y, p) / counts[:, None]


def class_relations(matrix: torch.Tensor, name: str = "matrix") -> torch.Tensor:
    """The relation rows of a class-similarity matrix: row i of ``matrix`` without its diagonal
    entry, renormalised to sum to 1, i.e. among the wrong classes, where the probability of class-i
    images goes (the diagonal of the result is 0).

    It drops how much probability the true class gets (confidence, temperature, smoothing) and keeps
    which classes are alike, the domain knowledge of Tang et al. ("Understanding and Improving
    Knowledge Distillation", arXiv:2002.03532, 2020, second level). Uniform relations are
    1/(K − 1) off the diagonal.

    Args:
        matrix: (K, K) non-negative matrix, K >= 3 (e.g. :func:`class_probability_matrix`), every row
            with positive off-diagonal mass.
        name: the argument's name in error messages.

    Returns:
        (K, K) float64 CPU tensor, zero diagonal, each row summing to 1.

    Raises:
        ValueError: not (K, K) with K >= 3, negative entries, or a row whose off-diagonal entries are
            all 0 (its relations are undefined).
    """
    check_tensor(matrix, name, 2, "(K, K)")
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 3:
        raise ValueError(f"{name} must be a square (K, K) matrix with K >= 3, got shape {tuple(matrix.shape)}")
    m = matrix.detach().double().cpu()
    off = m * (1 - torch.eye(m.shape[0], dtype=m.dtype))
    mass = off.sum(dim=1, keepdim=True)
    if (off < 0).any() or (mass <= 0).any():
        raise ValueError(f"{name} must be non-negative with positive off-diagonal mass in every row "
                         f"(got row masses {[round(v, 4) for v in mass.squeeze(1).tolist()]})")
    return off / mass


def class_relation_distance(matrix: torch.Tensor, reference: torch.Tensor) -> float:
    """How differently two class-similarity matrices spread their wrong-class probability: the mean
    over classes i of the total-variation distance ½ Σ_j |r_ij − r'_ij| between their relation rows
    (:func:`class_relations`).

    It ignores how much probability the true class gets and compares only which classes are alike
    (Tang et al., arXiv:2002.03532, 2020, second level). The value lies in [0, 1]; 0 for identical
    relations; lower is closer.

    Args:
        matrix, reference: (K, K) non-negative matrices of the same shape, K >= 3, every row with
            positive off-diagonal mass (e.g. two :func:`class_probability_matrix` results).

    Returns:
        The mean total-variation distance (float in [0, 1]).

    Raises:
        ValueError: as :func:`class_relations`, or matrices of different shapes.
    """
    a, b = class_relations(matrix, "matrix"), class_relations(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"matrix and reference must have the same shape, got {tuple(matrix.shape)} and "
                         f"{tuple(reference.shape)}")
    return float(0.5 * (a - b).abs().sum(dim=1).mean())


def kd_gradient_norms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, target_probs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image gradients of the KD term and of the cross-entropy with respect to the student's
    logits, next to the teacher's confidence: Tang et al.'s gradient rescaling by instance difficulty
    ("Understanding and Improving Knowledge Distillation", arXiv:2002.03532, 2020, third level).

    For image i with label y, p_s = softmax(z_s / T) and the target q = softmax(z_t / T) (or
    ``target_probs``), the KD term T² · KL(q ‖ p_s) has gradient T · (p_s − q) with respect to
    z_s, and the cross-entropy CE(softmax(z_s), y) has gradient softmax(z_s) − onehot(y). These are
    the per-image gradients (the batch losses average them, dividing by B). Closed forms, checked
    against autograd in the tests and the notebook.

    Args:
        student_logits: (N, K) student logits z_s.
        teacher_logits: (N, K) teacher logits z_t (its confidence is measured at T = 1).
        labels: (N,) integer true classes in [0, K).
        temperature: T > 0 of the KD term.
        target_probs: optional (N, K) distributions q replacing softmax(z_t / T) as the KD target
            (a smoothed label, a permuted teacher); the confidence stays the teacher's.

    Returns:
        dict of (N,) float32 CPU tensors: ``"teacher_confidence"`` softmax(z_t)(y) at T = 1;
        ``"kd"`` and ``"ce"``, the L2 norms of the two gradients; ``"kd_target"`` T · (p_s(y) − q(y))
        and ``"ce_target"`` softmax(z_s)(y) − 1, their components on the true class's logit.

    Raises:
        ValueError: logits not (N, K) of the same shape, ``labels`` not (N,) class indices,
            ``temperature`` not > 0, ``target_probs`` of another shape.
    """
    from .losses import softened_probs
    from .losses._validate import check_positive, check_same_shape

    check_tensor(student_logits, "student_logits", 2, "(N, K)")
    check_tensor(teacher_logits, "teacher_logits", 2, "(N, K)")
    check_same_shape(student_logits, "student_logits", teacher_logits, "teacher_logits")
    t = check_positive(temperature, "temperature")
    n, k = student_logits.shape
    y = _check_class_labels(labels, n, k).to(student_logits.device)[:, None]
    with torch.no_grad():
        z_s, z_t = student_logits.detach().float(), teacher_logits.detach().float()
        if target_probs is None:
            q = softened_probs(z_t, t)
        else:
            check_tensor(target_probs, "target_probs", 2, "(N, K)")
            check_same_shape(student_logits, "student_logits", target_probs, "target_probs")
            q = target_probs.detach().float()
        g_kd = t * (softened_probs(z_s, t) - q)
        p1 = softened_probs(z_s, 1.0)
        g_ce = p1 - torch.zeros_like(p1).scatter_(1, y, 1.0)
        out = {"teacher_confidence": softened_probs(z_t, 1.0).gather(1, y).squeeze(1),
               "kd": g_kd.norm(dim=1), "ce": g_ce.norm(dim=1),
               "kd_target": g_kd.gather(1, y).squeeze(1), "ce_target": g_ce.gather(1, y).squeeze(1)}
    return {key: value.cpu() for key, value in out.items()}


def _model_logits(model: nn.Module, x: torch.Tensor, batch_size: int):
    """Yield ``(z, i, n)``: ``model``'s (n, K) logits on the batch ``x[i:i + n]`` (moved to its device),
    in eval mode without gradients; its mode is restored afterwards."""
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    device = _device_of(model)
    with _evaluating(model):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            yield model(xb), i, len(xb)


def virtual_teacher_kl(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, correct_prob: float = 0.99,
                       temperature: float = 20.0, batch_size: int = 500) -> float:
    """Mean KL divergence from Tf-KD reg's virtual-teacher target to a model's predictions over ``x``.

    ``(1/N) Σ_n KL(softmax(p^d_n / T) ‖ softmax(z_n))`` in nats, with p^d the manually designed
    teacher of Yuan et al., "Revisiting Knowledge Distillation via Label Smoothing Regularization",
    CVPR 2020, Sec. 5 (``correct_prob`` on the image's label, the rest spread evenly) softened as the
    authors' code does (:func:`kdteach.losses.virtual_teacher_target`): the quantity
    :func:`kdteach.losses.tfkd_reg_loss` averages over a batch, weighted by batch size so the result
    is the mean over all N images. Lower: the model's predictions are closer to that (nearly
    uniform) target, i.e. less confident. The tfkd notebook's mechanism check.

    Args:
        model: a classifier returning (B, K) logits (run in eval mode, no gradients; mode restored).
        x: (N, 3, H, W) normalised images (moved to the model's device batch by batch).
        labels: (N,) integer labels in [0, K) of ``x``.
        correct_prob: a in (0, 1] (the code's 0.99); temperature: T > 0 of the target.
        batch_size: images per forward pass.

    Returns:
        The mean KL divergence (float, nats, >= 0).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``labels`` not N class indices in [0, K),
            ``correct_prob`` outside (0, 1], ``temperature`` not > 0, ``batch_size`` not a positive int.
    """
    from .losses import tfkd_reg_loss

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != len(x):
        raise ValueError(f"labels must be a ({len(x)},) tensor of class indices, one per image of x, got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    total = 0.0
    for z, i, n in _model_logits(model, x, batch_size):
        total += tfkd_reg_loss(z, labels[i:i + n].to(z.device), correct_prob, temperature).item() * n
    return total / len(x)


def prediction_entropy(model: nn.Module, x: torch.Tensor, temperature: float = 1.0, batch_size: int = 500) -> float:
    """Mean Shannon entropy, in nats, of a model's predictive distribution softmax(z / T) over ``x``.

    ``(1/N) Σ_n H(softmax(z_n / T))``, between 0 (one-hot predictions) and log K (uniform). Label
    smoothing and distillation from soft targets make a network less confident, which raises it
    (Müller, Kornblith, Hinton, "When Does Label Smoothing Help?", NeurIPS 2019; Yuan et al.,
    CVPR 2020, Sec. 3: KD is a learned label smoothing). The tfkd notebook compares students trained
    alone, with Tf-KD self and with Tf-KD reg by it.

    Args:
        model: a classifier returning (B, K) logits (run in eval mode, no gradients; mode restored).
        x: (N, 3, H, W) normalised images (moved to the model's device batch by batch).
        temperature: T > 0 (1: the model's own predictions).
        batch_size: images per forward pass.

    Returns:
        The mean entropy (float, nats, in [0, log K]).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or empty, ``temperature`` not > 0, ``batch_size`` not a
            positive int.
    """
    from .losses import softened_probs
    from .losses._validate import check_positive

    t = check_positive(temperature, "temperature")
    total = 0.0
    for z, _i, n in _model_logits(model, x, batch_size):
        p = softened_probs(z, t)
        total += float(-(p * p.clamp_min(1e-30).log()).sum(dim=1).sum())
    return total / len(x)


def similarity_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, temperature: float = 4.0,
                        batch_size: int = 128) -> dict[str, float]:
    """MLKD's batch- and class-level distances between two models, averaged over batches of ``x``.

    Jin, Wang, Lin, "Multi-level Logit Distillation", CVPR 2023: with P = softmax(z / T) (B, K) the
    softened predictions of a batch, the batch level compares the B x B matrices P Pᵀ and the class
    level the K x K matrices PᵀP of student and teacher (:func:`kdteach.losses.mlkd_batch_loss`,
    :func:`kdteach.losses.mlkd_class_loss`, unweighted, at one temperature). ``x`` is cut into
    consecutive batches of ``batch_size`` images in its order; a last, smaller batch is left out,
    because both quantities grow with B and every batch should count alike. The result is the mean
    over the batches. 0 when the student's softened predictions equal the teacher's; lower is closer.

    Args:
        student, teacher: classifiers returning (B, K) logits, on the same device (both run in eval
            mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images, N >= ``batch_size`` (moved to the models' device batch by batch).
        temperature: T > 0 (MLKD's base temperature, 4).
        batch_size: B, images per batch (use the training batch size to measure what the loss saw).

    Returns:
        ``{"batch": float, "class": float}``, both >= 0.

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or with fewer than ``batch_size`` images, ``temperature``
            not > 0, ``batch_size`` not a positive int, or logits of different shapes.
    """
    from .losses import mlkd_batch_loss, mlkd_class_loss
    from .losses._validate import check_positive

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    t = check_positive(temperature, "temperature")
    _check_batch_size(batch_size)
    full = (len(x) // batch_size) * batch_size
    if full == 0:
        raise ValueError(f"x must hold at least batch_size = {batch_size} images, got shape {tuple(x.shape)}")
    sums = {"batch": 0.0, "class": 0.0}
    for zs, zt, _n in _paired_logits(student, teacher, x[:full], batch_size):
        sums["batch"] += mlkd_batch_loss(zs, zt, t).item()
        sums["class"] += mlkd_class_loss(zs, zt, t).item()
    return {k: v / (full // batch_size) for k, v in sums.items()}


def hint_residual(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stage: str, teacher_stage: str,
                  batch_size: int = 500) -> float:
    """How much of the teacher's hint the student's guided layer fails to carry, with no trained regressor
    (FitNets, Romero et al., ICLR 2015: the guided layer v_g should predict the hint u_h).

    Over all images of ``x`` and all positions, fits the least-squares affine map from the guided
    features (C_g channels) to the hint features (C_h channels), position by position (a 1x1 conv with
    bias, the FitNets regressor of equal-size maps without its BN and ReLU), and returns the fraction of
    the hint's variance it leaves unexplained, SSE / SST = 1 − R² (0: the hint is an affine function of
    the guided features; 1: nothing of it is). The map is fitted and scored on the same images (C_g + 1
    parameters per hint channel against N·h·w positions, so the optimism is negligible). If the maps
    differ in size the larger is average-pooled to the smaller first. The same measure applies to any
    student, so a student trained alone and a FitNets student (whose own regressor is not used) compare
    on equal terms.

    Args:
        student, teacher: kdteach models on the same device (both run in eval mode, no gradients).
        x: (N, 3, H, W) normalised images.
        student_stage: the guided stage's name; teacher_stage: the hint stage's name.
        batch_size: images per forward pass.

    Returns:
        The unexplained fraction of the hint's variance, in [0, 1] (float).

    Raises:
        ValueError: bad ``x`` or ``batch_size``, or a hint with no variance over ``x``.
    """
    from .losses.feature import _pool_to_common

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    device = _device_of(student)
    gram = cross = None
    t_sq, t_sum, n = 0.0, None, 0
    with _evaluating(student, teacher), capture(student, [student_stage]) as fs, \
            capture(teacher, [teacher_stage]) as ft:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            g, h = _pool_to_common(fs[student_stage].double(), ft[teacher_stage].double())
            a = torch.cat([g.transpose(0, 1).flatten(1), torch.ones(1, g.numel() // g.shape[1], dtype=g.dtype,
                                                                     device=g.device)]).T   # (P, C_g + 1)
            b = h.transpose(0, 1).flatten(1).T                                                 # (P, C_h)
            gram = a.T @ a if gram is None else gram + a.T @ a
            cross = a.T @ b if cross is None else cross + a.T @ b
            t_sq += float(b.square().sum())
            t_sum = b.sum(0) if t_sum is None else t_sum + b.sum(0)
            n += b.shape[0]
    w = torch.linalg.pinv(gram) @ cross
    sse = t_sq - 2.0 * float((w * cross).sum()) + float((w * (gram @ w)).sum())
    sst = t_sq - float(t_sum.square().sum()) / n
    if not sst > 0:
        raise ValueError(f"the teacher's hint stage {teacher_stage!r} has no variance over x; hint_residual is undefined")
    return min(1.0, max(0.0, sse / sst))


def _connected_preacts(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stage: str, teacher_stage: str,
                       connector: nn.Module | None, batch_size: int, method: str,
                       channels_may_differ: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per batch of ``x``: (student pre-activation after ``connector``, teacher pre-activation), eval mode, no
    gradients (AB, OFD). Without a connector the shapes must agree (``channels_may_differ``: all but C).

    Raises:
        ValueError: bad ``x`` or ``batch_size``, or shapes that differ (the message names both stages and shapes).
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    device = _device_of(student)
    modules = (student, teacher) + ((connector,) if connector is not None else ())
    with _evaluating(*modules), capture(student, [student_stage], preact=True) as fs, \
            capture(teacher, [teacher_stage], preact=True) as ft:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            s, t = fs[student_stage], ft[teacher_stage]
            if connector is not None:
                s = connector(s)
            loose = channels_may_differ and connector is None
            same = (s.shape[0], *s.shape[2:]) == (t.shape[0], *t.shape[2:]) if loose else s.shape == t.shape
            if not same:
                raise ValueError(f"the student's stage {student_stage!r} gives pre-activations of shape "
                                 f"{tuple(s.shape)}{' after the connector' if connector is not None else ''} and the "
                                 f"teacher's stage {teacher_stage!r} {tuple(t.shape)}; they must have the same "
                                 f"{'map size' if loose else 'shape'} (pass the {method} run's connector for this pair)")
            yield s, t


def activation_agreement(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stage: str,
                         teacher_stage: str, connector: nn.Module | None = None, batch_size: int = 500
                         ) -> torch.Tensor:
    """The teacher/student activation agreement map of one stage pair (AB, Heo et al., AAAI 2019).

    A ReLU neuron is *active* at a position where its pre-activation is > 0. For each spatial position
    (h, w), the fraction, over all images of ``x`` and all C neurons (channels), where the student's and
    the teacher's neuron are both active or both inactive, i.e. 1 − the rate of the exclusive-or of
    their activations (the quantity AB's loss is a surrogate for; the authors' code prints its mean as
    "activation similarity"). 0.5 is what two unrelated networks with balanced activations score.
    Features are captured before the activation (``preact=True``), as AB trains them.

    Args:
        student, teacher: kdteach models on the same device (run in eval mode, no gradients; modes restored).
        x: (N, 3, H, W) normalised images.
        student_stage, teacher_stage: stage names (e.g. ``"layer2"``).
        connector: optional module mapping the student's (N, C_s, h_s, w_s) pre-activation to the teacher's
            shape (an AB run's ``extras["connector"][i]``; run in eval mode); None compares them as they
            are, which needs equal shapes.
        batch_size: images per forward pass.

    Returns:
        (h, w) float32 map on the CPU with values in [0, 1]; its mean is the overall agreement.

    Raises:
        ValueError: bad ``x`` or ``batch_size``, or the (connected) student feature and the teacher's
            differ in shape (the message names both stages and shapes).
    """
    same, count = None, 0
    for s, t in _connected_preacts(student, teacher, x, student_stage, teacher_stage, connector, batch_size, "AB"):
        agree = ((s > 0) == (t > 0)).double().sum(dim=(0, 1))
        same = agree if same is None else same + agree
        count += s.shape[0] * s.shape[1]
    return (same / count).float().cpu()


def pooled_features(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The penultimate features ``"pool"`` (the input of ``fc``) of every image: (N, 3, H, W) -> (N, D), float32
    on the CPU (eval mode, no gradients). CRD and RKD distil these vectors."""
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    device = _device_of(model)
    out = []
    with _evaluating(model), capture(model, ["pool"]) as f:
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(device))
            out.append(f["pool"].float().cpu())
    return torch.cat(out)


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear centred kernel alignment between two representations of the same N examples, in [0, 1].

    Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited", ICML 2019,
    Eq. 5: with A (N, D_a) and B (N, D_b) centred per column, CKA = ‖BᵀA‖²_F / (‖AᵀA‖_F ‖BᵀB‖_F). 1 when one
    representation is a rotation and scaling of the other, near 0 for unrelated ones; the dimensions may
    differ. Computed in float64.

    Raises:
        ValueError: not (N, D) with the same N ≥ 2, or a representation with no variance.
    """
    check_tensor(a, "a", 2, "(N, D_a)")
    check_tensor(b, "b", 2, "(N, D_b)")
    if a.shape[0] != b.shape[0] or a.shape[0] < 2:
        raise ValueError(f"a and b must hold the same N >= 2 examples, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    a, b = a - a.mean(0), b - b.mean(0)
    den = torch.linalg.matrix_norm(a.T @ a) * torch.linalg.matrix_norm(b.T @ b)
    if not den > 0:
        raise ValueError("linear_cka is undefined for a representation with no variance")
    return float(torch.linalg.matrix_norm(b.T @ a).square() / den)


def representation_cka(student: nn.Module, teacher: nn.Module, x: torch.Tensor, batch_size: int = 500) -> float:
    """Linear CKA (:func:`linear_cka`) between the student's and the teacher's penultimate features on ``x``:
    how much of the teacher's representation structure the student's holds, with no trained head (so a
    student trained alone and a CRD student compare on equal terms). CRD (Tian et al., ICLR 2020) maximises
    a bound on the mutual information between these representations (through its embedding heads); CKA
    is a head-free, rotation- and scale-invariant reading of how aligned they are. Higher = closer."""
    return linear_cka(pooled_features(student, x, batch_size), pooled_features(teacher, x, batch_size))


def relation_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, batch_size: int = 128,
                      distance_weight: float = 25.0, angle_weight: float = 50.0) -> dict[str, float]:
    """How differently two networks arrange a batch of test images: RKD's two terms between the student's
    and the teacher's penultimate (``"pool"``, (B, D)) features, averaged over batches of ``x``
    (Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019, Eqs. 5 and 7).

    ``x`` is cut into consecutive batches of ``batch_size`` images (the training batch, 128 at every
    budget, by default); on each, :func:`kdteach.losses.rkd_terms` gives the smooth-L1 distance between
    the two networks' mean-normalised pairwise-distance matrices and between their triplet-angle
    cosines. The relations depend on which images share a batch, so only full batches count (a last,
    smaller batch is dropped, unless ``x`` holds fewer than ``batch_size`` images: then it is one batch);
    each batch weighs the same. ``x`` should be in a fixed, class-mixed order (the test split is).
    The dimensions of the two feature spaces may differ; 0 means the same relations, lower is closer.

    Args:
        student, teacher: kdteach models (declared ``"pool"`` features) on the same device (both run
            in eval mode, no gradients; their modes are restored).
        x: (N, 3, H, W) normalised images, N >= 2.
        batch_size: images per relation batch (and per forward pass), >= 2.
        distance_weight, angle_weight: λ_D and λ_A of ``"loss"`` (the rkd method's 25 and 50).

    Returns:
        ``{"distance": mean distance term, "angle": mean angle term,
        "loss": distance_weight · distance + angle_weight · angle (the RKD term of training),
        "batches": number of batches}``.

    Raises:
        ValueError: ``x`` not (N, 3, H, W) with N >= 2, or ``batch_size`` not an int >= 2.
    """
    from .losses import rkd_terms

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    if batch_size < 2 or len(x) < 2:
        raise ValueError(f"relation_distance compares pairs: batch_size and the number of images in x must be >= 2, "
                         f"got batch_size={batch_size} and x of shape {tuple(x.shape)}")
    n_full = len(x) // batch_size
    starts = range(0, n_full * batch_size, batch_size) if n_full else [0]
    device = _device_of(student)
    distance = angle = 0.0
    with _evaluating(student, teacher), capture(student, ["pool"]) as fs, capture(teacher, ["pool"]) as ft:
        for i in starts:
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            d, a = rkd_terms(fs["pool"], ft["pool"])
            distance, angle = distance + d.item(), angle + a.item()
    distance, angle = distance / len(starts), angle / len(starts)
    return {"distance": distance, "angle": angle, "loss": distance_weight * distance + angle_weight * angle,
            "batches": len(starts)}


def ofd_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stage: str, teacher_stage: str,
                 margin: torch.Tensor, connector: nn.Module | None = None, batch_size: int = 500) -> float:
    """OFD's partial L2 per image between a student stage and the teacher's (Heo et al., ICCV 2019).

    The value of :func:`kdteach.losses.ofd_loss` over all images of ``x`` (sum over entries / N): the
    student's pre-ReLU feature, mapped to the teacher's shape, against max(t, margin) of the teacher's,
    skipping positions where the student is below a negative target. The map is ``connector`` (an OFD
    run's trained ``extras["connector"][i]``) or, when None, the **best linear read-out**: the per-position
    affine map (a 1x1 conv with bias) fitted by least squares over ``x`` from the student's pre-activation
    to the teacher's margin-ReLU'd target, so a student trained without a connector (alone, KD) and an OFD
    student compare on equal terms. Fitted and scored on the same images (C_s + 1 parameters per teacher
    channel against N·h·w positions).

    Args:
        student, teacher: kdteach models on the same device (run in eval mode, no gradients; modes restored).
        x: (N, 3, H, W) normalised images.
        student_stage, teacher_stage: stage names; margin: (C_t,) the teacher stage's margins
            (:func:`kdteach.losses.ofd_margin`).
        connector: optional module (B, C_s, h_s, w_s) -> (B, C_t, h_t, w_t) (eval mode); None fits the read-out,
            which needs maps of equal size.
        batch_size: images per forward pass.

    Returns:
        The partial L2 per image (float, >= 0).

    Raises:
        ValueError: bad ``x`` or ``batch_size``, or the (connected) student map and the teacher's differ in
            shape (the message names both stages and shapes).
    """
    from .losses import ofd_loss

    pairs = [(s.double(), t.double()) for s, t in _connected_preacts(
        student, teacher, x, student_stage, teacher_stage, connector, batch_size, "OFD", channels_may_differ=True)]
    m = margin.detach().to(device=pairs[0][1].device, dtype=torch.float64)
    if connector is None:
        gram = cross = None
        for s, t in pairs:
            a = torch.cat([s.transpose(0, 1).flatten(1), s.new_ones(1, s.numel() // s.shape[1])]).T   # (P, C_s + 1)
            b = torch.maximum(t, m.view(1, -1, 1, 1)).transpose(0, 1).flatten(1).T                     # (P, C_t)
            gram = a.T @ a if gram is None else gram + a.T @ a
            cross = a.T @ b if cross is None else cross + a.T @ b
        w = torch.linalg.pinv(gram) @ cross                                                            # (C_s + 1, C_t)
        pairs = [(torch.einsum("bchw,cd->bdhw", s, w[:-1]) + w[-1].view(1, -1, 1, 1), t) for s, t in pairs]
    total = sum(ofd_loss(s, t, m).item() * s.shape[0] for s, t in pairs)
    return total / len(x)



def crd_retrieval(student: nn.Module, teacher: nn.Module, extras: nn.ModuleDict, x: torch.Tensor,
                  batch_size: int = 500) -> float:
    """Test retrieval through a CRD run's own critic (Tian et al., ICLR 2020): the percentage of the images
    of ``x`` whose student embedding v_s = normalise(embed_s(pool_s)) is closest (cosine) to the teacher
    embedding v_t = normalise(embed_t(pool_t)) of the *same* image among the teacher embeddings of all of
    ``x`` (chance: 100 / len(x)). This is what CRD's objective trains: the positive pair scored above the
    negatives.

    Args:
        student, teacher: the CRD run's student and its teacher; extras: the run's extras (``embed_s``,
            ``embed_t``; :class:`kdteach.methods.crd.CRD`). x: (N, 3, H, W) normalised images.

    Returns:
        Top-1 retrieval, percent.
    """
    import copy

    for key in ("embed_s", "embed_t"):
        if not isinstance(extras, nn.ModuleDict) or key not in extras:
            raise ValueError(f"extras must be a CRD run's extras with {key!r} (RunResult.extras of method 'crd')")
    with torch.no_grad():
        heads = [copy.deepcopy(extras[k]).cpu().float().eval() for k in ("embed_s", "embed_t")]   # the run's stay
        v_s = nn.functional.normalize(heads[0](pooled_features(student, x, batch_size)), dim=1)
        v_t = nn.functional.normalize(heads[1](pooled_features(teacher, x, batch_size)), dim=1)
        hits = (v_s @ v_t.T).argmax(1) == torch.arange(len(v_s))
    return 100.0 * float(hits.double().mean())


def review_residual(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stages: Sequence[str],
                    teacher_stages: Sequence[str], preact: bool = True, batch_size: int = 500) -> list[float]:
    """How much of each teacher stage the student's same and *deeper* stages fail to carry, with no trained
    ABF (ReviewKD, Chen et al., CVPR 2021: a teacher stage is reviewed from the student's stage of the
    same depth fused with all deeper ones).

    For teacher stage i (B, C_t, H_i, W_i), the student's stages i, i+1, ..., n (shallow to deep) are
    resized to H_i x W_i (nearest, as the review path's upsampling; average pooling where a student map
    is larger) and concatenated along the channels; over all images of ``x`` and positions, the
    least-squares affine map from that concatenation to the teacher's C_t channels is fitted (a 1x1
    conv with bias, the linear part of an ABF without its attention) and the fraction of the teacher
    stage's variance it leaves unexplained, SSE / SST = 1 − R², is returned, one value per teacher
    stage. Like :func:`hint_residual`, it applies to any student, so a student trained alone and a
    ReviewKD student (whose own ABFs are not used) compare on equal terms.

    Args:
        student, teacher: kdteach models on the same device (eval mode, no gradients).
        x: (N, 3, H, W) normalised images.
        student_stages, teacher_stages: the paired stage names, shallow to deep, the same length.
        preact: capture the stages before their activation (the method's ``preact``).
        batch_size: images per forward pass.

    Returns:
        Per teacher stage, the unexplained fraction in [0, 1] (floats, shallow to deep).

    Raises:
        ValueError: bad ``x`` or ``batch_size``, stage lists of other lengths, or a stage with no variance.
    """
    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    s_names, t_names = list(student_stages), list(teacher_stages)
    if not s_names or len(s_names) != len(t_names):
        raise ValueError(f"student_stages and teacher_stages must be non-empty lists of the same length, got "
                         f"{s_names} and {t_names}")
    device = _device_of(student)
    n_levels = len(t_names)
    gram, cross = [None] * n_levels, [None] * n_levels
    t_sq, t_sum, count = [0.0] * n_levels, [None] * n_levels, [0] * n_levels
    with _evaluating(student, teacher), capture(student, s_names, preact=preact) as fs, \
            capture(teacher, t_names, preact=preact) as ft:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            student(xb)
            teacher(xb)
            for i, tn in enumerate(t_names):
                t = ft[tn].double()
                size = tuple(t.shape[-2:])
                parts = []
                for sn in s_names[i:]:
                    s = fs[sn].double()
                    s = (F.adaptive_avg_pool2d(s, size) if s.shape[-1] > size[-1]
                         else F.interpolate(s, size=size, mode="nearest"))
                    parts.append(s)
                g = torch.cat(parts, dim=1)
                a = torch.cat([g.transpose(0, 1).flatten(1),
                               torch.ones(1, g.numel() // g.shape[1], dtype=g.dtype, device=g.device)]).T
                b = t.transpose(0, 1).flatten(1).T
                gram[i] = a.T @ a if gram[i] is None else gram[i] + a.T @ a
                cross[i] = a.T @ b if cross[i] is None else cross[i] + a.T @ b
                t_sq[i] += float(b.square().sum())
                t_sum[i] = b.sum(0) if t_sum[i] is None else t_sum[i] + b.sum(0)
                count[i] += b.shape[0]
    out = []
    for i, tn in enumerate(t_names):
        w = torch.linalg.pinv(gram[i]) @ cross[i]
        sse = t_sq[i] - 2.0 * float((w * cross[i]).sum()) + float((w * (gram[i] @ w)).sum())
        sst = t_sq[i] - float(t_sum[i].square().sum()) / count[i]
        if not sst > 0:
            raise ValueError(f"the teacher's stage {tn!r} has no variance over x; review_residual is undefined")
        out.append(min(1.0, max(0.0, sse / sst)))
    return out


def sp_distance(student: nn.Module, teacher: nn.Module, x: torch.Tensor, student_stage: str, teacher_stage: str,
                batch_size: int = 128) -> float:
    """How differently two networks find the images of a batch similar: SP's loss between a student stage
    and a teacher stage, averaged over batches of ``x`` (Tung & Mori, "Similarity-Preserving Knowledge
    Distillation", ICCV 2019, Eq. 3).

    ``x`` is cut into consecutive batches of ``batch_size`` images (the training batch by default, 128
    at ``ci``); on each, :func:`kdteach.losses.sp_loss` compares the two B x B row-normalised similarity
    matrices of the flattened stage outputs. The loss shrinks as B grows, so only full batches count (a
    last, smaller batch is dropped); each weighs the same. ``x`` should be in a fixed, class-mixed order
    (the test split is). Channel counts and map sizes may differ; 0 means the same similarities, lower is
    closer.

    Args:
        student, teacher: kdteach models on the same device (both run in eval mode, no gradients; their
            modes are restored).
        x: (N, 3, H, W) normalised images, N >= ``batch_size``.
        student_stage, teacher_stage: stage names (the sp method's: each model's deepest stage).
        batch_size: B, images per batch, >= 2.

    Returns:
        The mean of ``sp_loss`` over the full batches (float, >= 0; no weight β).

    Raises:
        ValueError: ``x`` not (N, 3, H, W) or with fewer than ``batch_size`` images, or ``batch_size`` not
            an int >= 2.
    """
    from .losses import sp_loss

    check_tensor(x, "x", 4, "(N, 3, H, W)")
    _check_batch_size(batch_size)
    if batch_size < 2:
        raise ValueError(f"sp_distance compares pairs of images: batch_size must be >= 2, got {batch_size}")
    n_full = len(x) // batch_size
    if n_full == 0:
        raise ValueError(f"x must hold at least batch_size = {batch_size} images, got shape {tuple(x.shape)}")
    device = _device_of(student)
    total = 0.0
    with _evaluating(student, teacher), capture(student, [student_stage]) as fs, \
            capture(teacher, [teacher_stage]) as ft:
        for i in range(0, n_full * batch_size, batch_size):
            xb = x[i:i + batch_size].to(device)
            student(xb)
            teacher(xb)
            total += sp_loss(fs[student_stage], ft[teacher_stage]).item()
    return total / n_full
