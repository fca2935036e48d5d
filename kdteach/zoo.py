"""Cached teachers and baseline students: train once, load afterwards.

:func:`teacher` returns a trained teacher, loading it from :func:`kdteach.config.cache_dir` when a
checkpoint for the same (architecture, dataset, budget, seed, recipe) exists, and training and
caching it otherwise. :func:`student_baseline` does the same for the student trained alone (the
baseline of every comparison). :func:`warm` fills the cache for a budget (``make test`` runs it).
:func:`import_teacher` puts a published CRD-benchmark teacher (``kdteach zoo import FILE --arch NAME``)
where :func:`teacher` finds it.

The cache key holds the architecture, dataset, budget name, seed and a hash of the recipe (the
budget fields that decide the training, plus the data source and sizes), so changing a budget's
recipe retrains instead of loading a stale model. Files are written to a temp file and renamed
(``os.replace``); a ``fcntl`` lock around training makes a second process (another notebook)
wait and then load what the first one trained.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import math
import os
import re
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
        acc = record["last_acc"]
        source = "imported from " + record["recipe"]["imported_from"] if record.get("imported") else source
        print(f"{role} {arch} ({b.dataset}, budget {b.name}, seed {seed}): test accuracy "
              f"{'not measured' if math.isnan(acc) else f'{acc:.2f}%'} [{source}]", flush=True)
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


#: The CRD benchmark's published CIFAR-100 teachers (HobbitLong/RepDistiller,
#: ``scripts/fetch_pretrained_teachers.sh``, files ``<name>_vanilla/ckpt_epoch_240.pth``): kdteach name ->
#: (the benchmark's name, the teacher's CIFAR-100 test accuracy in percent as the benchmark's README reports it
#: in its "Benchmark Results on CIFAR-100" tables).
PUBLISHED_TEACHERS: dict[str, tuple[str, float]] = {
    "wrn_40_2": ("wrn_40_2", 75.61), "resnet56": ("resnet56", 72.34), "resnet110": ("resnet110", 74.31),
    "resnet32x4": ("resnet32x4", 79.42), "vgg13": ("vgg13", 74.64), "resnet50": ("ResNet50", 79.34),
}

_IMPORT_WRAPPERS = ("model", "state_dict")   # {"model": sd, ...} (the benchmark), {"state_dict": sd, ...}


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ``{key: tensor}`` state dict inside the file at ``path``, loaded with ``weights_only=True``.

    Accepts a bare state dict and the checkpoint dicts ``{"model": state_dict, ...}`` /
    ``{"state_dict": state_dict, ...}``; ``module.`` prefixes (DataParallel) are removed
    (:func:`kdteach.models.compat._unwrap`). Anything else is a ValueError naming the file.
    """
    import argparse
    import pickle

    from .models.compat import _unwrap

    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise ValueError(f"{path} is not a PyTorch checkpoint (neither torch.save's zip archive nor a legacy pickle)")
    try:
        # the benchmark's *_last.pth also stores its argparse options (a Namespace of numbers and strings)
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        text = str(exc)
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s*Please use|\s*Check the documentation|$)", text, re.S)
        reason = " ".join((found.group(1) if found else (text.strip() or type(exc).__name__).splitlines()[0]).split())
        reason = reason.split(". ")[0]
        raise ValueError(f"{path} is not a PyTorch checkpoint that loads with weights_only=True "
                         f"({reason[:200]})") from None
    if isinstance(obj, dict):
        inner = next((obj[k] for k in _IMPORT_WRAPPERS if isinstance(obj.get(k), dict)), obj)
        if inner and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in inner.items()):
            return _unwrap(inner)
    keys = f"keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else type(obj).__name__
    raise ValueError(f"{path} holds no state dict (expected {{'model': state_dict, ...}} or a bare "
                     f"{{name: tensor}} state dict; found {keys})")


@functools.lru_cache(maxsize=4)
def _zoo_shapes(num_classes: int) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{model name: {state_dict key: shape}}`` of every zoo model with ``num_classes`` classes (built
    once per process, on the meta device: no memory, no initialisation)."""
    from . import models as kdmodels

    out = {}
    for name in kdmodels.list_models():
        with torch.device("meta"):
            own = kdmodels.create(name, num_classes=num_classes).state_dict()
        out[name] = {k: tuple(v.shape) for k, v in own.items()}
    return out


def _fitting_archs(state_dict: dict[str, torch.Tensor], num_classes: int) -> list[str]:
    """Zoo models whose parameter names and shapes are exactly those of ``state_dict``."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    return [name for name, own in _zoo_shapes(num_classes).items() if own == shapes]


def _published_note(arch: str) -> str:
    if arch not in PUBLISHED_TEACHERS:
        return "the benchmark publishes no teacher of this architecture"
    name, acc = PUBLISHED_TEACHERS[arch]
    return f"the CRD benchmark reports {acc:.2f}% for its {name} (RepDistiller README)"


