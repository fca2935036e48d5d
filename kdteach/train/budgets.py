"""Compute budgets: one switch that decides how much compute every experiment cell uses.

A :class:`Budget` is a frozen recipe (dataset, resolution, epochs, optimiser, schedule, default
teacher/student pair). Notebooks and the CLI never hand-code these numbers; they call
:func:`get_budget`, which reads ``KDTEACH_BUDGET`` through :func:`kdteach.config.budget_name`.

======  ==========================================================================================
name    intent
======  ==========================================================================================
ci      CPU in CI: offline CIFAR-10 subset at 16x16, tiny_teacher -> tiny_student; one notebook
        experiment (student alone + student with the method) takes about 30-40 s on two cores
        once the teacher is cached (docs/PERFORMANCE.md has the measurements).
quick   default on a CPU: a few minutes per notebook on a laptop (tiny pair at 32x32, 10k images).
gpu     default with CUDA: all of CIFAR-100 at 32x32, resnet32x4 -> resnet8x4, tens of epochs.
paper   the CRD benchmark's recipe (Tian et al., "Contrastive Representation Distillation",
        ICLR 2020; github.com/HobbitLong/RepDistiller): CIFAR-100, 240 epochs, SGD momentum 0.9,
        batch 64, lr 0.05 (0.01 for MobileNetV2/ShuffleNet students) x0.1 at epochs 150/180/210,
        weight decay 5e-4, random crop + flip, resnet32x4 -> resnet8x4, 30 init epochs for
        two-stage methods.
======  ==========================================================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from .. import config

#: Students for which the CRD benchmark lowers the learning rate to 0.01 (``train_student.py``).
SMALL_LR_ARCHS = ("mobilenetv2", "mobile_half", "mobile_full", "shufflev1", "shufflev2",
                  "shufflenetv1", "shufflenetv2")


@dataclass(frozen=True)
class Budget:
    """A training recipe. Epoch numbers are 0-based inside kdteach; ``milestones`` are epochs
    (counted from 0) at which the learning rate is multiplied by ``lr_decay``, so the CRD
    benchmark's "decay after epochs 150, 180, 210" is ``milestones=(150, 180, 210)``.

    Attributes:
        name: budget name (``ci``, ``quick``, ``gpu``, ``paper`` or a custom one).
        dataset: ``cifar10`` or ``cifar100``.
        train_subset: use the first N training images (None: all).
        test_subset: use the first N test images (None: all).
        resolution: image side in pixels (CIFAR is 32; ``ci`` downsamples to 16).
        epochs: student training epochs (the main stage of two-stage methods).
        batch_size: training batch size.
        lr: initial learning rate (SGD).
        lr_small: learning rate for MobileNetV2/ShuffleNet students (benchmark: 0.01), or None.
        schedule: ``"step"`` (multiply by ``lr_decay`` at ``milestones``) or ``"cosine"``.
        milestones: epochs of the step schedule, for ``epochs`` total (scaled for other lengths).
        lr_decay: step schedule factor.
        momentum: SGD momentum.
        weight_decay: SGD weight decay (L2), applied to the student and the method's extras.
        warmup_epochs: linear warm-up of the distillation terms, for methods that ask for it.
        init_epochs: epochs of the first stage of two-stage methods (FSP, AB, FT; benchmark 30).
        teacher: default teacher architecture.
        teacher_epochs: epochs to train a teacher (same optimiser and schedule shape).
        student: default student architecture.
        augment: random crop (padding resolution/8) + horizontal flip for training.
        test_batch_size: evaluation batch size.
        seeds: the seeds a notebook experiment runs (mean and spread over them); not part of the
            training recipe.
    """

    name: str
    dataset: str
    train_subset: int | None
    test_subset: int | None
    resolution: int
    epochs: int
    batch_size: int
    lr: float
    lr_small: float | None
    schedule: str
    milestones: tuple[int, ...]
    lr_decay: float
    momentum: float
    weight_decay: float
    warmup_epochs: int
    init_epochs: int
    teacher: str
    teacher_epochs: int
    student: str
    augment: bool
    test_batch_size: int
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        if self.dataset not in ("cifar10", "cifar100"):
            raise ValueError(f"Budget.dataset must be 'cifar10' or 'cifar100', got {self.dataset!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"Budget.schedule must be 'step' or 'cosine', got {self.schedule!r}")
        for field in ("epochs", "batch_size", "teacher_epochs", "test_batch_size", "resolution"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Budget.{field} must be a positive int, got {value!r}")
        for field in ("warmup_epochs", "init_epochs"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Budget.{field} must be an int >= 0, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"Budget.lr must be > 0, got {self.lr!r}")
        for field in ("train_subset", "test_subset"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Budget.{field} must be None or a positive int, got {value!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "seeds", tuple(int(x) for x in self.seeds))
        if not self.seeds:
            raise ValueError("Budget.seeds must name at least one seed")

    # ------------------------------------------------------------------ schedule
    def lr_for(self, arch: str | None) -> float:
        """Initial learning rate for a student/teacher architecture (0.01-style for MobileNet/ShuffleNet)."""
        if arch is not None and self.lr_small is not None and arch.lower().replace("_", "") in {
                a.replace("_", "") for a in SMALL_LR_ARCHS}:
            return self.lr_small
        return self.lr

    def milestones_for(self, epochs: int) -> tuple[int, ...]:
        """The step milestones scaled proportionally to a run of ``epochs`` epochs."""
        if epochs == self.epochs:
            return self.milestones
        return tuple(sorted({max(1, round(m * epochs / self.epochs)) for m in self.milestones}))

    def lr_at(self, epoch: int, epochs: int, base_lr: float) -> float:
        """Learning rate of 0-based ``epoch`` in a run of ``epochs`` epochs starting at ``base_lr``.

        Step: ``base_lr * lr_decay ** (number of milestones <= epoch)`` (the benchmark's
        ``adjust_learning_rate`` with 1-based epochs). Cosine: ``base_lr * (1 + cos(pi e / E)) / 2``.
        """
        if self.schedule == "step":
            k = sum(1 for m in self.milestones_for(epochs) if epoch >= m)
            return base_lr * self.lr_decay ** k
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))

    def scaled_init_epochs(self, epochs: int) -> int:
        """First-stage epochs of a two-stage method for a main stage of ``epochs`` epochs
        (the benchmark's 30 init epochs per 240, scaled; at least 1)."""
        if self.init_epochs == 0:
            return 0
        if epochs == self.epochs:
            return self.init_epochs
        return max(1, round(self.init_epochs * epochs / self.epochs))

    # ------------------------------------------------------------------ recipes and keys
    def recipe(self) -> dict:
        """The training fields as a JSON-able dict (stored in run records; ``seeds`` left out)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        del d["seeds"]
        return d

    def teacher_recipe(self) -> dict:
        """The fields that decide how a teacher (or any model trained alone) is trained."""
        keys = ("dataset", "train_subset", "test_subset", "resolution", "batch_size", "lr", "lr_small",
                "schedule", "lr_decay", "momentum", "weight_decay", "augment")
        d = {k: getattr(self, k) for k in keys}
        d["epochs"] = self.teacher_epochs
        d["milestones"] = list(self.milestones_for(self.teacher_epochs))
        return d

    def student_recipe(self) -> dict:
        """The fields that decide how a student is trained (teacher fields excluded)."""
        d = self.recipe()
        for k in ("name", "teacher", "teacher_epochs", "student", "test_batch_size"):
            d.pop(k)
        return d

    def for_teacher(self) -> "Budget":
        """This budget with ``epochs`` set to ``teacher_epochs`` (milestones scaled)."""
        return self.with_epochs(self.teacher_epochs)

    def with_epochs(self, epochs: int) -> "Budget":
        """A copy training for ``epochs`` epochs, milestones and init epochs scaled to match, same name
        (e.g. :meth:`for_teacher`). For a user's schedule override use :meth:`override_epochs`."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        if epochs == self.epochs:
            return self
        return dataclasses.replace(self, epochs=epochs, milestones=self.milestones_for(epochs),
                                   init_epochs=self.scaled_init_epochs(epochs))

    def override_epochs(self, epochs: int | None) -> "Budget":
        """This budget, or a copy training ``epochs`` epochs under its own name ``"<name>-<epochs>ep"``.

        Run records are grouped and filtered by budget name, so a shortened (or lengthened) schedule
        must not share the full schedule's name: its runs would be averaged with the full ones.
        :func:`kdteach.train.distill`, :func:`~kdteach.train.train_model` and
        :func:`~kdteach.train.run_experiment` apply their ``epochs`` argument through this method.

        Args:
            epochs: None or this budget's epoch count (returns ``self``), or another positive int.
        """
        if epochs is None or epochs == self.epochs:
            return self
        return dataclasses.replace(self.with_epochs(epochs), name=f"{self.name}-{epochs}ep")

    def replace(self, **changes) -> "Budget":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def recipe_hash(recipe: dict, n: int = 8) -> str:
    """Short stable hash of a JSON-able recipe dict (sorted keys)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


BUDGETS: dict[str, Budget] = {
    # Sized on 2 CPU cores (docs/PERFORMANCE.md) so that a notebook runs in under a minute: teacher
    # ~33 s once (cached), then per run the student alone ~10 s, KD ~16 s, AT ~21 s (two seeds per
    # notebook). The tiny teacher reaches ~57% and the student alone ~50% here.
    "ci": Budget(
        name="ci", dataset="cifar10", train_subset=None, test_subset=None, resolution=16,
        epochs=20, batch_size=128, lr=0.1, lr_small=0.02, schedule="cosine", milestones=(),
        lr_decay=0.1, momentum=0.9, weight_decay=5e-4, warmup_epochs=2, init_epochs=3,
        teacher="tiny_teacher", teacher_epochs=30, student="tiny_student", augment=True,
        test_batch_size=1024, seeds=(0, 1)),
    "quick": Budget(
        name="quick", dataset="cifar10", train_subset=10_000, test_subset=None, resolution=32,
        epochs=20, batch_size=128, lr=0.1, lr_small=0.02, schedule="cosine", milestones=(),
        lr_decay=0.1, momentum=0.9, weight_decay=5e-4, warmup_epochs=2, init_epochs=3,
        teacher="tiny_teacher", teacher_epochs=40, student="tiny_student", augment=True,
        test_batch_size=1024, seeds=(0,)),
    "gpu": Budget(
        name="gpu", dataset="cifar100", train_subset=None, test_subset=None, resolution=32,
        epochs=60, batch_size=128, lr=0.1, lr_small=0.02, schedule="step", milestones=(38, 45, 52),
        lr_decay=0.1, momentum=0.9, weight_decay=5e-4, warmup_epochs=5, init_epochs=8,
        teacher="resnet32x4", teacher_epochs=120, student="resnet8x4", augment=True,
        test_batch_size=1024, seeds=(0, 1, 2)),
    "paper": Budget(
        name="paper", dataset="cifar100", train_subset=None, test_subset=None, resolution=32,
        epochs=240, batch_size=64, lr=0.05, lr_small=0.01, schedule="step", milestones=(150, 180, 210),
        lr_decay=0.1, momentum=0.9, weight_decay=5e-4, warmup_epochs=20, init_epochs=30,
        teacher="resnet32x4", teacher_epochs=240, student="resnet8x4", augment=True,
        test_batch_size=1024, seeds=(0, 1, 2)),
}


def list_budgets() -> list[str]:
    """Names accepted by :func:`get_budget`."""
    return list(BUDGETS)


def get_budget(name: "str | Budget | None" = None) -> Budget:
    """The budget called ``name``; None reads ``KDTEACH_BUDGET`` (:func:`kdteach.config.budget_name`).

    A :class:`Budget` instance is returned unchanged (custom recipes).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if isinstance(name, Budget):
        return name
    if name is None:
        name = config.budget_name()
    if not isinstance(name, str):
        raise TypeError(f"budget must be a name (str), a Budget or None, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; valid budgets: {', '.join(BUDGETS)}")
    return BUDGETS[key]
