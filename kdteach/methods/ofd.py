"""OFD: Heo, Kim, Yun, Park, Kwak, Choi, "A Comprehensive Overhaul of Feature Distillation", ICCV 2019
(arXiv:1904.01866); the authors' code github.com/clovaai/overhaul-distillation (``CIFAR-100/distiller.py``,
``CIFAR-100/train_with_distillation.py``).

OFD distills **pre-ReLU** features (``preact = True``: the trainer captures the input of each stage's
activation module, see :mod:`kdteach.models`) through three design choices:

* teacher transform: the *margin ReLU* max(t, m_c), with a per-channel margin m_c < 0 computed once from
  the teacher BN that precedes the stage's ReLU (:func:`kdteach.losses.ofd_margin`, E[x | x < 0] of
  N(β, γ²));
* student transform: a connector, 1x1 conv (no bias) + BN from the student's channels to the teacher's
  (:func:`ofd_connector`), trained with the student and discarded afterwards;
* distance: the partial L2 :func:`kdteach.losses.ofd_loss`, which skips positions where the student is
  already below a negative target.

One stage (``main``), as the authors' CIFAR script:

    L = ce_weight · CE + ofd_weight · Σ_i 2^(i − n + 1) · ofd_loss(c_i(s_i), t_i, m_i)

over the n stage pairs after the stem (their ``extract_feature`` returns the pre-ReLU outputs of WRN's
three blocks), i = 0 shallowest: the deepest stage has weight 1, each shallower one half
(``distiller.py``'s ``/ 2 ** (feat_num - i - 1)``); ``ofd_weight`` = 1/1000 (the training loop's
``loss_distill.sum() / batch_size / 1000``; the / B is inside :func:`~kdteach.losses.ofd_loss`);
``ce_weight`` 1 (``loss_CE +``). The script has no other term (no KD).

Which BN gives the margin (:func:`bn_before_activation`). The authors' models list it by hand
(``get_bn_before_relu``); here it is found from the declared stages without model code: one traced
forward pass records the order in which modules run, and the margin's BN is the first ``BatchNorm2d``
with the stage's channels that runs after the last non-linearity before the stage's activation module.
For a WRN (pre-activation blocks) that is the next block's ``bn1``, whose output *is* the stage's
pre-ReLU feature, exactly the authors' choice. For a post-activation residual block (ResNet, the tiny
teacher) the pre-ReLU feature is ``bn2(...) + shortcut``; the rule picks the residual branch's ``bn2``
(the one the authors' ImageNet ResNet and the mdistiller re-implementation list), so the Gaussian
model of the margin ignores the shortcut: an approximation, reported by ``exact=False``.

Teacher BN mode. The authors' loop calls ``d_net.t_net.train()``: the teacher's BNs normalise with the
*batch* statistics, so in every batch each distilled channel has mean β and standard deviation |γ|
exactly, the distribution the margin assumes (and the teacher's running statistics drift, harmless
there because the teacher is evaluated before training only). Our trainer runs the teacher in eval
mode under ``torch.inference_mode()`` (the same frozen teacher for every method, and its cache
untouched), so its BNs use the running statistics: the channels are N(β, γ²) only as far as the
running estimates match the data, which they do on training images up to augmentation. The margins
are the same either way (they depend on γ and β only); the targets differ slightly.

The connector (:func:`ofd_connector`): the authors' ``build_feature_connector`` is a 1x1 conv
(no bias, normal init with std sqrt(2 / (k²·C_t))) + BN (γ = 1, β = 0) for maps of equal size, used
even when the channels agree. For students whose stage has another stride the 1x1 conv is replaced by
the FitNets regressor's strided conv or transposed conv (:func:`kdteach.methods.fitnet.regressor_spec`)
+ BN, so any zoo pair with the same number of stages works; a pair whose stage lists differ in length,
or whose strides' ratio is not an integer, is a clear error naming both models' stages.

Deviations, stated: the teacher's BN in eval mode (above); the margin's BN found by the traced rule;
:func:`~kdteach.losses.ofd_loss` is a *sum* over C·H·W, so at the ``ci`` budget's 16x16 inputs the
term is about a quarter of its 32x32 value relative to the CE; ``ofd_weight`` stays at the authors'
1/1000 at every resolution (``--set ofd_weight=...`` changes it). The authors' optimiser (SGD with
Nesterov, lr 0.1, 200 epochs) is replaced by the budget's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn

from ..losses import ofd_loss, ofd_margin
from .ab import paired_stages, preact_regressor, stage_weights
from .base import LossContext, Method, cross_entropy, stage_names
from .fitnet import _describe

__all__ = ["OFD", "BNBeforeReLU", "bn_before_activation", "ofd_connector", "ofd_stage_pairs", "teacher_margins"]

_NONLINEAR = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)


@dataclass(frozen=True)
class BNBeforeReLU:
    """The BN whose γ, β give a stage's OFD margin.

    Attributes:
        stage: the stage's name; name: the BN's dotted path in the model; bn: the module.
        exact: True when the BN's output is the stage's pre-activation itself (no residual added after it).
    """

    stage: str
    name: str
    bn: nn.BatchNorm2d
    exact: bool


def bn_before_activation(model: nn.Module, stage_name: str, resolution: int = 32) -> BNBeforeReLU:
    """The BatchNorm2d that precedes the activation module of stage ``stage_name`` (module docstring's rule).

    One forward pass on a (2, 3, resolution, resolution) zero input, in eval mode without gradients (the
    model's mode and running statistics are left as they were), records the order in which leaf modules
    run; the BN is the first ``BatchNorm2d`` with the stage's channels that runs after the last
    non-linearity (a ReLU-family module other than the stage's own) before the stage's activation module.

    Raises:
        ValueError: no such BN (the message names the model's stages and the stage's module).
    """
    stage = model.stage(stage_name)
    modules = dict(model.named_modules())
    act = modules[stage.module]
    calls: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []

    def record(name):
        def hook(module, inputs, output):
            calls.append((name, module, inputs[0] if inputs else None, output))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in modules.items() if not list(m.children())]
    was_training = model.training
    try:
        param = next(model.parameters())
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, 3, resolution, resolution, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    at = next((i for i, c in enumerate(calls) if c[1] is act), None)
    found = None
    if at is not None:
        start = max((i for i in range(at) if isinstance(calls[i][1], _NONLINEAR)), default=-1)
        found = next((c for c in calls[start + 1:at]
                      if isinstance(c[1], nn.BatchNorm2d) and c[1].num_features == stage.channels), None)
    if found is None:
        raise ValueError(f"method 'ofd' needs the batch norm before the activation of the teacher's stage "
                         f"{stage.name!r} (module {stage.module!r}, {stage.channels} channels) for its margin, "
                         f"but none runs between that activation and the previous non-linearity; teacher "
                         f"{_describe(model)}")
    return BNBeforeReLU(stage.name, found[0], found[1], exact=found[3] is calls[at][2])


def teacher_margins(teacher: nn.Module) -> dict[str, torch.Tensor]:
    """Stage name -> (C,) :func:`~kdteach.losses.ofd_margin` of its BN, for every teacher stage after the stem."""
    out = {}
    for name in stage_names(teacher, skip_first=True):
        bn = bn_before_activation(teacher, name).bn
        out[name] = ofd_margin(bn.weight, bn.bias)
    return out


def ofd_stage_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple]:
    """The (student, teacher) :class:`~kdteach.models.Stage` pairs: every stage after the stem, one to one.

    Raises:
        ValueError: the two models have different numbers of stages (the message names both).
    """
    return paired_stages("ofd", student, teacher)


def ofd_connector(student_stage, teacher_stage, *, student: str = "student", teacher: str = "teacher") -> nn.Sequential:
    """The student transform: (B, C_s, H_s, W_s) pre-ReLU student feature -> (B, C_t, H_t, W_t).

    Equal strides: the authors' 1x1 conv (no bias) + BN, conv weights normal with std sqrt(2 / C_t)
    (their ``n = k·k·out_channels``), BN γ = 1, β = 0, whatever the channels. Other integer stride
    ratios: the FitNets regressor's strided conv / transposed conv + BN (no ReLU: the target is a
    pre-activation).

    Raises:
        ValueError: the strides' ratio is not an integer; the message names both stages and models.
    """
    if student_stage.stride == teacher_stage.stride:
        conv = nn.Conv2d(student_stage.channels, teacher_stage.channels, kernel_size=1, bias=False)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / teacher_stage.channels))
        bn = nn.BatchNorm2d(teacher_stage.channels)
        return nn.Sequential(conv, bn)
    return preact_regressor("ofd", student_stage, teacher_stage, student=student, teacher=teacher)


class _Margins(nn.Module):
    """The teacher's per-stage margins as buffers (they move with the extras, are checkpointed, never trained)."""

    def __init__(self, margins: list[torch.Tensor]):
        super().__init__()
        self.count = len(margins)
        for i, m in enumerate(margins):
            self.register_buffer(f"margin{i}", m.detach().clone().float())

    def forward(self, i: int) -> torch.Tensor:
        return getattr(self, f"margin{i}")


class OFD(Method):
    """OFD (one stage): terms ``ce`` and ``ofd`` (partial L2 through the connectors against the margin ReLU)."""

    name = "ofd"
    paper = ("B. Heo, J. Kim, S. Yun, H. Park, N. Kwak, J. Y. Choi, A Comprehensive Overhaul of Feature "
             "Distillation, ICCV 2019 (https://arxiv.org/abs/1904.01866)")
    defaults = MappingProxyType({"ce_weight": 1.0, "ofd_weight": 1e-3})
    preact = True

    def student_features(self, student) -> list[str]:
        """Every stage after the stem, captured before its activation (the authors' ``preReLU=True``)."""
        return stage_names(student, skip_first=True)

    def check_models(self, student, teacher) -> None:
        names = dict(student=_describe(student), teacher=_describe(teacher))
        for s, t in ofd_stage_pairs(student, teacher):
            ofd_connector(s, t, **names)
            bn_before_activation(teacher, t.name)

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"connector": ModuleList of ofd_connector(s_i, t_i), "margin": the teacher's margins (buffers)}``."""
        names = dict(student=_describe(student), teacher=_describe(teacher))
        pairs = ofd_stage_pairs(student, teacher)
        margins = teacher_margins(teacher)
        return nn.ModuleDict({
            "connector": nn.ModuleList([ofd_connector(s, t, **names) for s, t in pairs]),
            "margin": _Margins([margins[t.name] for _, t in pairs]),
        })

    @staticmethod
    def distill_losses(ctx: LossContext) -> list[torch.Tensor]:
        """Per stage pair, ``ofd_loss(connector_i(s_i), t_i, margin_i)`` (unweighted, shallow to deep)."""
        s_feats, t_feats = list(ctx.student_features.values()), list(ctx.teacher_features.values())
        margins = ctx.extras["margin"]
        return [ofd_loss(c(s), t, margins(i))
                for i, (c, s, t) in enumerate(zip(ctx.extras["connector"], s_feats, t_feats))]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "ofd": ofd_weight · Σ_i 2^(i−n+1) · ofd_loss_i}``."""
        h = ctx.hparams
        losses = self.distill_losses(ctx)
        distill = sum(w * l for w, l in zip(stage_weights(len(losses)), losses))
        return {"ce": h["ce_weight"] * cross_entropy(ctx), "ofd": h["ofd_weight"] * distill}
