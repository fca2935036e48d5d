"""CRD: Tian, Krishnan, Isola, "Contrastive Representation Distillation", ICLR 2020 (arXiv:1910.10699).

CRD maximises a lower bound on the mutual information between the teacher's and the student's
representations with a noise-contrastive objective. Read top to bottom, one training step is:

1. **Embed.** The penultimate features (``"pool"``, (B, D_s) and (B, D_t)) go through one linear
   head each (``embed_s``, ``embed_t``, the method's extras) to ``feat_dim`` = 128 and are
   L2-normalised: v_s, v_t (B, 128). The teacher's backbone stays frozen; its head ``embed_t`` is
   trained.
2. **Sample.** For each image i of the batch (``ctx.index``, its position in the training split) the
   positive is i itself and ``nce_k`` negatives are drawn uniformly among the training images of
   *other classes* (:meth:`CRDMemory.sample`; the benchmark's ``CIFAR100InstanceSample``,
   ``mode='exact'``): idx (B, 1 + nce_k).
3. **Score.** The memory bank holds one 128-d entry per training image for each network
   (``bank_s``, ``bank_t``: (N, 128) each). The student's embedding is scored against the teacher
   bank's entries idx, and the teacher's against the student bank's entries
   (:func:`kdteach.losses.crd_scores`, exp(⟨v, m⟩ / τ), τ = ``nce_t`` = 0.07), each divided by its
   constant Z, set once from the first batch as mean score × N (``ContrastMemory``'s ``Z_v1``, ``Z_v2``).
4. **Loss.** ``crd = crd_nce_loss(student scores, N) + crd_nce_loss(teacher scores, N)``
   (:func:`kdteach.losses.crd_nce_loss`; the two symmetric halves of ``CRDLoss``).
5. **Update.** The batch's bank entries move towards the new embeddings with momentum ``nce_m`` = 0.5
   and are re-normalised: bank[i] ← normalise(0.5 · bank[i] + 0.5 · v_i).

    L = ce_weight · CE + crd_weight · crd (+ kd_weight · KD)

Defaults, and where each comes from (the CRD authors' code, RepDistiller): ``crd_weight`` = 0.8,
``ce_weight`` = 1, no KD term (``scripts/run_cifar_distill.sh``: ``--distill crd -a 0 -b 0.8``;
CRD+KD is ``-a 1 -b 0.8``); ``feat_dim`` = 128, ``nce_k`` = 16384, ``nce_t`` = 0.07, ``nce_m`` = 0.5
(``train_student.py``'s defaults); the bank's initial entries uniform in ±1/√(feat_dim / 3)
(``ContrastMemory``).

The memory bank and the two constants Z are buffers of the extras, so they are saved in every
checkpoint and a resumed run continues with the same bank; the negatives of a step are drawn from a
generator seeded by (the run's sampling seed, epoch, step), so they do not depend on what else used
torch's global generator: the same seed gives the same run, and a resumed CRD run equals an
uninterrupted one. The bank scales with the training set: 2 × N × feat_dim float32 values, i.e.
2 × 50,000 × 128 × 4 B = 51.2 MB for full CIFAR-100 (:func:`bank_bytes`), plus N int64 labels.

Deviations from the authors' code, stated:

* Negatives are drawn *with* replacement, vectorised on the device; the authors' loader draws without
  replacement whenever ``nce_k`` is at most the number of other-class images (it is at CIFAR-100:
  16,384 of 49,500), so a row may here repeat a negative (on average about 16,384² / (2 · 49,500) ≈
  2,700 repeats in a row of 16,384 at CIFAR-100; each repeat is still an image of another class).
* The CE and CRD terms go through one optimiser with the student (the authors' code too adds the
  two embedding heads to the student's SGD optimiser).
"""

from __future__ import annotations

import math
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import crd_nce_loss, crd_scores, kd_loss
from .base import LossContext, Method, cross_entropy

__all__ = ["CRD", "CRDMemory", "bank_bytes"]


def bank_bytes(num_data: int, feat_dim: int = 128) -> int:
    """Bytes of CRD's two float32 memory banks, 2 · N · feat_dim · 4 (full CIFAR-100: 51,200,000)."""
    return 2 * int(num_data) * int(feat_dim) * 4


