"""The notebook experiment in one call: teacher, student alone and student with a method, per seed.

Section 5 of every notebook compares three things under one budget: the cached teacher, the student
trained alone (cached baseline) and the student trained with the method, for each of the budget's
seeds, reported as mean and spread. :func:`run_experiment` does exactly that through
:func:`kdteach.zoo.teacher`, :func:`kdteach.zoo.student_baseline` and :func:`distill`, so that 50
notebooks do not each re-write the loop, the sanity checks and the schedule rule.

Schedule override: with ``epochs``, both students train that many epochs under the budget name
``"<budget>-<epochs>ep"`` (the baseline too, so the comparison stays fair, and the records are never
pooled with the full schedule's); the teacher stays the budget's cached one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from torch import nn

from .. import results
from ..methods import Method
from .api import _check_epochs, distill
from .budgets import Budget, get_budget
from .trainer import RunResult

__all__ = ["Experiment", "run_experiment"]


@dataclass
class Experiment:
    """The outcome of :func:`run_experiment`.

    Attributes:
        method: the method's registry name.
        budget: the budget the students trained under (renamed ``"<budget>-<N>ep"`` for an epochs
            override); ``teacher_budget`` is the one the teacher came from.
        seeds: the seeds, in order.
        teacher: the teacher (eval mode; a cached one carries its record as ``teacher.kd_record``).
        baselines: seed -> (student trained alone, its record).
        runs: seed -> :class:`~kdteach.train.trainer.RunResult` of the student with the method.
    """

    method: str
    budget: Budget
    teacher_budget: Budget
    seeds: tuple[int, ...]
    teacher: nn.Module
    baselines: dict[int, tuple[nn.Module, dict]]
    runs: dict[int, RunResult]

    @property
    def records(self) -> list[dict]:
        """The teacher's record (when it has one: cached teachers do), then the baselines' and the
        runs' records in seed order."""
        teacher = [self.teacher.kd_record] if getattr(self.teacher, "kd_record", None) else []
        return teacher + [self.baselines[s][1] for s in self.seeds] + [self.runs[s].record for s in self.seeds]

    def table(self, metric: str = "last_acc") -> list[dict]:
        """:func:`kdteach.results.comparison_table` of :attr:`records` by method (mean ± std over seeds)."""
        return results.comparison_table(self.records, metric=metric, by=("method",))

    def differences(self, metric: str = "last_acc") -> dict[int, float]:
        """Per seed: the method's ``metric`` minus the student alone's (points)."""
        return {s: self.runs[s].record[metric] - self.baselines[s][1][metric] for s in self.seeds}


def _check_record(rec: dict) -> None:
    for key in ("best_acc", "last_acc"):
        if not 0.0 <= rec[key] <= 100.0:
            raise AssertionError(f"run {rec['run_id']}: {key} = {rec[key]} is not a percentage")
    for epoch in rec["history"]:
        bad = {k: v for k, v in epoch.get("loss", {}).items() if not math.isfinite(v)}
        if bad:
            raise AssertionError(f"run {rec['run_id']}: non-finite loss terms {bad} at epoch {epoch['epoch']}")


def run_experiment(method: str | Method, *, budget: str | Budget | None = None, seeds: Iterable[int] | None = None,
                   teacher: nn.Module | None = None, hparams: dict | None = None, epochs: int | None = None,
                   progress: bool = False) -> Experiment:
    """Teacher, student alone and student with ``method`` under one budget, for every seed.

    The teacher and the baselines come from the cache (trained on first use); each student with the
    method is trained by :func:`distill` and its record saved. Every record is checked: accuracies
    are percentages and every logged loss term is finite. Nothing is asserted about which student
    is better: at small budgets that is within the seed noise.

    Args:
        method: registry name (e.g. ``"kd"``) or a Method.
        budget: name / Budget / None (``KDTEACH_BUDGET``).
        seeds: default the budget's ``seeds``.
        teacher: a trained teacher to use instead of the budget's cached one.
        hparams: the method's hyper-parameter overrides.
        epochs: train both students this many epochs instead of the budget's (see the module doc).
        progress: progress bars.

    Returns:
        :class:`Experiment`.
    """
    from .. import zoo

    base = get_budget(budget)
    student_budget = base.override_epochs(_check_epochs(epochs))   # both students: the same schedule
    seeds = tuple(int(s) for s in (base.seeds if seeds is None else seeds))
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if teacher is None:
        teacher = zoo.teacher(budget=base, progress=progress, verbose=False)
    baselines = {s: zoo.student_baseline(budget=student_budget, seed=s, progress=progress, verbose=False)
                 for s in seeds}
    runs = {s: distill(method, budget=student_budget, teacher=teacher, seed=s, hparams=hparams, progress=progress)
            for s in seeds}
    name = runs[seeds[0]].record["method"]
    for s in seeds:
        _check_record(baselines[s][1])
        _check_record(runs[s].record)
    return Experiment(method=name, budget=student_budget, teacher_budget=base, seeds=seeds, teacher=teacher,
                      baselines=baselines, runs=runs)
