"""What a distillation method is: plain Python, one class per paper, read top to bottom.

A method says

* ``name`` and ``paper`` (the reference), ``defaults``: its hyper-parameters, with the loss weights
  of the CRD benchmark (Tian et al., ICLR 2020, github.com/HobbitLong/RepDistiller) where it has them;
* which features it needs from the student and the teacher (:meth:`Method.student_features`,
  :meth:`Method.teacher_features`: names of :mod:`kdteach.features`, i.e. stage names and
  ``"pool"``; ``preact`` picks pre- or post-activation);
* :meth:`Method.build_extras`: trainable modules of its own (regressors, embeddings), trained with
  the student by the same optimiser;
* :meth:`Method.loss`: a dict of named, already-weighted loss terms for one batch (the trainer adds
  them into ``"total"``);
* :meth:`Method.stages`: the protocol. One ``"main"`` stage by default; two-stage methods (FSP, AB,
  FT in the benchmark) return an ``"init"`` stage first.
* :meth:`Method.heads`: more networks or exits to evaluate every epoch (online and self protocols:
  DML's peers and their ensemble, BYOT's exits); peers and exits are extras, so one optimiser,
  one checkpoint and one resume path cover them.
* :meth:`Method.optimizer` and :meth:`Method.backward`: the optimiser of a stage and how the loss
  terms are back-propagated into it (default: the budget's SGD and one backward pass of the sum);
  DOT supplies an optimiser with two momenta and back-propagates its task and distillation terms
  separately.

The trainer (:mod:`kdteach.train.trainer`) does everything else: data, teacher forward under
``torch.inference_mode()``, feature capture, optimiser, schedule, AMP, history, checkpoints.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StagePlan:
    """One stage of a method's protocol.

    Attributes:
        name: ``"main"`` for the stage that ends with the trained student; ``"init"`` for a first
            stage (e.g. FSP's feature initialisation).
        epochs: number of epochs of this stage (> 0).
        trainable: ``"all"`` (student + extras) or ``"features"`` (student without its classifier
            ``fc``, + extras), as the benchmark's ``init`` stage trains ``get_feat_modules()``.
        schedule: follow the budget's learning-rate schedule over this stage; False keeps the
            budget's initial learning rate constant (the benchmark's init stage).
        teacher: whether this stage needs the teacher's forward pass.
    """

    name: str
    epochs: int
    trainable: str = "all"
    schedule: bool = True
    teacher: bool = True

    def __post_init__(self):
        if self.trainable not in ("all", "features"):
            raise ValueError(f"StagePlan.trainable must be 'all' or 'features', got {self.trainable!r}")
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"StagePlan.epochs must be a positive int, got {self.epochs!r} (stage {self.name!r})")



def init_then_main(method_name: str, init_epochs: int | None, budget, main_teacher: bool) -> list[StagePlan]:
    """The two-stage plan of FSP, FitNets and AB: an ``init`` stage (``trainable="features"``: the
    student without its ``fc``, plus the extras such as regressors or connectors; the budget's initial
    learning rate held constant; with the teacher), then ``main`` over the budget's epochs, as the CRD
    benchmark's ``--init_epochs`` stage and main loop do.

    Args:
        method_name: for the error message.
        init_epochs: the method's ``init_epochs`` hyper-parameter; None takes ``budget.init_epochs``.
        budget: the run's budget (``init_epochs``, ``epochs``).
        main_teacher: whether the ``main`` stage needs the teacher (FitNets' KD stage) or not (FSP, AB).

    Returns:
        ``[StagePlan("init", n, "features", schedule=False), StagePlan("main", budget.epochs, teacher=main_teacher)]``.
    """
    n = init_epochs or budget.init_epochs
    if n < 1:
        raise ValueError(f"method {method_name!r} needs at least one stage-1 epoch (its init stage); budget {budget.name!r} "
                         f"has init_epochs=0 (pass hparams={{'init_epochs': N}})")
    return [StagePlan("init", n, trainable="features", schedule=False, teacher=True),
            StagePlan("main", budget.epochs, teacher=main_teacher)]


def check_init_epochs(method_name: str, value: object) -> None:
    """Validate a two-stage method's ``init_epochs`` hyper-parameter: None (the budget's) or an int >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"hyper-parameter 'init_epochs' of method {method_name!r} (stage-1 epochs) must be None "
                         f"(the budget's init_epochs) or an int >= 1, got {value!r}")


