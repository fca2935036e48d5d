"""Cached teachers and baseline students: train once, load afterwards.

:func:`teacher` returns a trained teacher, loading it from :func:`kdteach.config.cache_dir` when a
checkpoint for the same (architecture, dataset, budget, seed, recipe) exists, and training and
caching it otherwise. :func:`student_baseline` does the same for the student trained alone (the
baseline of every comparison). :func:`warm` fills the cache for a budget (``make test`` runs it).

The cache key holds the architecture, dataset, budget name, seed and a hash of the recipe (the
budget fields that decide the training, plus the data source and sizes), so changing a budget's
recipe retrains instead of loading a stale model. Files are written to a temp file and renamed
(``os.replace``); a ``fcntl`` lock around training makes a second process (another notebook)
wait and then load what the first one trained.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from . import config
from .data import NUM_CLASSES
from .train.api import build_model, train_model
from .train.budgets import Budget, get_budget, recipe_hash
from .train.trainer import atomic_torch_save, data_signature

CACHE_FORMAT = 1


def _budget_for(budget: str | Budget | None, dataset: str | None) -> Budget:
    b = get_budget(budget)
    if dataset is not None and dataset != b.dataset:
        if dataset not in NUM_CLASSES:
            raise ValueError(f"dataset {dataset!r} is not supported; expected one of {', '.join(NUM_CLASSES)}")
        b = b.replace(dataset=dataset)
    return b


def cache_key(role: str, arch: str, budget: Budget, seed: int) -> str:
    """File stem ``<arch>-<dataset>-<budget>-s<seed>-<hash>`` for a cached ``role`` model.

    The hash covers the recipe that trains it (``budget.teacher_recipe()`` for teachers,
    ``budget.student_recipe()`` for students) and the data (source kind, number of images).
    """
    recipe = budget.teacher_recipe() if role == "teacher" else budget.student_recipe()
    recipe = {**recipe, "arch": arch, "role": role, "data": data_signature(budget)}
    return f"{arch}-{budget.dataset}-{budget.name}-s{seed}-{recipe_hash(recipe)}"


def cache_path(role: str, arch: str, budget: Budget, seed: int) -> Path:
    """Where the cached model lives: ``<cache_dir>/<role>s/<cache_key>.pt``."""
    return config.cache_dir() / f"{role}s" / f"{cache_key(role, arch, budget, seed)}.pt"


@contextlib.contextmanager
def _file_lock(path: Path, verbose: bool):
    """Exclusive ``fcntl`` lock on ``<path>.lock`` (waits for another process holding it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if verbose:
                print(f"waiting for another process that is training {path.stem} ...", file=sys.stderr, flush=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _load(path: Path, arch: str, num_classes: int, extras=None) -> tuple[nn.Module, dict, nn.Module | None]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT or state.get("arch") != arch:
        raise ValueError(f"{path} is not a kdteach cached {arch} (format {CACHE_FORMAT}); delete it to retrain")
    model = build_model(arch, num_classes)
    model.load_state_dict(state["state_dict"])
    model.to(config.default_device())
    model.eval()
    record = state["record"]
    model.kd_test_acc = float(record["last_acc"])
    model.kd_record = record
    trained = None
    if extras is not None:
        if state.get("extras") is None:
            raise ValueError(f"{path} holds no trained extras; delete it to retrain")
        trained = extras(model)
        trained.load_state_dict(state["extras"])
        trained.to(config.default_device(), memory_format=torch.channels_last).eval()
    return model, record, trained


def _save(path: Path, model: nn.Module, arch: str, role: str, num_classes: int, record: dict,
          extras: nn.Module | None = None) -> Path:
    cpu = lambda m: {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
    state = {"format": CACHE_FORMAT, "arch": arch, "role": role, "num_classes": num_classes,
             "key": path.stem, "state_dict": cpu(model), "record": dict(record),
             "extras": None if extras is None else cpu(extras)}
    return atomic_torch_save(state, path)


def save_to_cache(role: str, model: nn.Module, budget: Budget, seed: int, record: dict, arch: str | None = None
                  ) -> Path:
    """Store a trained model as the cached ``role`` (``"teacher"``/``"student"``) of ``budget`` and ``seed``.

    ``record`` is its run record (its ``last_acc`` is what loading reports). The file is written
    atomically; :func:`teacher` / :func:`student_baseline` load it from then on.
    """
    if role not in ("teacher", "student"):
        raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")
    arch = arch or getattr(model, "kd_arch", None)
    if not arch:
        raise ValueError("arch: the model has no kd_arch attribute; pass arch= (its zoo name)")
    return _save(cache_path(role, arch, budget, seed), model, arch, role, NUM_CLASSES[budget.dataset], record)


def cached_model(path: Path, arch: str, num_classes: int, train, *, role: str, label: str, verbose: bool = True,
                 extras=None):
    """Load the model cached at ``path``, or train it with ``train()`` and cache it there first.

    The one caching rule of kdteach (teachers, baselines, distillation runs and the links of a chain):
    an exclusive file lock around training, so a second process waits and then loads; an atomic
    write; the record is stored with the weights.

    Args:
        path: the cache file (``.pt``).
        arch: the model's zoo name (checked when loading).
        num_classes: its classes K.
        train: a callable returning ``(trained model, run record)`` (``(model, record, trained
            extras)`` when ``extras`` is given); called only on a cache miss.
        role: what the model is (``"teacher"``, ``"student"``, ``"run"``, ``"link"``), stored in the file.
        label: what is trained, for the message (e.g. ``"teacher tiny_teacher (cifar10, budget ci, seed 0)"``).
        verbose: print where the model is cached when training it.
        extras: for a run whose trained extra modules are kept too (DML's peers, BYOT's exits, DAFL's
            generator): a callable ``model -> nn.Module`` building their untrained structure, into
            which the cached weights are loaded.

    Returns:
        ``(model, record, source)``: the model in eval mode on the default device (``kd_record``,
        ``kd_test_acc`` and ``kd_arch`` set), its record, and ``"cached"`` or ``"trained in N s"``;
        with ``extras``: ``(model, record, source, trained extras)``.
    """
    source = "cached"
    if not path.is_file():
        with _file_lock(path, verbose):
            if not path.is_file():  # nobody trained it while we waited
                if verbose:
                    print(f"training {label}; cached afterwards in {path}", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                out = train()
                _save(path, out[0], arch, role, num_classes, out[1], out[2] if extras is not None else None)
                source = f"trained in {time.perf_counter() - t0:.0f} s"
    model, record, trained = _load(path, arch, num_classes, extras)
    return (model, record, source) if extras is None else (model, record, source, trained)


def _get_or_train(role: str, arch: str | None, dataset: str | None, budget: str | Budget | None, seed: int,
                  progress: bool | None, verbose: bool) -> tuple[nn.Module, dict]:
    b = _budget_for(budget, dataset)
    arch = arch or (b.teacher if role == "teacher" else b.student)
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a model name (str) or None, got {type(arch).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    build_model(arch, NUM_CLASSES[b.dataset])  # validates the name before any training
    show = verbose if progress is None else progress

    def train():
        result = train_model(arch, budget=b, role=role, seed=seed, progress=show, record=True)
        return result.student, result.record

    model, record, source = cached_model(cache_path(role, arch, b, seed), arch, NUM_CLASSES[b.dataset], train,
                                         role=role, label=f"{role} {arch} ({b.dataset}, budget {b.name}, seed {seed})",
                                         verbose=verbose)
    if verbose:
        print(f"{role} {arch} ({b.dataset}, budget {b.name}, seed {seed}): test accuracy "
              f"{record['last_acc']:.2f}% [{source}]", flush=True)
    return model, record


def teacher(arch: str | None = None, dataset: str | None = None, budget: str | Budget | None = None, seed: int = 0,
            *, progress: bool | None = None, verbose: bool = True) -> nn.Module:
    """A trained teacher: loaded from the cache, or trained (``budget.teacher_epochs``) and cached.

    Args:
        arch: architecture (default: the budget's ``teacher``).
        dataset: default the budget's dataset.
        budget: name / Budget / None (``KDTEACH_BUDGET``).
        seed: initialisation and data-order seed of the teacher.
        progress: progress bar while training (default: on when ``verbose``).
        verbose: print one line with the test accuracy (and where the model came from).

    Returns:
        The model in eval mode on :func:`kdteach.config.default_device`, with attributes
        ``kd_test_acc`` (final test accuracy, percent), ``kd_record`` (its run record) and
        ``kd_arch``.
    """
    return _get_or_train("teacher", arch, dataset, budget, seed, progress, verbose)[0]


def student_baseline(arch: str | None = None, dataset: str | None = None, budget: str | Budget | None = None,
                     seed: int = 0, *, progress: bool | None = None, verbose: bool = True) -> tuple[nn.Module, dict]:
    """The student trained alone (cross-entropy only), cached like :func:`teacher`.

    Returns:
        ``(model, record)``: the trained student (eval mode, ``kd_test_acc`` set) and its run record
        (method ``"student"``).
    """
    return _get_or_train("student", arch, dataset, budget, seed, progress, verbose)


def warm(budget: str | Budget | None = None, seeds: Iterable[int] | None = None, *, progress: bool | None = None,
         verbose: bool = True, runs: bool = True) -> dict:
    """Fill the cache with what the notebooks of ``budget`` share, so that each notebook trains only
    its own method: the default teacher (seed 0); for each of ``seeds`` (default: the budget's, those
    the notebooks run) the student alone, and with ``runs``: the KD student (method ``kd`` at its
    defaults, the reference of the response-based notebooks) and the teacher -> assistant links of
    :data:`kdteach.methods.takd.GRADED_ASSISTANTS` for the budget's pair (the teachers of the
    sequence-protocol notebooks). Runs come from :func:`kdteach.train.run_experiment` /
    :func:`kdteach.train.run_chain`, cached by recipe (:mod:`kdteach.train.runcache`).

    Returns:
        ``{"teacher": test_acc, "students": {seed: test_acc}, "runs": {label: {seed: test_acc}}}``
        (percent; ``runs`` empty without ``runs``).
    """
    from .methods.takd import GRADED_ASSISTANTS
    from .train import run_chain, run_experiment

    b = get_budget(budget)
    seeds = [int(s) for s in (b.seeds if seeds is None else seeds)]
    t = teacher(budget=b, seed=0, progress=progress, verbose=verbose)
    students = {}
    for s in seeds:
        model, record = student_baseline(budget=b, seed=s, progress=progress, verbose=verbose)
        students[s] = record["last_acc"]
    shared: dict[str, dict[int, float]] = {}
    if runs and seeds:
        exp = run_experiment("kd", budget=b, seeds=seeds, teacher=t, progress=bool(progress))
        shared["kd"] = {s: exp.runs[s].record["last_acc"] for s in seeds}
        for a in GRADED_ASSISTANTS.get((b.teacher, b.student), ()):
            # link 1 of TAKD's chain teacher -> a -> student: method "takd" (KD's loss), so its cache key is the
            # one the takd notebook's chains compute (the key leaves out `assistants`, which only names the chain)
            label = f"{b.teacher} -> {a} (takd)"
            shared[label] = {s: run_chain([b.teacher, a], "takd", budget=b, seed=s, teacher_model=t,
                                          progress=bool(progress)).links[1].record["last_acc"] for s in seeds}
        if verbose:
            for label, accs in shared.items():
                print(f"{label}: test accuracy " + ", ".join(f"seed {s} {v:.2f}%" for s, v in accs.items()), flush=True)
    return {"teacher": t.kd_test_acc, "students": students, "runs": shared}


__all__ = ["teacher", "student_baseline", "warm", "cache_key", "cache_path", "save_to_cache", "cached_model"]
