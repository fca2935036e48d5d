"""BYOT: Zhang, Song, Gao, Chen, Bao, Ma, "Be Your Own Teacher: Improve the Performance of
Convolutional Neural Networks via Self Distillation", ICCV 2019 (arXiv:1905.08094).

The self protocol's reference method: no external teacher. The student gets a shallow classifier
("exit") after every stage but the last; the deepest classifier (the student's own ``fc``) teaches
them. For each exit i, with z_i its logits, F_i its bottleneck feature, z_C / F_C the deepest
classifier's logits / last stage feature (both detached: the teacher side of each term):

    L = CE(z_C, y) + Σ_i [ (1 − α) · CE(z_i, y)                      (loss 1: labels)
                           + α · KL(softmax(z_C/T) ‖ softmax(z_i/T))   (loss 2: the deepest exit teaches)
                           + λ · mean (F_i − F_C)² ]                    (loss 3: feature hint, as FitNets)

Where the paper is silent, kdteach follows the authors' public code
(github.com/ArchipLab-LinfengZhang/pytorch-self-distillation-final, ``train.py`` and ``resnet.py``):

* α = 0.3 (``--loss_coefficient``) and T = 3 (``--temperature``) are that script's defaults; the
  deepest classifier gets the plain CE; at test time the ensemble is the mean of all classifiers'
  logits.
* Its KL term is a soft cross-entropy without the T² factor of Hinton et al.; kdteach computes
  ``kd_loss(z_i, z_C, T) / T²``, which is KL(p_C ‖ p_i): the same gradient (the two differ by the
  entropy of p_C, a constant for the exit).
* Bottleneck: the paper does not give its structure; the code maps each shallow stage to the
  deepest stage's shape with a chain of separable convolutions (depthwise 3x3 + pointwise 1x1,
  twice, with BN and ReLU; one block per later stage, with that stage's stride and width), then
  global average pooling and a linear classifier. kdteach builds the same chain from the model's
  declared stages. The code also multiplies each shallow feature by a sigmoid attention map before
  its bottleneck; kdteach leaves that out (it is not in the paper).
* Loss 3 is in the paper, not in the code's final ``train.py``; its weight λ is not given there:
  ``feature_weight`` = 0.05 on the mean squared error is kdteach's choice (set it to 0 for the
  code's version).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from ..features import capture
from ..losses import kd_loss
from .base import LossContext, Method, cross_entropy, stage_names


class SepConv(nn.Module):
    """Separable convolution block of BYOT's bottlenecks: (depthwise 3x3 stride s, pointwise 1x1, BN,
    ReLU, depthwise 3x3, pointwise 1x1 to ``c_out``, BN, ReLU); (B, c_in, H, W) -> (B, c_out, H/s, W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(),
            nn.Conv2d(c_in, c_in, 3, stride=1, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Exit(nn.Module):
    """A shallow classifier: bottleneck (SepConv chain to the deepest stage's shape), global average
    pooling, linear layer. ``forward`` returns ``(logits (B, K), feature (B, C_last, h, w))``."""

    def __init__(self, blocks: list[tuple[int, int, int]], num_classes: int):
        super().__init__()
        self.bottleneck = nn.Sequential(*(SepConv(c_in, c_out, s) for c_in, c_out, s in blocks))
        self.fc = nn.Linear(blocks[-1][1], num_classes)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.bottleneck(f)
        return self.fc(feat.mean((2, 3))), feat


class BYOT(Method):
    """Self distillation with an exit after every stage but the last; terms ``ce`` (deepest
    classifier) and, per exit k, ``ce_exit<k>``, ``kl_exit<k>``, ``feat_exit<k>``; heads ``exit<k>``
    and ``ensemble``."""

    name = "byot"
    paper = ("L. Zhang, J. Song, A. Gao, J. Chen, C. Bao, K. Ma, Be Your Own Teacher: Improve the Performance of "
             "Convolutional Neural Networks via Self Distillation, ICCV 2019 (https://arxiv.org/abs/1905.08094)")
    defaults = MappingProxyType({"alpha": 0.3, "temperature": 3.0, "feature_weight": 0.05})
    needs_teacher = False

    def validate_hparams(self) -> None:
        super().validate_hparams()
        if not 0.0 <= self.hparams["alpha"] <= 1.0:
            raise ValueError(f"hyper-parameter 'alpha' of method 'byot' must be in [0, 1], got {self.hparams['alpha']!r}")
        if not self.hparams["temperature"] > 0:
            raise ValueError(f"hyper-parameter 'temperature' of method 'byot' must be > 0, got "
                             f"{self.hparams['temperature']!r}")
        if self.hparams["feature_weight"] < 0:
            raise ValueError(f"hyper-parameter 'feature_weight' of method 'byot' must be >= 0, got "
                             f"{self.hparams['feature_weight']!r}")

    def student_features(self, student: nn.Module) -> list[str]:
        """The stages after the stem: every one but the last gets an exit; the last is the hint target."""
        names = stage_names(student, skip_first=True)
        if len(names) < 2:
            raise ValueError(f"method 'byot' needs at least 2 stages after the stem (one exit and the deepest "
                             f"classifier); {type(student).__name__} has {names}")
        return names

    def exit_stages(self, student: nn.Module) -> list[str]:
        """The stages that get an exit, shallow to deep (``exit1`` is after the first)."""
        return self.student_features(student)[:-1]

    def build_extras(self, student: nn.Module, teacher: nn.Module | None, budget) -> nn.ModuleDict:
        """One :class:`Exit` per stage but the last: its bottleneck has a SepConv block for each later
        stage, with that stage's width and its stride relative to the stage before."""
        names = self.student_features(student)
        stages = [student.stage(n) for n in names]
        k = int(student.fc.out_features)
        exits = nn.ModuleDict()
        for i in range(len(stages) - 1):
            blocks, c = [], stages[i].channels
            for prev, nxt in zip(stages[i:-1], stages[i + 1:]):
                if nxt.stride % prev.stride:
                    raise ValueError(f"method 'byot': stage {nxt.name} (stride {nxt.stride}) does not down-sample "
                                     f"{prev.name} (stride {prev.stride}) by an integer factor")
                blocks.append((c, nxt.channels, nxt.stride // prev.stride))
                c = nxt.channels
            exits[f"exit{i + 1}"] = Exit(blocks, k)
        return exits

    def _exits(self, feats: dict[str, torch.Tensor], extras: nn.ModuleDict
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        names = list(feats)
        return [extras[f"exit{i + 1}"](feats[n]) for i, n in enumerate(names[:-1])]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``ce`` = CE(z_C, y); per exit k: ``ce_exit<k>`` = (1 − α) CE(z_k, y), ``kl_exit<k>`` =
        α · kd_loss(z_k, z_C, T) / T², ``feat_exit<k>`` = λ · mean((F_k − F_C.detach())²), with
        F_k (B, C_last, h, w) the exit's bottleneck output and F_C the last stage's output."""
        h = ctx.hparams
        a, t, lam = h["alpha"], h["temperature"], h["feature_weight"]
        deepest = list(ctx.student_features.values())[-1].detach()
        z_c = ctx.student_logits.detach()
        terms = {"ce": cross_entropy(ctx)}
        for k, (z, feat) in enumerate(self._exits(dict(ctx.student_features), ctx.extras), start=1):
            if feat.shape != deepest.shape:
                raise ValueError(f"method 'byot': exit{k}'s bottleneck gives {tuple(feat.shape)} but the last stage is "
                                 f"{tuple(deepest.shape)}; the feature hint needs equal shapes")
            terms[f"ce_exit{k}"] = (1.0 - a) * F.cross_entropy(z.float(), ctx.y)
            terms[f"kl_exit{k}"] = a * kd_loss(z, z_c, t) / (t * t)
            terms[f"feat_exit{k}"] = lam * (feat.float() - deepest.float()).pow(2).mean()
        return terms

    def heads(self, x: torch.Tensor, student: nn.Module, extras: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """Each exit's logits (B, K) and ``ensemble``: the mean of every classifier's logits (the
        authors' code)."""
        names = self.student_features(student)
        with capture(student, names) as store:
            z_c = student(x)
            feats = {n: store[n] for n in names}
        exits = [z for z, _f in self._exits(feats, extras)]
        out = {f"exit{k}": z for k, z in enumerate(exits, start=1)}
        out["ensemble"] = torch.stack([z_c.float()] + [z.float() for z in exits]).mean(0)
        return out
