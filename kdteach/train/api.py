"""The two entry points notebooks and the CLI use: :func:`distill` and :func:`train_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import models as kdmodels
from .. import results
from ..data import NUM_CLASSES
from ..methods import get_method
from ..methods.base import Method, Student
from .budgets import Budget, get_budget
from .trainer import RunResult, Trainer, check_pair, model_name


def build_model(arch: str, num_classes: int, seed: int = 0) -> nn.Module:
    """``kdteach.models.create(arch, num_classes)`` with its initialisation seeded by ``seed``.

    The returned model carries ``kd_arch = arch`` (its zoo name, used in run records).
    """
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a model name (str), got {type(arch).__name__}")
    if arch not in kdmodels.MODELS:
        raise ValueError(f"unknown model {arch!r}; available models: {', '.join(kdmodels.list_models())}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = kdmodels.create(arch, num_classes=num_classes)
    model.kd_arch = arch
    return model


def _check_epochs(epochs: Any) -> int | None:
    if epochs is None:
        return None
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive int or None, got {epochs!r}")
    return epochs


def _resolve_method(method: str | Method, hparams: dict | None) -> Method:
    if isinstance(method, Method):
        if hparams:
            return type(method)(**{**dict(method.hparams), **hparams})
        return method
    return get_method(method, **(hparams or {}))


def _distill_chain(m: Method, b: Budget, teacher_budget: Budget, teacher, student, seed: int, progress: bool,
                   verbose: bool) -> RunResult:
    """:func:`distill` for a sequence method: the chain from the cached teacher to the student
    (:func:`kdteach.train.run_chain`); returns the last link (every link is cached and recorded)."""
    from .sequence import run_chain

    if student is not None and not isinstance(student, str):
        raise TypeError(f"method {m.name!r} trains a chain of cached runs from model names; pass student as a "
                        f"model name or None, got {type(student).__name__}")
    teacher_model = None
    if isinstance(teacher, nn.Module):     # a recorded teacher (e.g. the zoo's, as run_experiment passes it)
        teacher_model, teacher = teacher, getattr(teacher, "kd_arch", None)
    elif teacher is not None and not isinstance(teacher, str):
        raise TypeError(f"teacher must be None, a model name or a trained kdteach model, got {type(teacher).__name__}")
    chain = run_chain(m.chain(teacher or b.teacher, student or b.student), m, budget=b, seed=seed,
                      teacher_budget=teacher_budget, teacher_model=teacher_model, progress=progress, verbose=verbose)
    last = chain.links[-1]
    return RunResult(last.model, nn.ModuleDict(), last.record, last.record["history"])


def distill(method: str | Method, *, budget: str | Budget | None = None, teacher: str | nn.Module | None = None,
            student: str | nn.Module | None = None, seed: int = 0, hparams: dict | None = None,
            record: bool = True, progress: bool = True, epochs: int | None = None,
            device: torch.device | str | None = None, checkpoint: str | Path | None = None,
            verbose: bool = True) -> RunResult:
    """Train a student with a distillation method under a budget, and record the run.

    Args:
        method: a registry name (:func:`kdteach.methods.list_methods`, e.g. ``"kd"``) or a Method.
        budget: ``"ci" | "quick" | "gpu" | "paper"``, a Budget, or None for ``KDTEACH_BUDGET``.
        teacher: None for the budget's cached teacher (:func:`kdteach.zoo.teacher`, seed 0), an
            architecture name (cached teacher of that arch), or a trained model.
        student: None for the budget's student architecture, a name, or a model (trained in place).
        seed: seeds the student's initialisation, the extras, the data order and augmentation.
        hparams: overrides of the method's defaults (e.g. ``{"temperature": 8}``).
        record: save the run record in ``KDTEACH_RESULTS``.
        progress: show a progress bar.
        epochs: override the budget's epoch count (schedule and init stages scale with it); the run
            is then recorded under the budget name ``"<budget>-<epochs>ep"``, never pooled with
            the full schedule's runs.
        device: default: CUDA if available.
        checkpoint: file to checkpoint into / resume from.
        verbose: print the cached teacher's one-line summary when it is loaded by name (set False
            in loops over seeds; ``progress`` still controls the bar and the final line).

    Returns:
        :class:`~kdteach.train.trainer.RunResult` ``(student, extras, record, history)``.
    """
    m = _resolve_method(method, hparams)
    b = get_budget(budget)
    b = b.override_epochs(_check_epochs(epochs))              # another schedule: its own budget name
    if m.protocol == "sequence":   # a chain of runs: each link is cached, checkpointed and recorded by run_chain
        if checkpoint is not None or device is not None:
            raise ValueError(f"method {m.name!r} runs a chain whose links checkpoint into the cache on the default "
                             f"device; checkpoint= and device= do not apply (got {checkpoint!r}, {device!r})")
        return _distill_chain(m, b, get_budget(budget), teacher, student, seed, progress, verbose)
    return distill_offline(m, b, teacher=teacher, student=student, seed=seed, record=record, progress=progress,
                           device=device, checkpoint=checkpoint, verbose=verbose, teacher_budget=get_budget(budget))


def distill_offline(m: Method, b: Budget, *, teacher: str | nn.Module | None = None,
                    student: str | nn.Module | None = None, seed: int = 0, record: bool = True, progress: bool = True,
                    device: torch.device | str | None = None, checkpoint: str | Path | None = None,
                    verbose: bool = True, teacher_budget: Budget | None = None) -> RunResult:
    """One run of the trainer: what :func:`distill` does for an offline method, and what each link of
    a chain (:func:`kdteach.train.run_chain`) is. ``m`` is a Method, ``b`` the students' Budget
    (already renamed for an epochs override); ``teacher_budget`` is the one a cached teacher comes
    from (default ``b``). Other arguments as in :func:`distill`."""
    k = NUM_CLASSES[b.dataset]
    if student is None or isinstance(student, str):
        s_model = build_model(student or b.student, k, seed)
    elif isinstance(student, nn.Module):
        s_model = student
    else:
        raise TypeError(f"student must be None, an architecture name or a model, got {type(student).__name__}")
    t_model = None
    if m.needs_teacher:
        if isinstance(teacher, str) and teacher not in kdmodels.MODELS:
            raise ValueError(f"unknown model {teacher!r}; available models: {', '.join(kdmodels.list_models())}")
        if teacher is None or isinstance(teacher, str):
            from .. import zoo
            # check the pair on an untrained teacher before spending time on training/loading one
            check_pair(m, s_model, build_model(teacher or b.teacher, k))
            m.stages(b)
            t_model = zoo.teacher(teacher, budget=teacher_budget or b, progress=progress, verbose=verbose)
        elif isinstance(teacher, nn.Module):
            t_model = teacher
        else:
            raise TypeError(f"teacher must be None, an architecture name or a model, got {type(teacher).__name__}")
    trainer_cls = Trainer
    if m.protocol == "datafree":       # batches from the method's generator (kdteach.train.datafree)
        from .datafree import DataFreeTrainer as trainer_cls
    trainer = trainer_cls(m, s_model, t_model, b, seed=seed, device=device, progress=progress, checkpoint=checkpoint)
    history = trainer.fit()
    rec = trainer.record()
    if record:
        results.save_record(rec)
    if progress:
        print(f"{rec['method']} {rec['student']}: best test accuracy {rec['best_acc']:.2f}% (epoch {rec['best_epoch']}), "
              f"last {rec['last_acc']:.2f}%, {rec['wall_time']:.0f} s", flush=True)
    s_model.eval()
    return RunResult(s_model, trainer.trained_extras(), rec, history)


def train_model(arch: str | None = None, *, budget: str | Budget | None = None, dataset: str | None = None,
                role: str = "student", seed: int = 0, epochs: int | None = None, record: bool = True,
                progress: bool = True, device: torch.device | str | None = None,
                checkpoint: str | Path | None = None) -> RunResult:
    """Train one model alone with cross-entropy: a teacher, or the student-alone baseline.

    Args:
        arch: architecture name; None: the budget's ``teacher`` (role "teacher") or ``student``.
        budget: budget name / Budget / None (``KDTEACH_BUDGET``).
        dataset: override the budget's dataset (``cifar10``/``cifar100``).
        role: ``"teacher"`` (``teacher_epochs`` epochs, record method "teacher") or ``"student"``
            (``epochs`` epochs, record method "student").
        seed: initialisation and data-order seed.
        epochs: override the number of epochs; recorded under the budget name
            ``"<budget>-<epochs>ep"`` (see :func:`distill`).

    Returns:
        :class:`~kdteach.train.trainer.RunResult` with empty extras.
    """
    if role not in ("teacher", "student"):
        raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")
    b = get_budget(budget)
    if dataset is not None and dataset != b.dataset:
        b = b.replace(dataset=dataset)
    if role == "teacher":
        b = b.for_teacher()
    b = b.override_epochs(_check_epochs(epochs))              # another schedule: its own budget name
    arch = arch or (b.teacher if role == "teacher" else b.student)
    model = build_model(arch, NUM_CLASSES[b.dataset], seed)
    trainer = Trainer(Student(), model, None, b, seed=seed, device=device, progress=progress,
                      checkpoint=checkpoint, method_name=role)
    history = trainer.fit()
    rec = trainer.record()
    if record:
        results.save_record(rec)
    model.eval()
    return RunResult(model, trainer.extras, rec, history)


__all__ = ["distill", "train_model", "build_model", "model_name"]
