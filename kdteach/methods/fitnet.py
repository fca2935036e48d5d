"""FitNets: Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep Nets",
ICLR 2015 (arXiv:1412.6550).

One hidden layer of the teacher, the *hint* layer, supervises one hidden layer of the student, the
*guided* layer, through a trainable *regressor* r that maps the guided output to the hint's shape:

    L_HT = fitnet_loss(r(v_g(x)), u_h(x))          (:func:`kdteach.losses.fitnet_loss`)

Two registry names, because the paper and the widely used benchmark train it differently:

* ``fitnet`` (:class:`FitNet`) is **the paper's two-stage training** (Sec. 2.3, Fig. 1):

  1. ``init``: the student up to the guided layer (W_Guided) and the regressor (W_r) minimise the
     hint loss alone (weight ``hint_weight`` = 1, see below), for ``init_epochs`` epochs (None: the budget's ``init_epochs``, the length the
     CRD benchmark gives its two-stage methods; ``ci``: 3, ``paper``: 30) at the budget's initial
     learning rate held constant (the benchmark's convention for first stages, as :mod:`fsp`).
     The stage's optimiser holds the whole student except ``fc``, but the layers after the guided
     one get no gradient from the hint loss and ``torch.optim.SGD`` leaves parameters without a
     gradient untouched (no step, no weight decay), so only W_Guided and W_r move. Their batch-norm
     running statistics do update in train mode; stage 2 re-estimates them.
  2. ``main``: KD on the whole student, the regressor discarded: the :class:`~kdteach.methods.kd.KD`
     method's terms and weights (``ce_weight`` 0.1, ``kd_weight`` 0.9, T = 4: the benchmark's KD
     command), so ``fitnet`` differs from ``kd`` only by its stage-1 initialisation. The paper's own
     stage-2 KD weighting (its λ schedule) is not reproduced.

* ``fitnet_1stage`` (:class:`FitNet1Stage`) is **the CRD benchmark's single stage** (RepDistiller,
  ``train_student.py --distill hint`` with ``scripts/run_cifar_distill.sh``'s ``-a 0 -b 100``):
  ``L = ce_weight · CE + hint_weight · fitnet_loss`` for the whole schedule, CE weight ``-r`` at its
  default 1, no KD term (``kd_weight`` 0; set it > 0 to add one), hint weight 100.

Stage-1 weight. In a stage with no other term the weight only scales the learning rate. The CRD
benchmark's first stages (``helper/pretrain.py``, FSP, AB and FT) back-propagate their loss without a
weight (FT's is an ``nn.MSELoss()`` like this one), so ``fitnet``'s ``hint_weight`` defaults to 1.
The single stage's 100 balances the hint against the cross-entropy, which stage 1 does not have; used
in stage 1 at the constant learning rate it left the ``ci`` students' first three conv layers with
3-4 times the weight norms of the student trained alone at the end of training (measured, seed 0),
and since batch norm follows them, their effective learning rate in stage 2 (∝ lr / ‖w‖²) was an
order of magnitude smaller; the students ended about 5 points below the student alone.

Which layers: ``hint_layer`` indexes the stage list with the stem at 0 (the benchmark's
``feat[hint_layer]``, default ``--hint_layer 2``), the same index in both models: the second stage
after the stem, the middle of a three-stage CIFAR ResNet, as the paper takes the middle layers.

The regressor (:func:`regressor_spec`, :func:`hint_regressor`) is built from the two stages' declared
channels and strides, so any pair of zoo models works: conv (+ BN + ReLU, the benchmark's
``ConvReg``; the ReLU because the hint is a post-ReLU output and the paper asks r to share u_h's
non-linearity). The paper's shape rule is a kernel k = N_g − N_h + 1 that shrinks the guided map to
the hint's size; with maps of equal size that is the 1x1 conv. A student map r times larger
(r = stride ratio) gets a stride-r conv, a map r times smaller a stride-r transposed conv (r = 2 is
the benchmark's 3x3/2 conv and 4x4/2 transposed conv). A non-integer stride ratio cannot be matched:
:class:`ValueError` naming both models' stages.

Scale: :func:`~kdteach.losses.fitnet_loss` is a mean over entries, so the hint weight does not depend
on the input resolution (no :func:`~kdteach.methods.area_rescaled` factor, unlike AT's β).
"""

from __future__ import annotations

import numbers
from types import MappingProxyType

import torch
from torch import nn

from ..losses import fitnet_loss
from .base import LossContext, Method, StagePlan, check_init_epochs, cross_entropy, init_then_main, stage_names
from .kd import KD

