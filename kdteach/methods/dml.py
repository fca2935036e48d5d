"""DML: Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018 (arXiv:1706.00384).

The online protocol's reference method: no pre-trained teacher; the student and ``peers`` other
networks are trained together from scratch, and each learns from the others' current predictions:

    L_i = ce_weight · CE(z_i, y) + kl_weight · 1/(K−1) Σ_{j≠i} KL(p_j ‖ p_i),    p = softmax(z / T)

for each of the K = peers + 1 networks (the paper extends the pair of losses to K networks; T = 1 there, so
``kd_loss``'s T² factor is 1). The peers' targets p_j are detached, as in the paper's algorithm,
where each network is updated with the others' predictions held fixed.

Protocol choices (deviations from the paper, listed in the notebook):

* **Synchronous updates.** The paper's Algorithm 1 updates the networks one after the other on the
  same mini-batch, recomputing predictions in between. Here all K networks make their predictions
  once per batch and are updated together by one optimiser on Σ_i L_i. Because every peer target
  is detached, the gradient of Σ_i L_i with respect to network i's weights is exactly ∇L_i, so
  this is K independent SGD steps taken at the same time; it saves K − 1 forward passes per batch.
* **Peers are the method's extras.** They are built by :meth:`DML.build_extras` (architecture
  ``peer_arch``, default the student's), initialised from the run's seed but differently from the
  student, trained by the same optimiser and schedule, saved in the same checkpoint and resumed
  with it. Their test accuracies and the ensemble's (mean of the K softmax outputs) are recorded
  every epoch through :meth:`DML.heads`.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import kd_loss
from .base import LossContext, Method, cross_entropy


def _peer_names(n: int) -> list[str]:
    return [f"peer{i}" for i in range(1, n + 1)]


class DML(Method):
    """Deep mutual learning of the student with ``peers`` peer networks; terms ``ce``, ``kl`` (the
    student's) and ``ce_peer<i>``, ``kl_peer<i>`` (each peer's); heads ``peer<i>`` and ``ensemble``."""

    name = "dml"
    paper = ("Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, Deep Mutual Learning, CVPR 2018 "
             "(https://arxiv.org/abs/1706.00384)")
    defaults = MappingProxyType({"peers": 1, "peer_arch": "", "ce_weight": 1.0, "kl_weight": 1.0,
                                 "temperature": 1.0})
    needs_teacher = False

    def validate_hparams(self) -> None:
        super().validate_hparams()
        peers = self.hparams["peers"]
        if isinstance(peers, bool) or not isinstance(peers, int) or peers < 1:
            raise ValueError(f"hyper-parameter 'peers' of method 'dml' must be an int >= 1 (mutual learning needs "
                             f"at least one peer besides the student), got {peers!r}")
        if not isinstance(self.hparams["peer_arch"], str):
            raise ValueError(f"hyper-parameter 'peer_arch' of method 'dml' must be a model name or '' (the student's "
                             f"architecture), got {self.hparams['peer_arch']!r}")
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'dml' must be > 0, got "
                             f"{self.hparams['temperature']!r}")

    def build_extras(self, student: nn.Module, teacher: nn.Module | None, budget) -> nn.ModuleDict:
        """The peers: ``peers`` kdteach models of ``peer_arch`` (default the student's architecture) with
        the student's number of classes. Called under the run's seed (the trainer forks the RNG);
        each peer is initialised from its own seed derived from it, so no peer starts as a copy of
        the student even when the architectures are equal."""
        from .. import models as kdmodels

        arch = self.hparams["peer_arch"] or getattr(student, "kd_arch", None)
        if arch not in kdmodels.MODELS:
            raise ValueError(f"method 'dml' builds its peers from a kdteach model name; peer_arch={arch!r} is not "
                             f"one of {', '.join(kdmodels.list_models())}")
        k = int(student.fc.out_features)
        base = torch.initial_seed()
        peers = nn.ModuleDict()
        for i, name in enumerate(_peer_names(self.hparams["peers"]), start=1):
            torch.manual_seed((base * 1_000_003 + i) % (2 ** 63))
            peers[name] = kdmodels.create(arch, num_classes=k)
        return peers

    def _all_logits(self, x: torch.Tensor, student_logits: torch.Tensor, extras: nn.ModuleDict) -> list[torch.Tensor]:
        return [student_logits] + [extras[n](x) for n in _peer_names(self.hparams["peers"])]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """For each network i (the student, then ``peer1`` ...): ``ce_weight · CE(z_i (B,K), y)`` and
        ``kl_weight · mean_{j≠i} kd_loss(z_i, z_j.detach(), T)``."""
        h = ctx.hparams
        logits = self._all_logits(ctx.x, ctx.student_logits, ctx.extras)
        detached = [z.detach() for z in logits]
        terms: dict[str, torch.Tensor] = {}
        for i, z in enumerate(logits):
            suffix = "" if i == 0 else f"_peer{i}"
            ce = cross_entropy(ctx) if i == 0 else F.cross_entropy(z.float(), ctx.y)
            others = [d for j, d in enumerate(detached) if j != i]
            kl = sum(kd_loss(z, d, h["temperature"]) for d in others) / len(others)
            terms["ce" + suffix] = h["ce_weight"] * ce
            terms["kl" + suffix] = h["kl_weight"] * kl
        return terms

    def heads(self, x: torch.Tensor, student: nn.Module, extras: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """Each peer's logits (B, K) and ``ensemble``: the mean of the K networks' softmax outputs."""
        logits = self._all_logits(x, student(x), extras)
        out = {n: z for n, z in zip(_peer_names(self.hparams["peers"]), logits[1:])}
        out["ensemble"] = torch.stack([z.float().softmax(1) for z in logits]).mean(0)
        return out
