"""MLKD: Jin, Wang, Lin, "Multi-level Logit Distillation", CVPR 2023
(https://openaccess.thecvf.com/content/CVPR2023/html/Jin_Multi-Level_Logit_Distillation_CVPR_2023_paper.html;
code: https://github.com/Jin-Ying/Multi-Level-Logit-Distillation).

The student's softened predictions P = softmax(z / T) (B, K) are aligned with the teacher's at three
levels: each image (instance: KD's KL, :func:`~kdteach.losses.kd_loss`), the B x B matrix P Pᵀ of
image-to-image similarities (batch: :func:`~kdteach.losses.mlkd_batch_loss`) and the K x K matrix PᵀP
of class co-occurrences (class: :func:`~kdteach.losses.mlkd_class_loss`), each at five temperatures
("prediction augmentation"), on a weakly and a strongly augmented view of every batch.

What this module reproduces is the authors' ``KD_ours.forward_train``
(``mdistiller/distillers/KD_ours.py``) with its defaults (``mdistiller/engine/cfg.py``:
``KD.TEMPERATURE`` 4, ``KD.LOSS.CE_WEIGHT`` 0.1, ``KD.LOSS.KD_WEIGHT`` 0.9; the configs in
``configs/cifar100/ours/`` do not override them). With w = weak view, s = strong view,
τ ∈ {T, 3, 5, 2, 6} (T = ``temperature``), α_CE = ``ce_weight``, α = ``kd_weight``:

* ``ce``              = α_CE · [CE(z_s^w, y) + CE(z_s^s, y)]
* ``instance_weak``   = α · m_b · Σ_τ KD(w, τ)
* ``instance_strong`` = α · [KD(s, T) + KD(s, 3) + KD(s, 5) + KD(w, 2) + KD(w, 6)]: the authors'
  "strong" sum takes its last two terms from the *weak* view, as their code is written; kept.
* ``batch``           = β_b · α · m_b · Σ_τ BC(w, τ),   ``class`` = β_c · α · m_c · Σ_τ CC(w, τ), with
  β_b = ``batch_weight`` and β_c = ``class_weight`` both 1 by default (the authors weight every level
  by ``KD_WEIGHT``)

KD is :func:`kd_loss` (T² · batch-mean KL), BC :func:`mlkd_batch_loss`, CC :func:`mlkd_class_loss`.
The code also computes batch and class terms on the strong view but leaves them out of the loss it
returns; so does this module. The masks come from the teacher's weak-view softmax at T = 1:
``mask = confidence <= median(confidence)`` over the batch (confidence = the top probability), and
``class_mask = Σ_b p_b,k <= median_k(...)`` over the K classes (medians as ``np.percentile(·, 50)``).
Because the code multiplies the already batch-reduced loss by the mask and then takes the mean
(``(kd_loss(...) * mask).mean()``, its ``reduce=False`` commented out), a mask acts as the scalar
m = mask.float().mean(), the fraction of entries at or below the median: 1/2 for an even count of
distinct values. This module computes m the same way; it does not select images.

Deviations (listed in the notebook):

* **The strong view** is made on the device from the batch the trainer gives (already cropped and
  flipped: the weak view) by :func:`kdteach.data.strong_augment`, a tensor re-implementation of the
  FixMatch-style RandAugment (2 random operations of 14, random magnitudes) + Cutout that the
  authors' data code applies to a *separately* cropped and flipped copy of each image (PIL, per
  sample, in the data loader). Here both views share the crop and flip.
* **batch_weight, class_weight** (default 1: the authors' weighting): extra factors on the batch and
  class terms, for budgets far from the authors' scale. Both terms are sums over B x B or K x K matrix
  entries, so their gradient relative to the instance term's depends strongly on B and K: with the
  authors' weights they carry a few percent of it at CIFAR-100 with batch 64, but more than the instance term itself
  at 10 classes with batch 128 (the ``ci`` budget), where the student then trains badly. The mlkd
  notebook measures this and sets both factors at ``ci`` to restore the authors' balance.
* **strong_batch** (default 0: every image, as the authors): the strong view of only the first
  ``strong_batch`` images of each (shuffled) batch, a documented cost cut for CPU budgets; its CE and
  KD terms are means over those images.
* **Schedule.** The authors train CIFAR-100 students 240 epochs (homogeneous pairs, LR 0.025) or 480
  epochs (heterogeneous pairs) at batch 64; kdteach uses the budget's schedule for every method.

The strong-view forward passes need the student and the teacher inside :meth:`MLKD.loss`; the loss
context carries only their weak-view logits, so :meth:`MLKD.build_extras` stores a parameter-free
handle (``extras["views"]``) that refers to the run's student and teacher without registering them
(nothing is added to the optimiser or the checkpoint).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as kdata
from ..losses import kd_loss, mlkd_batch_loss, mlkd_class_loss
from .base import LossContext, Method, cross_entropy

#: the temperatures the authors' code adds to ``KD.TEMPERATURE`` (in its order: T, 3, 5, 2, 6)
EXTRA_TEMPERATURES = (3.0, 5.0, 2.0, 6.0)


def temperatures(temperature: float) -> tuple[float, ...]:
    """The five temperatures of MLKD's prediction augmentation: ``(T, 3, 5, 2, 6)``."""
    return (float(temperature),) + EXTRA_TEMPERATURES


