"""SSKD: Xu, Liu, Li, Loy, "Knowledge Distillation Meets Self-Supervision", ECCV 2020 (arXiv:2006.07114).

The teacher's knowledge includes how it *relates transformed images to the originals*. Each training
image is used in its normal view and rotated by 90, 180 and 270 degrees (:func:`kdteach.losses.rotation_views`).
Both networks get a projection head on their penultimate features (``"pool"``): Linear(D, D) -> ReLU ->
Linear(D, D), the authors' ``wrapper.proj_head``. Two stages, as the authors' ``student.py`` runs them:

1. ``head``: the teacher's backbone frozen (its features detached), only its head learns the pretext
   task: in the (3B, B) cosine matrix between the rotated views' and the normal views' embeddings
   (:func:`~kdteach.losses.contrastive_similarity`), each row's own image must win
   (:func:`~kdteach.losses.sskd_head_loss`, cross-entropy with the cosines as logits). The student is
   not trained (no term reaches it); its forward pass still runs, so its BN statistics move, and the
   ``main`` stage re-estimates them within its first steps.
2. ``main``: the student and its head, with the teacher and its head frozen:

       L = 0.1 · CE(normal) + 0.9 · KD_T=4(normal) + 2.7 · KD_T=4(rotated, kept rows)
           + 10 · SS_T=0.5(similarity matrices, kept rows)

   (:func:`~kdteach.losses.sskd_tf_loss`, :func:`~kdteach.losses.sskd_ss_loss`: the rotated views' KD
   keeps every row (``ratio_tf`` = 1.0); the similarity term keeps the teacher's correct rows and the 75%
   of its wrong rows with the smallest error (``ratio_ss`` = 0.75)).

Defaults, and where each comes from (the authors' ``student.py`` defaults): ``ce_weight`` 0.1,
``kd_weight`` 0.9, ``tf_weight`` 2.7, ``ss_weight`` 10.0; ``kd_T`` = ``tf_T`` = 4, ``ss_T`` = 0.5;
``ratio_tf`` 1.0, ``ratio_ss`` 0.75. The head stage lasts ``head_epochs`` (None: a quarter of the budget's
epochs, the authors' 60 head epochs beside 240 student epochs).

Deviations, stated:

* ``ss_batch`` (default 0: every image of the batch) rotates only the first ``ss_batch`` images of each
  batch: the rotated views cost three more forward and backward passes per image, so the ``ci`` notebook
  uses 16 of 128 (a documented setting, recorded with the run).
* The head stage runs at the budget's initial learning rate held constant (the authors decay it by 10
  at epochs 30 and 45 of 60), inside the same trainer as the student stage.
* The rotated views are rotations of the batch's already cropped and flipped images; the authors' loader
  (``cifar.py``) flips the image, then crops each of its four views independently.
* The head stage keeps the teacher in eval mode, as the authors do (``t_model.eval()``).
* The rotated views go through the student in a second forward pass, so its BN normalises them with
  their own batch statistics; the authors forward the four views of every image as one batch.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from ..features import extract
from ..losses import contrastive_similarity, kd_loss, rotation_views, sskd_head_loss, sskd_ss_loss, sskd_tf_loss
from .base import LossContext, Method, StagePlan, cross_entropy

__all__ = ["SSKD", "projection_head"]


def projection_head(dim: int) -> nn.Sequential:
    """The authors' ``proj_head``: Linear(D, D) -> ReLU -> Linear(D, D) on (B, D) penultimate features."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))


class _Networks(nn.Module):
    """The run's student and teacher for the rotated views' forward passes, held *unregistered* (no
    parameters or buffers of its own: the optimiser, checkpoints and ``.to()`` see nothing here)."""

    def __init__(self, student: nn.Module, teacher: nn.Module):
        super().__init__()
        object.__setattr__(self, "student", student)
        object.__setattr__(self, "teacher", teacher)