@dataclass
class LossContext:
    """Everything :meth:`Method.loss` may use for one training batch.

    Attributes:
        x: (B, 3, H, W) normalised images.
        y: (B,) int64 labels.
        student_logits: (B, K) student logits (carry gradients).
        teacher_logits: (B, K) teacher logits (no gradients), or None when the stage has no teacher.
        student_features: name -> student feature ((B, C, H, W) stages, (B, D) ``"pool"``).
        teacher_features: name -> teacher feature (no gradients).
        extras: the method's trainable modules (:meth:`Method.build_extras`).
        stage: the current stage name.
        epoch: 0-based epoch within the stage; step: 0-based step within the epoch.
        warmup: distillation warm-up factor in [0, 1] (1 unless the method uses warm-up).
        hparams: the method's hyper-parameters (read-only).
        index: (B,) int64 positions of the batch's images in the training split, for methods with
            :attr:`Method.needs_index` (CRD's memory bank); None otherwise.
    """

    x: torch.Tensor
    y: torch.Tensor
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None
    student_features: Mapping[str, torch.Tensor]
    teacher_features: Mapping[str, torch.Tensor]
    extras: nn.ModuleDict
    stage: str = "main"
    epoch: int = 0
    step: int = 0
    warmup: float = 1.0
    hparams: Mapping[str, Any] = field(default_factory=dict)
    index: torch.Tensor | None = None