def median_mask_fraction(values: torch.Tensor) -> torch.Tensor:
    """The fraction of ``values`` (1-D) at or below their median, the median taken as
    ``np.percentile(values, 50)`` (linear interpolation): how the authors' masks weight a term."""
    v = values.detach().float().flatten()
    return (v <= torch.quantile(v, 0.5)).float().mean()


def confidence_masks(teacher_weak_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two mask fractions of the authors' code from the teacher's weak-view logits (B, K).

    Returns:
        ``(m_b, m_c)``: scalars; m_b for the prediction-confidence mask over the B images
        (confidence = top softmax probability at T = 1), m_c for the class-confidence mask over the
        K classes (the batch sum of each class's probability).
    """
    p = F.softmax(teacher_weak_logits.detach().float(), dim=1)
    return median_mask_fraction(p.max(dim=1).values), median_mask_fraction(p.sum(dim=0))


class _Views(nn.Module):
    """The run's student and teacher for the strong view's forward passes, held *unregistered*: no
    parameters or buffers of its own, so the optimiser, checkpoints and ``.to()`` see nothing here."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, dataset: str, seed: int):
        super().__init__()
        object.__setattr__(self, "student", student)
        object.__setattr__(self, "teacher", teacher)
        self.dataset = dataset
        self.seed = int(seed)

    def generator(self, stage: str, epoch: int, step: int) -> torch.Generator:
        """A CPU generator seeded by (run seed, stage, epoch, step): the strong view of a step is the same
        whether the run resumed or not."""
        s = (self.seed * 1_000_003 + sum(map(ord, stage)) * 10_007 + epoch) * 100_003 + step
        return torch.Generator().manual_seed(s % (2 ** 63))

    def extra_repr(self) -> str:
        return f"dataset={self.dataset!r}, seed={self.seed}"


class MLKD(Method):
    """Multi-level logit distillation (see the module docstring); terms ``ce``, ``instance_weak``,
    ``instance_strong``, ``batch``, ``class``."""

    name = "mlkd"
    paper = ("Y. Jin, J. Wang, D. Lin, Multi-level Logit Distillation, CVPR 2023 "
             "(https://github.com/Jin-Ying/Multi-Level-Logit-Distillation)")
    defaults = MappingProxyType({"ce_weight": 0.1, "kd_weight": 0.9, "batch_weight": 1.0, "class_weight": 1.0,
                                 "temperature": 4.0, "strong_batch": 0})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'mlkd' must be > 0, "
                             f"got {self.hparams['temperature']!r}")
        sb = self.hparams["strong_batch"]
        if isinstance(sb, bool) or not isinstance(sb, int) or sb < 0:
            raise ValueError(f"hyper-parameter 'strong_batch' of method 'mlkd' must be an int >= 0 (0: the whole "
                             f"batch), got {sb!r}")

    def build_extras(self, student: nn.Module, teacher: nn.Module | None, budget) -> nn.ModuleDict:
        """``{"views": handle}``: refers to ``student`` and ``teacher`` for the strong view (no parameters).
        The images are denormalised with ``budget.dataset``'s statistics (without a budget: CIFAR-100's for
        100 classes, else CIFAR-10's); the run's seed (the trainer builds extras under it) seeds the views."""
        if budget is not None:
            dataset = budget.dataset
        else:
            fc = getattr(student, "fc", None)
            dataset = "cifar100" if getattr(fc, "out_features", None) == 100 else "cifar10"
        return nn.ModuleDict({"views": _Views(student, teacher, dataset, torch.initial_seed())})

    def strong_view(self, x: torch.Tensor, views: _Views, stage: str, epoch: int, step: int) -> torch.Tensor:
        """The strong view of normalised images ``x`` (n, 3, H, W): :func:`kdteach.data.strong_augment`
        in [0, 1], normalised again; float32, same device."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x01 = kdata.denormalize(x.float(), views.dataset)
            strong = kdata.strong_augment(x01, views.generator(stage, epoch, step))
            out = kdata.normalize(strong * 255.0, views.dataset)
        return out.contiguous(memory_format=torch.channels_last)

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """The five terms of the module docstring, each a scalar; weak-view logits from the context,
        strong-view logits from one more student and teacher pass."""
        h = ctx.hparams
        views: _Views = ctx.extras["views"]
        z_s, z_t, y = ctx.student_logits, ctx.teacher_logits, ctx.y
        n = h["strong_batch"] or len(y)
        x_strong = self.strong_view(ctx.x[:n], views, ctx.stage, ctx.epoch, ctx.step)
        zs_strong = views.student(x_strong)
        with torch.no_grad():
            zt_strong = views.teacher(x_strong)
        m_b, m_c = confidence_masks(z_t)
        taus = temperatures(h["temperature"])
        alpha = h["kd_weight"]
        weak_kd = [kd_loss(z_s, z_t, t) for t in taus]
        strong_kd = [kd_loss(zs_strong, zt_strong, t) for t in taus[:3]] + weak_kd[3:]   # (sic): see the module doc
        return {
            "ce": h["ce_weight"] * (cross_entropy(ctx) + F.cross_entropy(zs_strong.float(), y[:n])),
            "instance_weak": alpha * m_b * sum(weak_kd),
            "instance_strong": alpha * sum(strong_kd),
            "batch": h["batch_weight"] * alpha * m_b * sum(mlkd_batch_loss(z_s, z_t, t) for t in taus),
            "class": h["class_weight"] * alpha * m_c * sum(mlkd_class_loss(z_s, z_t, t) for t in taus),
        }
