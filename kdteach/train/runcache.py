"""Cached runs: a distillation run with the same recipe is trained once and loaded afterwards.

A run of method ``m`` from a trained teacher to a student architecture, under a budget and a seed,
is determined by those inputs and by the code that trains it. :func:`cached_run` keys it by all of
them (:func:`run_key`) and stores the trained student, the method's trained extras (DML's peers,
BYOT's exits, DAFL's generator) and the run record in ``<cache_dir>/runs/<key>.pt`` through
:func:`kdteach.zoo.cached_model`, the one caching rule of kdteach (file lock, atomic write).

Who uses it:

* :func:`kdteach.train.run_experiment`: every notebook's section 5. Re-running a notebook, or a
  second notebook that needs the same run (the kd, cam and takd notebooks all show the KD student
  of the budget), loads it instead of training it again.
* :func:`kdteach.train.run_chain`: each link of a chain is a cached run whose teacher is the link
  before it; a one-link chain ``[teacher, student]`` is the same file as the experiment's run.

The key covers: the teacher's run id (so a retrained teacher retrains its students), every
architecture of the chain up to the student, the method's name and hyper-parameters (except those in
``chain_hparams``, which only choose the architectures), the student recipe, the data, the seed,
and :func:`code_signature` (a hash of the source of the method's module and of the kdteach modules
it takes names from, its losses among them, the method base class and the trainers), so editing the code that trains a run retrains it instead of loading
a stale model. :func:`kdteach.train.distill` (the CLI) never reads this cache: it always trains.
"""

from __future__ import annotations

import hashlib
import inspect
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from torch import nn

from .. import config, results
from ..methods import Method
from .budgets import Budget, recipe_hash
from .trainer import RunResult, data_signature

__all__ = ["code_signature", "run_key", "teacher_key", "link_record", "cached_run"]