__all__ = ["FitNet", "FitNet1Stage", "regressor_spec", "hint_regressor", "hint_stages"]


def _describe(model: nn.Module) -> str:
    """``resnet8x4 [stem 32ch /1, layer1 64ch /1, ...]``: a model's stages for error messages."""
    from ..train.trainer import model_name

    stages = ", ".join(f"{s.name} {s.channels}ch /{s.stride}" for s in getattr(model, "stages", ()))
    return f"{model_name(model)} [{stages}]"


def _stage_at(model: nn.Module, hint_layer: int, role: str):
    names = stage_names(model, skip_first=False)
    if not 0 <= hint_layer < len(names):
        raise ValueError(f"hint_layer={hint_layer} indexes the {role}'s stages (stem = 0), but the {role} "
                         f"{_describe(model)} has {len(names)}")
    return model.stage(names[hint_layer])


def hint_stages(student: nn.Module, teacher: nn.Module, hint_layer: int = 2):
    """The (guided, hint) :class:`~kdteach.models.Stage` pair: index ``hint_layer`` of each model's stages.

    Raises:
        ValueError: one of the models has fewer stages; the message names both models and their stages.
    """
    s, t = stage_names(student, skip_first=False), stage_names(teacher, skip_first=False)
    if not 0 <= hint_layer < min(len(s), len(t)):
        raise ValueError(f"method 'fitnet' pairs stage hint_layer={hint_layer} (stem = 0) of the student with the same "
                         f"stage of the teacher, but the student {_describe(student)} has {len(s)} stages and the "
                         f"teacher {_describe(teacher)} has {len(t)}; choose a hint_layer below {min(len(s), len(t))}")
    return student.stage(s[hint_layer]), teacher.stage(t[hint_layer])