def import_teacher(path: str | os.PathLike, arch: str, dataset: str = "cifar100", budget: str | Budget | None = "paper",
                   seed: int = 0, *, evaluate: bool = True, verbose: bool = True) -> nn.Module:
    """Load a CRD-benchmark (or any kdteach-compatible) checkpoint and register it as the cached teacher.

    The published CIFAR-100 teachers of the CRD benchmark (Tian et al., "Contrastive Representation
    Distillation", ICLR 2020; :data:`PUBLISHED_TEACHERS`) then serve :func:`teacher` and
    ``kdteach distill --budget paper`` instead of a 240-epoch training run.

    Steps: ``torch.load(path, weights_only=True)``; take the state dict out of a benchmark checkpoint
    ``{"model": state_dict, "epoch": ..., ...}`` or use a bare state dict; drop ``module.`` prefixes; check
    every key and shape against ``arch`` (:func:`kdteach.models.load_benchmark_state_dict`; nothing is
    loaded unless all fit); evaluate top-1 accuracy on the dataset's test split at the budget's
    resolution when the data are present; write the teacher atomically to
    :func:`cache_path` ``("teacher", arch, budget, seed)`` (replacing a trained one).

    Args:
        path: the checkpoint file (e.g. ``resnet56_vanilla/ckpt_epoch_240.pth``).
        arch: its kdteach architecture (:func:`kdteach.models.list_models`; the benchmark's names such
            as ``"ResNet50"`` or ``"vgg13_bn"`` are accepted too, see :func:`kdteach.models.kdteach_name`).
        dataset: ``"cifar100"`` (the published teachers) or ``"cifar10"``; decides the classes K.
        budget: the budget whose cached teacher it becomes (default ``"paper"``).
        seed: the teacher seed it is registered under (:func:`teacher` and ``distill`` use seed 0).
        evaluate: measure the test accuracy (skipped, with a note, when the dataset is not present).
        verbose: print the measured accuracy next to the published one.

    Returns:
        The teacher (eval mode, default device) with ``kd_arch``, ``kd_record`` and ``kd_test_acc``
        (the measured top-1 accuracy in percent; NaN when it was not measured).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a checkpoint, holds no state dict, or does not fit ``arch`` (the
            message names the first mismatching key with both shapes, and the zoo models it fits).
    """
    from . import data as kdata
    from .models import MODELS, kdteach_name, load_benchmark_state_dict
    from .models.compat import first_mismatch
    from .results import new_record
    from .train.trainer import top1_accuracy

    if not isinstance(arch, str):
        raise TypeError(f"arch must be a model name (str), got {type(arch).__name__}")
    if arch not in MODELS:
        try:
            arch = kdteach_name(arch)
        except ValueError:
            build_model(arch, 10)  # raises the zoo's "unknown model ..., available models: ..." error
    b = _budget_for(budget, dataset)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    path = Path(path)
    k = NUM_CLASSES[b.dataset]
    state_dict = _read_checkpoint(path)
    model = build_model(arch, k)
    first = first_mismatch(model, state_dict)
    if first is not None:
        fits = _fitting_archs(state_dict, k)
        hint = f"it fits {', '.join(fits)}" if fits else f"it fits no zoo model with {k} classes"
        raise ValueError(f"{path} is not a {arch} checkpoint for {b.dataset} ({hint}); first mismatch: "
                         f"{first.replace('vs model', 'vs ' + arch)}")
    load_benchmark_state_dict(model, state_dict)
    model.to(config.default_device()).eval()
    acc, n_test, where = float("nan"), 0, "not measured (evaluate=False)"
    if evaluate:
        try:
            split = kdata.load_split(b.dataset, train=False)
        except kdata.DatasetNotFoundError:
            where = f"not measured: no {b.dataset} test split here (see README, 'Getting CIFAR')"
        else:
            if split.resolution != b.resolution:
                split = split.resized(b.resolution)
            loader = kdata.DeviceLoader(split, b.test_batch_size, config.default_device(), train=False)
            acc, n_test = top1_accuracy(model, loader), len(split)
            where = f"{acc:.2f}% on {n_test:,} test images ({split.source})"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = new_record(method="teacher", teacher=None, student=arch, dataset=b.dataset, budget=b.name, seed=seed,
                        hparams={}, recipe={"imported_from": path.name, "sha256": digest,
                                            "published_acc": PUBLISHED_TEACHERS.get(arch, (None, None))[1]},
                        history=[{"epoch": 0, "test_acc": acc, "seconds": 0.0, "test_images": n_test}],
                        wall_time=0.0, device=str(config.default_device()))
    record["imported"] = True
    target = cache_path("teacher", arch, b, seed)
    with _file_lock(target, verbose):
        _save(target, model, arch, "teacher", k, record)
    model.kd_arch, model.kd_record, model.kd_test_acc = arch, record, acc
    if verbose:
        print(f"imported {arch} ({b.dataset}) from {path}: test accuracy {where}; {_published_note(arch)}. "
              f"Cached as the budget-{b.name} teacher (seed {seed}) in {target}", flush=True)
    return model


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


__all__ = ["teacher", "student_baseline", "warm", "import_teacher", "PUBLISHED_TEACHERS", "cache_key", "cache_path",
           "save_to_cache", "cached_model"]