_PACKAGE = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def _file_hash(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _source_files(method: Method) -> set[Path]:
    """The method's module, the kdteach modules it takes names from (its losses, helpers, base class:
    one level deep), the trainers and the model definitions."""
    files = set()
    for cls in inspect.getmro(type(method)):               # the method and the kdteach classes it builds on
        module = inspect.getmodule(cls)
        if module is None or not module.__name__.startswith("kdteach."):
            continue
        files.add(Path(module.__file__).resolve())
        for value in vars(module).values():
            dep = value if inspect.ismodule(value) else inspect.getmodule(value)
            if dep is not None and dep.__name__.startswith("kdteach.") and getattr(dep, "__file__", None):
                files.add(Path(dep.__file__).resolve())
    files |= {_PACKAGE / "methods" / "base.py", _PACKAGE / "train" / "trainer.py", _PACKAGE / "train" / "datafree.py",
              _PACKAGE / "features.py", _PACKAGE / "data.py", _PACKAGE / "losses" / "_validate.py"}
    files |= set((_PACKAGE / "models").glob("*.py"))
    return files


def code_signature(method: Method) -> str:
    """Short hash of the source files that decide how ``method`` trains: its module and the kdteach
    modules it takes names from (its losses, one level deep), the method base class, the trainers
    (offline, data-free), the features, the data pipeline and the model definitions."""
    digest = {str(p.relative_to(_PACKAGE)) if p.is_relative_to(_PACKAGE) else p.name:
              _file_hash(str(p), p.stat().st_mtime_ns) for p in sorted(_source_files(method)) if p.is_file()}
    return recipe_hash(digest, 12)


def teacher_key(teacher: nn.Module | None) -> str:
    """The part of a run's key that names its teacher: ``"record-<run id>"`` for a trained kdteach model
    carrying its run record (``kd_record``: the zoo's teachers, cached runs), ``"none"`` for None."""
    if teacher is None:
        return "none"
    record = getattr(teacher, "kd_record", None)
    if not isinstance(record, dict) or "run_id" not in record:
        raise ValueError(f"teacher must be a trained kdteach model carrying its run record (kd_record), as the zoo's "
                         f"teachers and cached runs do; got {type(teacher).__name__} without one")
    return f"record-{record['run_id']}"


def run_key(archs: Sequence[str], method: Method, budget: Budget, seed: int, teacher: str) -> str:
    """File stem ``<student>-<dataset>-<budget>-s<seed>-<hash>`` of the cached run that trains
    ``archs[-1]`` with ``method`` from the teacher named by ``teacher`` (:func:`teacher_key`), which
    was itself trained through ``archs[:-1]`` (``[teacher arch]`` for a direct run). See the module
    doc for what the hash covers."""
    structural = set(getattr(method, "chain_hparams", ()))     # they name the chain, which archs already keys
    hparams = {k: v for k, v in method.hparams.items() if k not in structural}
    payload = {"teacher": teacher, "archs": list(archs), "method": method.name, "hparams": hparams,
               "recipe": budget.student_recipe(), "data": data_signature(budget), "seed": int(seed),
               "code": code_signature(method)}
    return f"{archs[-1]}-{budget.dataset}-{budget.name}-s{seed}-{recipe_hash(payload, 12)}"


def link_record(record: dict, archs: Sequence[str], previous: Sequence[str] = ()) -> dict:
    """Name a run with a teacher as a link of the chain ``archs`` (teacher first, the run's student
    last): ``teacher`` = the architectures before the student joined by ``">"`` (just the teacher's
    architecture for a direct run), the run id recomputed from it, and ``chain`` = ``{"archs": [...],
    "link": len(archs) - 1, "previous": [run ids of the links before]}``. A direct run is link 1 of
    the chain ``[teacher, student]``, so it is the same record whichever of run_experiment and
    run_chain trained it."""
    from .sequence import CHAIN_SEPARATOR

    rec = dict(record)
    rec["teacher"] = CHAIN_SEPARATOR.join(archs[:-1])
    rec["run_id"] = results.make_run_id(rec["method"], rec["student"], rec["teacher"], rec["dataset"], rec["budget"],
                                        rec["seed"], rec["hparams"], rec["recipe"], rec["device"])
    rec["chain"] = {"archs": list(archs), "link": len(archs) - 1, "previous": list(previous)}
    return rec


def cached_run(method: Method, budget: Budget, *, teacher: nn.Module | None, student: str, seed: int,
               archs: Sequence[str] | None = None, progress: bool = False, verbose: bool = False,
               key_teacher: str | None = None, previous: Sequence[str] = (), label: str | None = None
               ) -> tuple[RunResult, str]:
    """The run of ``method`` from the trained ``teacher`` to a new ``student`` (architecture name) under
    ``budget`` and ``seed``: loaded from the cache when it was trained before, else trained by
    :func:`kdteach.train.api.distill_offline` (checkpointed next to the cache file, so a killed run
    resumes), cached and recorded.

    Args:
        method: the Method (hyper-parameters set).
        budget: the student's Budget.
        teacher: a trained teacher carrying its record (``kd_record``), or None for a method without
            a teacher.
        student: the student's architecture name.
        seed: the run's seed.
        archs: the chain that led to this run, teacher first, ``student`` last (default
            ``[teacher's arch, student]``); it only enters the key.
        key_teacher: the teacher part of the key (default :func:`teacher_key` of ``teacher``); a chain
            passes its first teacher's key for every link, since ``archs`` names the links between.
        progress, verbose: progress bar; a line when training starts.
        previous: for link i of a chain, the run ids of links 1 .. i-1 (see :func:`link_record`).
        label: what is trained, for that line.

    Returns:
        ``(RunResult, source)``: the student (eval mode) and the method's extras as trained, the
        record, the history; ``source`` is ``"cached"`` or ``"trained in N s"``. A loaded run's
        record is written to ``KDTEACH_RESULTS`` again if it is missing there (the dashboard reads it).
    """
    from .. import zoo
    from ..data import NUM_CLASSES
    from .api import distill_offline

    if archs is None:
        archs = [getattr(teacher, "kd_arch", "none") if teacher is not None else "none", student]
    if list(archs)[-1] != student:
        raise ValueError(f"archs must end with the student {student!r}, got {list(archs)}")
    k = NUM_CLASSES[budget.dataset]
    key = run_key(archs, method, budget, seed, key_teacher or teacher_key(teacher))
    path = config.cache_dir() / "runs" / f"{key}.pt"
    checkpoint = path.with_name(path.stem + ".ckpt.pt")

    def train():
        run = distill_offline(method, budget, teacher=teacher, student=student, seed=seed, record=False,
                              progress=progress, checkpoint=checkpoint, verbose=False)
        rec = dict(run.record) if teacher is None else link_record(dict(run.record), archs, previous)
        results.save_record(rec)
        checkpoint.unlink(missing_ok=True)     # the run is cached; its training checkpoint is no longer needed
        return run.student, rec, run.extras

    def extras_for(model: nn.Module) -> nn.ModuleDict:
        # the structure of what the run's trainer returned as trained extras (Trainer.trained_extras): the
        # method's extras, plus the generator for the data-free protocol (DataFreeTrainer); weights loaded next
        ex = method.build_extras(model, teacher, budget)
        if method.protocol == "datafree":
            ex["generator"] = method.build_generator(budget, k)
        return ex

    model, record, source, extras = zoo.cached_model(
        path, student, k, train, role="run", verbose=verbose, extras=extras_for,
        label=label or f"{method.name} {student} (from {archs[-2] if len(archs) > 1 else 'none'}, seed {seed})")
    if source == "cached" and not (config.results_dir() / f"{record['run_id']}.json").is_file():
        results.save_record(record)
    return RunResult(model, extras, record, record["history"]), source
