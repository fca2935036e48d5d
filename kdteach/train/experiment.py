"""The notebook experiment in one call: teacher, student alone and student with a method, per seed.

Section 5 of every notebook compares three things under one budget: the cached teacher, the student
trained alone (cached baseline) and the student trained with the method, for each of the budget's
seeds, reported as mean and spread. :func:`run_experiment` does exactly that through
:func:`kdteach.zoo.teacher`, :func:`kdteach.zoo.student_baseline` and :func:`distill`, so that 50
notebooks do not each re-write the loop, the sanity checks and the schedule rule.

Section 5 reports through one library-made card, :meth:`Experiment.card`: the mechanism check first
(:class:`Mechanism`: the knowledge moved, e.g. the student's attention maps closer to the
teacher's), asserted by :meth:`ResultCard.check`, then the teacher once and, per seed, the
last-epoch accuracy of the student alone and with the method, their difference and the binomial
standard error of one accuracy on the test split. Last-epoch accuracy is the course's one metric:
the best epoch is selected on the test set, so it flatters every method.

Schedule override: with ``epochs``, both students train that many epochs under the budget name
``"<budget>-<epochs>ep"`` (the baseline too, so the comparison stays fair, and the records are never
pooled with the full schedule's); the teacher stays the budget's cached one.
"""

from __future__ import annotations

import math
import html
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from torch import nn

from .. import results
from ..methods import Method
from .api import _check_epochs, _resolve_method, distill
from .budgets import Budget, get_budget
from .runcache import cached_run
from .trainer import RunResult

__all__ = ["Experiment", "Mechanism", "ResultCard", "binomial_se", "run_experiment"]


def binomial_se(accuracy: float, n: int) -> float:
    """Binomial standard error, in points, of an accuracy (percent) measured on ``n`` test images:
    ``100 · sqrt(p (1 − p) / n)`` with ``p = accuracy / 100``. It is the noise of one accuracy from
    the finite test set alone; seed-to-seed spread comes on top.

    Raises:
        ValueError: ``accuracy`` outside [0, 100] or ``n`` < 1.
    """
    if not 0.0 <= float(accuracy) <= 100.0:
        raise ValueError(f"accuracy must be a percentage in [0, 100], got {accuracy!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (test images), got {n!r}")
    p = float(accuracy) / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / n)


@dataclass(frozen=True)
class Mechanism:
    """The mechanism check of a notebook's section 5: a number that says how close a student's
    knowledge is to the teacher's (attention distance, FSP distance, DFV distance, KL to the
    teacher's softened outputs, ...), measured on test images for the student alone and the student
    with the method, per seed.

    Args:
        name: what is measured, e.g. ``"attention distance to the teacher (at_loss, test split)"``.
        alone: seed -> value for the student trained alone.
        method: seed -> value for the student trained with the method.
        lower_is_better: True when a smaller value means closer to the teacher (a distance).
        digits: decimals shown on the card.
        target: what the knowledge is measured against, for the card's verdict (default "the
            teacher"; e.g. "its assistant" for TAKD, "its peer" for DML).
        reference: what ``alone`` was measured on, for the card's column (default "student alone";
            e.g. "deep supervision" for BYOT, whose student alone has no exits to measure).
    """

    name: str
    alone: Mapping[int, float]
    method: Mapping[int, float]
    lower_is_better: bool = True
    digits: int = 4
    target: str = "the teacher"
    reference: str = "student alone"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Mechanism.name must be a non-empty str, got {self.name!r}")
        for which in ("alone", "method"):
            values = getattr(self, which)
            if not isinstance(values, Mapping) or not values:
                raise ValueError(f"Mechanism.{which} must be a non-empty dict seed -> value, got {values!r}")
            bad = {k: v for k, v in values.items() if not math.isfinite(float(v))}
            if bad:
                raise ValueError(f"Mechanism.{which} has non-finite values {bad}")
        if set(self.alone) != set(self.method):
            raise ValueError(f"Mechanism.alone and Mechanism.method must have the same seeds, got "
                             f"{sorted(self.alone)} and {sorted(self.method)}")

    def moved(self, seed: int) -> bool:
        """Whether, for ``seed``, the method's student is closer to the teacher than the student alone."""
        a, m = float(self.alone[seed]), float(self.method[seed])
        return m < a if self.lower_is_better else m > a