class SSKD(Method):
    """Two stages: ``head`` (term ``head``: the teacher's projection head on the rotation pretext task), then
    ``main`` (terms ``ce``, ``kd``, ``tf``, ``ss``)."""

    name = "sskd"
    paper = ("G. Xu, Z. Liu, X. Li, C. C. Loy, Knowledge Distillation Meets Self-Supervision, ECCV 2020 "
             "(https://arxiv.org/abs/2006.07114)")
    defaults = MappingProxyType({"ce_weight": 0.1, "kd_weight": 0.9, "tf_weight": 2.7, "ss_weight": 10.0,
                                 "kd_T": 4.0, "tf_T": 4.0, "ss_T": 0.5, "ratio_tf": 1.0, "ratio_ss": 0.75,
                                 "head_epochs": None, "ss_batch": 0})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        h = self.hparams
        for key in ("kd_T", "tf_T", "ss_T"):
            if not h[key] > 0:
                raise ValueError(f"hyper-parameter {key!r} of method 'sskd' must be > 0, got {h[key]!r}")
        for key in ("ratio_tf", "ratio_ss"):
            if not 0 <= h[key] <= 1:
                raise ValueError(f"hyper-parameter {key!r} of method 'sskd' must be in [0, 1], got {h[key]!r}")
        he = h["head_epochs"]
        if he is not None and (isinstance(he, bool) or not isinstance(he, int) or he < 1):
            raise ValueError(f"hyper-parameter 'head_epochs' of method 'sskd' must be None (a quarter of the "
                             f"budget's epochs) or an int >= 1, got {he!r}")
        sb = h["ss_batch"]
        if isinstance(sb, bool) or not isinstance(sb, int) or sb < 0 or sb == 1:
            raise ValueError(f"hyper-parameter 'ss_batch' of method 'sskd' must be 0 (the whole batch) or an int "
                             f">= 2 (images rotated per batch), got {sb!r}")

    def student_features(self, student) -> list[str]:
        """The penultimate features ``"pool"`` (B, D), the input of the projection heads."""
        return ["pool"]

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"s_head", "t_head"}`` (:func:`projection_head` of each network's feature size) and ``"networks"``,
        a parameter-free handle on the two models for the rotated views."""
        return nn.ModuleDict({"s_head": projection_head(student.feature_dim),
                              "t_head": projection_head(teacher.feature_dim),
                              "networks": _Networks(student, teacher)})

    def stages(self, budget) -> list[StagePlan]:
        """``head`` (``head_epochs``, constant learning rate, with the teacher), then ``main`` (the budget's epochs)."""
        n = self.hparams["head_epochs"] or max(1, round(budget.epochs / 4))
        return [StagePlan("head", n, schedule=False, teacher=True), StagePlan("main", budget.epochs, teacher=True)]

    def rotated(self, ctx: LossContext) -> tuple[torch.Tensor, int]:
        """The rotated views of the batch's first ``ss_batch`` images (3n, 3, H, W), channels_last, and n."""
        n = self.hparams["ss_batch"] or ctx.x.shape[0]
        n = min(n, ctx.x.shape[0])
        return rotation_views(ctx.x[:n]).contiguous(memory_format=torch.channels_last), n

    def similarities(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """The (3n, n) contrastive similarity matrices of both networks (``"teacher"`` without gradients,
        ``"student"`` with them), and the rotated views' logits (``"teacher_logits"``, ``"student_logits"``)."""
        nets: _Networks = ctx.extras["networks"]
        x_rot, n = self.rotated(ctx)
        with torch.no_grad():
            t_logits, t_feats = extract(nets.teacher, x_rot, ["pool"])
        t_head = ctx.extras["t_head"]
        out = {"teacher_logits": t_logits.detach()}
        if ctx.stage == "head":
            t_pool = ctx.teacher_features["pool"][:n]
            out["teacher"] = contrastive_similarity(t_head(t_feats["pool"].detach()), t_head(t_pool.detach()))
            return out
        with torch.no_grad():
            out["teacher"] = contrastive_similarity(t_head(t_feats["pool"]), t_head(ctx.teacher_features["pool"][:n]))
        s_logits, s_feats = extract(nets.student, x_rot, ["pool"])
        s_head = ctx.extras["s_head"]
        out["student"] = contrastive_similarity(s_head(s_feats["pool"]), s_head(ctx.student_features["pool"][:n]))
        out["student_logits"] = s_logits
        return out

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Stage ``head``: ``{"head": sskd_head_loss}``; stage ``main``: ``{"ce", "kd", "tf", "ss"}`` (module doc)."""
        h = ctx.hparams
        sims = self.similarities(ctx)
        if ctx.stage == "head":
            return {"head": sskd_head_loss(sims["teacher"])}
        n = sims["teacher"].shape[1]
        y_rot = ctx.y[:n].repeat_interleave(3)
        return {
            "ce": h["ce_weight"] * cross_entropy(ctx),
            "kd": h["kd_weight"] * kd_loss(ctx.student_logits, ctx.teacher_logits, h["kd_T"]),
            "tf": h["tf_weight"] * sskd_tf_loss(sims["student_logits"], sims["teacher_logits"], y_rot, h["tf_T"],
                                                h["ratio_tf"]),
            "ss": h["ss_weight"] * sskd_ss_loss(sims["student"], sims["teacher"], h["ss_T"], h["ratio_ss"]),
        }