def area_rescaled(weight: float, resolution: int, reference: int = 32) -> float:
    """A loss weight chosen at ``reference`` x ``reference`` inputs, moved to ``resolution`` inputs.

    Losses that average over the positions of a feature map (AT's ``at_loss`` is a mean of squared
    differences of unit-norm maps over H·W entries) grow as 1 / (H·W) when the maps shrink: at
    16x16 inputs every stage map has a quarter of the positions it has at 32x32, so the same weight
    makes the term four times larger relative to the cross-entropy. Multiplying the weight by the
    area ratio ``(resolution / reference)**2`` keeps the term's scale: AT's β = 1000 at 32x32
    becomes 250 at the ``ci`` budget's 16x16. This is a documented deviation, not the paper's value;
    notebooks run it as the main ``ci`` experiment and show the paper's value as the contrast.

    Args:
        weight: the weight at ``reference`` (> 0).
        resolution: the input side length used (pixels, > 0).
        reference: the input side length the weight was chosen at (CIFAR: 32).

    Returns:
        ``weight * (resolution / reference) ** 2``.
    """
    for name, value in (("weight", weight), ("resolution", resolution), ("reference", reference)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(weight) * (float(resolution) / float(reference)) ** 2


def cross_entropy(ctx: LossContext) -> torch.Tensor:
    """Task loss: mean cross-entropy of the student logits (B, K) against labels (B,), in float32."""
    return F.cross_entropy(ctx.student_logits.float(), ctx.y)


def stage_names(model: nn.Module, skip_first: bool = False) -> list[str]:
    """Stage feature names of a kdteach model, shallow to deep.

    ``skip_first=True`` drops the stem, which is the CRD benchmark's ``feat[1:-1]`` (its feature
    list is [stem, stage 1, ..., stage n, pool]); ``skip_first=False`` is ``feat[:-1]``.
    """
    stages = getattr(model, "stages", None)
    if not stages:
        raise TypeError(f"{type(model).__name__} declares no stages; feature methods need a kdteach.models model")
    names = [s.name for s in stages]
    return names[1:] if skip_first else names


class Method:
    """Base class of distillation methods (see the module docstring).

    Args:
        **hparams: overrides of :attr:`defaults` (unknown names raise ValueError listing the valid ones).
    """

    #: registry key, e.g. ``"kd"``
    name: str = "method"
    #: the paper, as "Authors, Title, Venue Year (link)"
    paper: str = ""
    #: hyper-parameters and loss weights
    defaults: Mapping[str, Any] = MappingProxyType({})
    #: whether any stage needs a teacher
    needs_teacher: bool = True
    #: capture stage features before their activation (AB, OFD)
    preact: bool = False
    #: scale distillation terms by a linear warm-up over the budget's ``warmup_epochs``
    uses_warmup: bool = False
    #: ``"offline"``: one run of the trainer (peers and exits included); ``"sequence"``: a chain of
    #: runs (:func:`kdteach.train.run_chain`; the method then defines ``chain(teacher, student)``);
    #: ``"datafree"``: batches from the method's generator (:class:`kdteach.train.datafree.DataFreeTrainer`;
    #: the method defines ``build_generator``, ``generator_optimizer``, ``generator_loss``)
    protocol: str = "offline"
    #: the loss needs each training image's position in the split (``ctx.index``): the trainer's loader then
    #: yields it, and the trainer sets :attr:`train_labels` before :meth:`build_extras`
    needs_index: bool = False
    #: (N,) int64 labels of the training split in index order, on the training device, set by the trainer
    #: for methods with ``needs_index`` (None outside one): N sizes CRD's memory bank, the labels pick its
    #: negatives (images of other classes)
    train_labels: torch.Tensor | None = None

    def __init__(self, **hparams: Any):
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "(none)"
            raise ValueError(f"unknown hyper-parameter(s) {unknown} for method {self.name!r}; valid: {valid}")
        merged = dict(self.defaults)
        for key, value in hparams.items():
            default = self.defaults[key]
            if isinstance(default, numbers.Real) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise TypeError(f"hyper-parameter {key!r} of method {self.name!r} must be a finite number, "
                                    f"got {type(value).__name__} {value!r}")
                value = type(default)(value) if isinstance(default, int) and float(value).is_integer() else value
            merged[key] = value
        self.hparams: Mapping[str, Any] = MappingProxyType(merged)
        self.validate_hparams()

    def validate_hparams(self) -> None:
        """Check :attr:`hparams` (override to add constraints); raise ValueError naming the parameter."""
        for key, value in self.hparams.items():
            if (key.endswith("_weight") or key in ("alpha", "beta", "gamma")) and isinstance(value, numbers.Real) \
                    and value < 0:
                raise ValueError(f"hyper-parameter {key!r} of method {self.name!r} must be >= 0, got {value!r}")

    # ------------------------------------------------------------------ features
    def student_features(self, student: nn.Module) -> list[str]:
        """Feature names to capture from the student (default: none)."""
        return []

    def teacher_features(self, teacher: nn.Module) -> list[str]:
        """Feature names to capture from the teacher (default: the student's names)."""
        return self.student_features(teacher)

    def check_models(self, student: nn.Module, teacher: nn.Module | None) -> None:
        """Raise ValueError if the pair cannot be used with this method (override to add checks)."""

    # ------------------------------------------------------------------ extras and protocol
    def build_extras(self, student: nn.Module, teacher: nn.Module | None, budget) -> nn.ModuleDict:
        """Trainable modules of the method (regressors, embeddings); default: none."""
        return nn.ModuleDict()

    def stages(self, budget) -> list[StagePlan]:
        """The protocol for ``budget``: by default one ``"main"`` stage of ``budget.epochs`` epochs."""
        return [StagePlan("main", budget.epochs, teacher=self.needs_teacher)]

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """Named, already-weighted scalar loss terms for one batch (the trainer sums them)."""
        raise NotImplementedError

    def heads(self, x: torch.Tensor, student: nn.Module, extras: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """More predictions to evaluate on the test split after every epoch, besides the student's.

        The extension point of the online and self protocols: a peer network trained in the same run
        (DML), a shallow exit of the student (BYOT), an ensemble of them. The trainer calls it in eval
        mode under ``torch.inference_mode()`` and records each head's test accuracy per epoch in the
        history (``entry["heads"][name]``, percent), so the run record holds every network's curve.

        Args:
            x: (B, 3, H, W) normalised test images.
            student: the student (eval mode); extras: the method's modules (eval mode).

        Returns:
            name -> (B, K) scores whose argmax is the head's prediction (logits or probabilities);
            default ``{}`` (the student is the only network).
        """
        return {}

    # ------------------------------------------------------------------ optimisation
    def optimizer(self, params: list[nn.Parameter], budget, lr: float) -> torch.optim.Optimizer:
        """The optimiser of one training stage (the trainer calls it once per stage, and again on resume
        before loading the checkpointed optimiser state).

        The extension point of a method that brings its own optimiser (DOT). The trainer keeps
        everything else: it sets ``group["lr"]`` of every param group to the budget's schedule at the
        start of each epoch, checkpoints ``optimizer.state_dict()`` and restores it on resume, and
        checks that the optimiser holds exactly ``params`` (student and extras).

        Args:
            params: the trainable parameters of the stage (the student, without its ``fc`` in a
                ``"features"`` stage, then the method's extras), in a fixed order.
            budget: the run's :class:`~kdteach.train.budgets.Budget` (``momentum``, ``weight_decay``).
            lr: the stage's initial learning rate (the budget's ``lr_for`` the student).

        Returns:
            A ``torch.optim.Optimizer`` over exactly ``params``; default ``torch.optim.SGD(params, lr,
            momentum=budget.momentum, weight_decay=budget.weight_decay)`` (the CRD benchmark's).
        """
        return torch.optim.SGD(params, lr=lr, momentum=budget.momentum, weight_decay=budget.weight_decay)

    def backward(self, terms: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Back-propagate one batch's loss terms (:meth:`loss`) into the gradients ``optimizer`` steps on.

        The trainer calls ``optimizer.zero_grad(set_to_none=True)``, then this, then
        ``optimizer.step()``; the terms were already checked to be finite (on the CPU) and recorded.
        Override it together with :meth:`optimizer` when the optimiser needs the terms' gradients
        apart (DOT: the distillation terms' gradient is collected first, then the task terms').

        Args:
            terms: name -> weighted scalar term, as :meth:`loss` returned them (with gradients).
            optimizer: the stage's optimiser (:meth:`optimizer`).

        Default: ``sum(terms.values()).backward()``.
        """
        sum(terms.values()).backward()

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


def paired_stage_names(method_name: str, student: nn.Module, teacher: nn.Module, skip_first: bool
                       ) -> tuple[list[str], list[str]]:
    """Student and teacher stage names paired one to one (benchmark ``feat[1:-1]`` or ``feat[:-1]``).

    Raises:
        ValueError: the two models declare different numbers of stages.
    """
    s, t = stage_names(student, skip_first), stage_names(teacher, skip_first)
    if len(s) != len(t):
        raise ValueError(f"method {method_name!r} pairs student and teacher stages one to one, but the student "
                         f"{type(student).__name__} has {len(s)} ({s}) and the teacher {type(teacher).__name__} "
                         f"has {len(t)} ({t})")
    return s, t


class Student(Method):
    """The student trained alone with cross-entropy: the baseline of every comparison (no teacher)."""

    name = "student"
    paper = "Baseline: the student trained alone with cross-entropy (no distillation)."
    defaults = MappingProxyType({})
    needs_teacher = False

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        """``{"ce": CE(student_logits (B, K), y (B,))}``."""
        return {"ce": cross_entropy(ctx)}


def batch_losses(method: Method, student: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                 *, stage: str = "main", extras: nn.ModuleDict | None = None, epoch: int = 0,
                 index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The loss terms of ``method`` on one batch, outside the trainer (for notebooks and tests).

    Runs the teacher under ``torch.inference_mode()`` and the student with gradients, capturing the
    features the method asks for, exactly as the trainer does for one step.

    Args:
        method: a Method instance.
        student, teacher: kdteach models (teacher may be None for methods without one).
        x: (B, 3, H, W) normalised images; y: (B,) int64 labels.
        stage: which stage's loss to compute (e.g. FSP's ``"init"``).
        extras: the method's extras (default: freshly built with ``build_extras``).
        index: (B,) positions of the images in the training split, for methods with ``needs_index``.

    Returns:
        Named, weighted scalar terms (no ``"total"``); they carry gradients to the student.
    """
    from ..features import capture

    if extras is None:
        extras = method.build_extras(student, teacher, None)
    s_names = list(method.student_features(student))
    t_names = list(method.teacher_features(teacher)) if teacher is not None else []
    t_logits, t_feats = None, {}
    if teacher is not None and method.needs_teacher:
        with capture(teacher, t_names, preact=method.preact) as store, torch.inference_mode():
            t_out = teacher(x)
        t_logits = t_out.clone()
        t_feats = {n: store[n].clone() for n in t_names}
    with capture(student, s_names, preact=method.preact) as store:
        s_logits = student(x)
    s_feats = {n: store[n] for n in s_names}
    ctx = LossContext(x=x, y=y, student_logits=s_logits, teacher_logits=t_logits, student_features=s_feats,
                      teacher_features=t_feats, extras=extras, stage=stage, epoch=epoch, step=0,
                      hparams=method.hparams, index=index)
    return method.loss(ctx)