@dataclass
class ResultCard:
    """Section 5's card (see :meth:`Experiment.card`); ``str(card)`` is its text, and Jupyter shows
    it as an HTML table. :meth:`check` asserts the mechanism moved for every seed.

    Attributes:
        title: method, setting, budget, models, dataset, test images.
        mechanism: the :class:`Mechanism`.
        teacher_acc: the teacher's last-epoch accuracy (None for a teacher without a record).
        rows: per seed ``{"seed", "alone", "method", "difference"}`` (last-epoch accuracy, %).
        n_test: test images; ``se``: binomial standard error (points) at the students' mean accuracy.
    """

    title: str
    method_label: str
    mechanism: Mechanism
    teacher_acc: float | None
    rows: list[dict]
    n_test: int
    se: float
    lines: list[str] = field(default_factory=list)

    def check(self) -> "ResultCard":
        """Assert that the method moved the mechanism toward the teacher for every seed (the
        notebook's headline claim; nothing is asserted about accuracy). Returns the card."""
        m = self.mechanism
        failed = [s for s in sorted(m.alone) if not m.moved(s)]
        if failed:
            raise AssertionError(f"{m.name}: the {self.method_label} student is not closer to {m.target} than the "
                                 f"{m.reference} for seeds {failed} ({m.reference} {dict(m.alone)}, "
                                 f"{self.method_label} {dict(m.method)})")
        return self

    def _mechanism_table(self) -> tuple[list[str], list[list[str]]]:
        m, d = self.mechanism, self.mechanism.digits
        body = [[str(s), f"{m.alone[s]:.{d}f}", f"{m.method[s]:.{d}f}", f"{m.method[s] - m.alone[s]:+.{d}f}"]
                for s in sorted(m.alone)]
        return ["seed", m.reference, self.method_label, "change"], body

    def _accuracy_table(self) -> tuple[list[str], list[list[str]]]:
        body = [[str(r["seed"]), f"{r['alone']:.2f}", f"{r['method']:.2f}", f"{r['difference']:+.2f}"]
                for r in self.rows]
        if len(self.rows) > 1:
            mean = lambda k: sum(r[k] for r in self.rows) / len(self.rows)
            body.append(["mean", f"{mean('alone'):.2f}", f"{mean('method'):.2f}", f"{mean('difference'):+.2f}"])
        return ["seed", "student alone", self.method_label, "difference"], body

    def _verdict(self) -> str:
        m = self.mechanism
        closer = sum(m.moved(s) for s in m.alone)
        word = "lower" if m.lower_is_better else "higher"
        return f"closer to {m.target} ({word} is closer) for {closer} of {len(m.alone)} seeds"

    def _teacher_line(self) -> str:
        if self.teacher_acc is None:
            return "Teacher: no record"
        return f"Teacher: {self.teacher_acc:.2f}% last-epoch test accuracy"

    def _se_line(self) -> str:
        return (f"Binomial standard error of one accuracy on {self.n_test:,} test images: ±{self.se:.2f} points "
                f"(seed-to-seed spread comes on top)")

    def __str__(self) -> str:
        def table(header, body):
            widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
            out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
            out += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
            return ["  " + line for line in out]

        lines = [self.title, f"Mechanism: {self.mechanism.name}: {self._verdict()}"]
        lines += table(*self._mechanism_table())
        lines += [self._teacher_line(), "Last-epoch test accuracy (%):"]
        lines += table(*self._accuracy_table())
        lines.append(self._se_line())
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def table(header, body):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

        esc = html.escape
        return (f"<div><p><b>{esc(self.title)}</b></p>"
                f"<p><b>Mechanism: {esc(self.mechanism.name)}</b>: {esc(self._verdict())}</p>"
                f"{table(*self._mechanism_table())}<p>{esc(self._teacher_line())}</p>"
                f"<p>Last-epoch test accuracy (%):</p>{table(*self._accuracy_table())}"
                f"<p>{esc(self._se_line())}</p></div>")


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

    @property
    def setting(self) -> str:
        """The hyper-parameters that differ from the method's defaults, e.g. ``"beta=250"`` ("" for none)."""
        from ..methods import METHODS

        hp = self.runs[self.seeds[0]].record["hparams"]
        cls = METHODS.get(self.method)
        defaults = dict(cls.defaults) if cls is not None else {}
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in hp.items() if k not in defaults or defaults[k] != v)

    def card(self, mechanism: Mechanism) -> ResultCard:
        """Section 5's one result card: the mechanism check (mandatory), the teacher once, and per
        seed the last-epoch test accuracy of the student alone and with the method, their
        difference, and the binomial standard error of one accuracy on the test split.

        Args:
            mechanism: the :class:`Mechanism` measured for this experiment's seeds.

        Returns:
            :class:`ResultCard` (display it; call :meth:`ResultCard.check` to assert the mechanism).

        Raises:
            ValueError: ``mechanism`` is not a Mechanism or does not cover exactly :attr:`seeds`.
        """
        from .trainer import budget_splits

        if not isinstance(mechanism, Mechanism):
            raise ValueError(f"mechanism must be a kdteach.train.Mechanism, got {type(mechanism).__name__}")
        if set(mechanism.alone) != set(self.seeds):
            raise ValueError(f"mechanism must give a value for each seed {list(self.seeds)}, got {sorted(mechanism.alone)}")
        rows = [{"seed": s, "alone": self.baselines[s][1]["last_acc"], "method": self.runs[s].record["last_acc"],
                 "difference": self.differences()[s]} for s in self.seeds]
        n_test = len(budget_splits(self.budget)[1])
        mean_alone = sum(r["alone"] for r in rows) / len(rows)
        record = getattr(self.teacher, "kd_record", None)
        first = self.runs[self.seeds[0]].record
        label = self.method + (f" ({self.setting})" if self.setting else "")
        title = (f"{label} · budget {self.budget.name} · {first['teacher'] or 'no teacher'} -> {first['student']} · "
                 f"{first['dataset']} {self.budget.resolution}x{self.budget.resolution} · seeds "
                 f"{', '.join(map(str, self.seeds))}")
        return ResultCard(title=title, method_label=label, mechanism=mechanism,
                          teacher_acc=None if record is None else float(record["last_acc"]), rows=rows,
                          n_test=n_test, se=binomial_se(mean_alone, n_test))


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

    The teacher and the baselines come from the cache (trained on first use); so does each student
    with the method (:func:`kdteach.train.runcache.cached_run`: trained and recorded on first use,
    loaded whenever the same method, hyper-parameters, teacher, seed, recipe and code come again;
    a sequence method's chain links are cached by :func:`kdteach.train.run_chain`). Every record is checked: accuracies
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
    m = _resolve_method(method, hparams)
    if m.protocol == "sequence":       # a chain: run_chain caches every link
        runs = {s: distill(m, budget=student_budget, teacher=teacher, seed=s, progress=progress) for s in seeds}
    else:                              # trained once per recipe, loaded afterwards (kdteach.train.runcache)
        runs = {s: cached_run(m, student_budget, teacher=teacher if m.needs_teacher else None,
                              student=student_budget.student, seed=s, progress=progress)[0] for s in seeds}
    name = runs[seeds[0]].record["method"]
    for s in seeds:
        _check_record(baselines[s][1])
        _check_record(runs[s].record)
    return Experiment(method=name, budget=student_budget, teacher_budget=base, seeds=seeds, teacher=teacher,
                      baselines=baselines, runs=runs)