def regressor_spec(guided, hint, *, student: str = "student", teacher: str = "teacher") -> dict:
    """The regressor's layer for a guided stage and a hint stage, from their channels and strides.

    Rule (module docstring): with r = hint.stride / guided.stride,

    * r = 1 (maps of equal size): ``Conv2d(C_g, C_h, 1)``, the paper's k = N_g − N_h + 1 = 1;
    * integer r > 1 (guided map r times larger): ``Conv2d(C_g, C_h, 2r − 1, stride r, padding r − 1)``
      (r = 2: the benchmark's 3x3, stride 2, padding 1), output side ceil(N_g / r);
    * integer m = 1 / r > 1 (guided map m times smaller): ``ConvTranspose2d(C_g, C_h, k, stride m,
      padding p)`` with k = 2m, p = m / 2 for even m (m = 2: the benchmark's 4x4, stride 2,
      padding 1) and k = m, p = 0 for odd m; output side m · N_g;

    each followed by ``BatchNorm2d(C_h)`` and ``ReLU``.

    Args:
        guided: the student's :class:`~kdteach.models.Stage` (``channels``, ``stride``).
        hint: the teacher's stage.
        student, teacher: model descriptions used in the error message.

    Returns:
        dict with ``kind`` (``"conv"`` or ``"conv_transpose"``), ``in_channels``, ``out_channels``,
        ``kernel``, ``stride``, ``padding``, ``scale`` (hint side / guided side: r for conv, 1/m for
        transposed conv) and ``parameters`` (of conv + BN).

    Raises:
        ValueError: the stride ratio is not an integer either way (no conv maps one size onto the other).
    """
    cg, sg, ch, sh = int(guided.channels), int(guided.stride), int(hint.channels), int(hint.stride)
    if sh % sg == 0:
        r = sh // sg
        kind, kernel, stride, padding, scale = "conv", 2 * r - 1, r, r - 1, 1.0 / r
    elif sg % sh == 0:
        m = sg // sh
        kernel, padding = (2 * m, m // 2) if m % 2 == 0 else (m, 0)
        kind, stride, scale = "conv_transpose", m, float(m)
    else:
        raise ValueError(f"method 'fitnet' cannot regress the student's guided stage {guided.name!r} "
                         f"({cg} channels, stride {sg}) onto the teacher's hint stage {hint.name!r} ({ch} "
                         f"channels, stride {sh}): the strides' ratio is not an integer; student {student}, "
                         f"teacher {teacher}; choose another hint_layer")
    params = cg * ch * kernel * kernel + ch + 2 * ch      # conv weight + bias, BN weight + bias
    return {"kind": kind, "in_channels": cg, "out_channels": ch, "kernel": kernel, "stride": stride,
            "padding": padding, "scale": scale, "parameters": params}


def hint_regressor(guided, hint, **names: str) -> nn.Sequential:
    """The regressor r (conv or transposed conv, BN, ReLU) of :func:`regressor_spec` as a module.

    Input (B, C_g, N_g, N_g) guided features; output (B, C_h, N_h, N_h) in the hint's shape.
    """
    spec = regressor_spec(guided, hint, **names)
    conv = nn.Conv2d if spec["kind"] == "conv" else nn.ConvTranspose2d
    return nn.Sequential(conv(spec["in_channels"], spec["out_channels"], spec["kernel"], stride=spec["stride"],
                              padding=spec["padding"]),
                         nn.BatchNorm2d(spec["out_channels"]), nn.ReLU())


class _Hint(Method):
    """What both FitNets variants share: the two stages, the regressor extra and the hint term."""

    def validate_hparams(self) -> None:
        super().validate_hparams()
        h = self.hparams["hint_layer"]
        if isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 0:
            raise ValueError(f"hyper-parameter 'hint_layer' of method {self.name!r} must be an int >= 0 (the stem "
                             f"is 0), got {h!r}")

    def student_features(self, student) -> list[str]:
        """The guided stage: ``stages[hint_layer]`` of the student."""
        return [_stage_at(student, self.hparams["hint_layer"], "student").name]

    def teacher_features(self, teacher) -> list[str]:
        """The hint stage: ``stages[hint_layer]`` of the teacher."""
        return [_stage_at(teacher, self.hparams["hint_layer"], "teacher").name]

    def check_models(self, student, teacher) -> None:
        guided, hint = hint_stages(student, teacher, self.hparams["hint_layer"])
        regressor_spec(guided, hint, student=_describe(student), teacher=_describe(teacher))

    def build_extras(self, student, teacher, budget) -> nn.ModuleDict:
        """``{"regressor": hint_regressor(guided stage, hint stage)}``."""
        guided, hint = hint_stages(student, teacher, self.hparams["hint_layer"])
        return nn.ModuleDict({"regressor": hint_regressor(guided, hint, student=_describe(student),
                                                          teacher=_describe(teacher))})

    @staticmethod
    def hint_loss(ctx: LossContext) -> torch.Tensor:
        """``fitnet_loss(regressor(v_g), u_h)`` on the captured guided (B, C_g, H, W) and hint features."""
        (guided,), (hint,) = ctx.student_features.values(), ctx.teacher_features.values()
        return fitnet_loss(ctx.extras["regressor"](guided), hint)


class FitNet(_Hint, KD):
    """The paper's two stages: ``init`` (term ``hint``: guided layer + regressor), then ``main`` (KD terms
    ``ce``, ``kd`` on the whole student)."""

    name = "fitnet"
    paper = ("A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, FitNets: Hints for Thin Deep "
             "Nets, ICLR 2015 (https://arxiv.org/abs/1412.6550)")
    defaults = MappingProxyType({**KD.defaults, "hint_weight": 1.0, "hint_layer": 2, "init_epochs": None})

    def validate_hparams(self) -> None:
        super().validate_hparams()
        check_init_epochs(self.name, self.hparams["init_epochs"])

    def stages(self, budget) -> list[StagePlan]:
        """``init`` (stage-1 epochs, features + regressor, constant lr), then ``main`` (KD, the budget's epochs)."""
        return init_then_main(self.name, self.hparams["init_epochs"], budget, main_teacher=True)

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Stage ``init``: ``{"hint": hint_weight · fitnet_loss}``; stage ``main``: KD's ``{"ce", "kd"}``."""
        if ctx.stage == "init":
            return {"hint": ctx.hparams["hint_weight"] * self.hint_loss(ctx)}
        return KD.loss(self, ctx)


class FitNet1Stage(_Hint, KD):
    """The CRD benchmark's single stage: terms ``ce`` and ``hint`` (and ``kd`` when ``kd_weight`` > 0)."""

    name = "fitnet_1stage"
    paper = FitNet.paper + "; single-stage form of the CRD benchmark (github.com/HobbitLong/RepDistiller)"
    defaults = MappingProxyType({"ce_weight": 1.0, "kd_weight": 0.0, "temperature": 4.0, "hint_weight": 100.0,
                                 "hint_layer": 2})

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight · CE, "hint": hint_weight · fitnet_loss}`` (+ KD's ``"kd"`` if ``kd_weight`` > 0)."""
        h = ctx.hparams
        terms = KD.loss(self, ctx) if h["kd_weight"] > 0 else {"ce": h["ce_weight"] * cross_entropy(ctx)}
        terms["hint"] = h["hint_weight"] * self.hint_loss(ctx)
        return terms