class CRDMemory(nn.Module):
    """CRD's memory bank: one L2-normalised embedding per training image for each network, plus Z.

    Buffers (all in the state dict, so checkpoints carry them):
        bank_s, bank_t: (N, feat_dim) student and teacher entries, initialised uniform in ±1/√(feat_dim/3).
        z: (2,) the normalisation constants (student scores, teacher scores); −1 until the first batch.
        labels: (N,) int64 training labels in index order (they define the negatives).
        seed: (1,) int64 sampling seed, drawn from torch's generator when the memory is built (the trainer
            seeds it with the run's seed).
    Non-persistent buffers: ``order`` (indices sorted by class), ``start``, ``count`` (per class), for sampling.

    Args:
        labels: (N,) int64 labels of the training split (the trainer's ``Method.train_labels``).
        feat_dim: embedding size.
    """

    def __init__(self, labels: torch.Tensor, feat_dim: int = 128):
        super().__init__()
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype != torch.int64 \
                or labels.numel() < 2:
            raise ValueError(f"labels must be an int64 tensor (N,) with N >= 2 training labels, got "
                             f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
        labels = labels.detach()
        n = labels.numel()
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("bank_s", torch.rand(n, feat_dim, device=labels.device).mul_(2 * stdv).sub_(stdv))
        self.register_buffer("bank_t", torch.rand(n, feat_dim, device=labels.device).mul_(2 * stdv).sub_(stdv))
        self.register_buffer("z", torch.full((2,), -1.0, device=labels.device))
        self.register_buffer("labels", labels.clone())
        self.register_buffer("seed", torch.randint(0, 2**31 - 1, (1,)).to(labels.device))
        self._seed = int(self.seed)       # a host copy: no device sync per step (refreshed when a checkpoint loads)
        count = torch.bincount(labels, minlength=int(labels.max()) + 1)
        if int((n - count[labels]).min()) < 1:
            raise ValueError("labels must hold at least two classes: CRD's negatives are images of other classes")
        self.register_buffer("order", torch.argsort(labels, stable=True), persistent=False)
        self.register_buffer("count", count, persistent=False)
        self.register_buffer("start", torch.cumsum(count, 0) - count, persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._seed = int(self.seed)

    @property
    def num_data(self) -> int:
        return int(self.labels.numel())

    def sample(self, index: torch.Tensor, num_negatives: int, epoch: int = 0, step: int = 0) -> torch.Tensor:
        """(B,) positions -> (B, 1 + num_negatives): column 0 the image itself, then images of other classes.

        Draws u uniform in [0, N − n_c) for an image of class c and skips the block of class c in the
        class-sorted order (u ↦ u + n_c when u ≥ start_c), so every other-class image has probability
        1 / (N − n_c). The draw is a function of (``seed``, ``epoch``, ``step``) only.
        """
        gen = torch.Generator(device=index.device)
        gen.manual_seed(self._seed * 1_000_003 + int(epoch) * 100_003 + int(step))
        y = self.labels[index]
        others = (self.num_data - self.count[y]).unsqueeze(1)                       # (B, 1)
        u = (torch.rand(index.shape[0], num_negatives, device=index.device, generator=gen) * others).long()
        u = torch.minimum(u, others - 1)
        start = self.start[y].unsqueeze(1)
        u = u + (u >= start).long() * self.count[y].unsqueeze(1)
        return torch.cat([index.unsqueeze(1), self.order[u]], dim=1)

    @torch.no_grad()
    def normalize_scores(self, scores: torch.Tensor, which: int) -> torch.Tensor:
        """Z[which], fixed as mean score · N at the first call (the authors' ``Z_v1``/``Z_v2``); on the device,
        without a host sync."""
        z = self.z[which]
        self.z[which] = torch.where(z < 0, scores.detach().mean().to(z.dtype) * self.num_data, z)
        return self.z[which].clone()

    @torch.no_grad()
    def update(self, index: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor, momentum: float) -> None:
        """bank[i] ← normalise(momentum · bank[i] + (1 − momentum) · v_i) for both banks."""
        for bank, v in ((self.bank_s, v_s), (self.bank_t, v_t)):
            new = bank[index] * momentum + v.detach().to(bank.dtype) * (1 - momentum)
            bank.index_copy_(0, index, F.normalize(new, p=2, dim=1))


class CRD(Method):
    """Contrastive representation distillation: terms ``ce``, ``crd`` (and ``kd`` when ``kd_weight`` > 0)."""

    name = "crd"
    paper = ("Y. Tian, D. Krishnan, P. Isola, Contrastive Representation Distillation, ICLR 2020 "
             "(https://arxiv.org/abs/1910.10699)")
    defaults = MappingProxyType({"ce_weight": 1.0, "crd_weight": 0.8, "kd_weight": 0.0, "temperature": 4.0,
                                 "feat_dim": 128, "nce_k": 16384, "nce_t": 0.07, "nce_m": 0.5})
    needs_index = True

    def validate_hparams(self) -> None:
        super().validate_hparams()
        h = self.hparams
        for key in ("feat_dim", "nce_k"):
            if isinstance(h[key], bool) or not isinstance(h[key], int) or h[key] < 1:
                raise ValueError(f"hyper-parameter {key!r} of method 'crd' must be an int >= 1, got {h[key]!r}")
        if not h["nce_t"] > 0:
            raise ValueError(f"hyper-parameter 'nce_t' of method 'crd' must be > 0, got {h['nce_t']!r}")
        if not 0 <= h["nce_m"] < 1:
            raise ValueError(f"hyper-parameter 'nce_m' of method 'crd' (bank momentum) must be in [0, 1), "
                             f"got {h['nce_m']!r}")
        if not h["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'crd' must be > 0, got {h['temperature']!r}")

    def student_features(self, student) -> list[str]:
        """The penultimate features ``"pool"`` (B, D) (benchmark ``feat[-1]``)."""
        return ["pool"]

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"embed_s": Linear(D_s, feat_dim), "embed_t": Linear(D_t, feat_dim), "memory": CRDMemory}``.

        The memory needs the training labels: :attr:`Method.train_labels` (set by the trainer) or, outside a
        trainer (e.g. when a cached run's extras are loaded back), those of ``budget``'s training split.
        """
        labels = self.train_labels
        if labels is None and budget is not None:
            from ..train.trainer import budget_splits

            labels = budget_splits(budget)[0].labels
        if labels is None:
            raise ValueError("method 'crd' needs the training labels for its memory bank: train it with "
                             "kdteach.train (which sets method.train_labels), pass a budget, or set "
                             "method.train_labels to the (N,) int64 labels of the training split before build_extras")
        d = self.hparams["feat_dim"]
        return nn.ModuleDict({"embed_s": nn.Linear(student.feature_dim, d),
                              "embed_t": nn.Linear(teacher.feature_dim, d),
                              "memory": CRDMemory(labels, d)})

    @staticmethod
    def embed(ctx: LossContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(v_s, v_t): the L2-normalised (B, feat_dim) embeddings of the student's and teacher's ``"pool"``."""
        v_s = F.normalize(ctx.extras["embed_s"](ctx.student_features["pool"]).float(), p=2, dim=1)
        v_t = F.normalize(ctx.extras["embed_t"](ctx.teacher_features["pool"]).float(), p=2, dim=1)
        return v_s, v_t

    def contrast(self, ctx: LossContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1-3 and 5 of the module doc: normalised scores (student anchor, teacher anchor), (B, 1 + nce_k) each."""
        if ctx.index is None:
            raise ValueError("method 'crd' needs ctx.index, the (B,) positions of the batch in the training split")
        h, memory = ctx.hparams, ctx.extras["memory"]
        v_s, v_t = self.embed(ctx)
        idx = memory.sample(ctx.index, h["nce_k"], ctx.epoch, ctx.step)
        out_s = crd_scores(v_s, memory.bank_t, idx, h["nce_t"])      # student vs the teacher's bank
        out_t = crd_scores(v_t, memory.bank_s, idx, h["nce_t"])      # teacher vs the student's bank
        out_s = out_s / memory.normalize_scores(out_s, 0)
        out_t = out_t / memory.normalize_scores(out_t, 1)
        memory.update(ctx.index, v_s, v_t, h["nce_m"])
        return out_s, out_t

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce", "crd"}`` (+ ``"kd"``): crd = crd_weight · (NCE(student scores) + NCE(teacher scores))."""
        h = ctx.hparams
        out_s, out_t = self.contrast(ctx)
        n = ctx.extras["memory"].num_data
        terms = {"ce": h["ce_weight"] * cross_entropy(ctx),
                 "crd": h["crd_weight"] * (crd_nce_loss(out_s, n) + crd_nce_loss(out_t, n))}
        if h["kd_weight"] > 0:
            terms["kd"] = h["kd_weight"] * kd_loss(ctx.student_logits, ctx.teacher_logits, h["temperature"])
        return terms
