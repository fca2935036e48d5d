"""The comparison dashboard: methods side by side over run records (every notebook's shared footer).

:class:`ComparisonDashboard` compares methods across run records (mean ± std over seeds, test
accuracy curves, a table); :func:`results_dashboard` is the one-call footer of every notebook's
section 7, over the records of one budget. Logic: :func:`select_records`, :func:`summarise`,
:func:`comparison_figure`, :func:`curves_figure` (drawn with :mod:`kdteach.viz`).

Runs with different hyper-parameters are never pooled: a group is its fields plus its setting
(:func:`kdteach.results.settings`), and the setting is part of the bar's label (``kd / temperature=20``).
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

import ipywidgets as widgets
from matplotlib.figure import Figure

from ._common import check_records as _check_records
from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = [
    "METRICS",
    "FILTER_FIELDS",
    "ALL",
    "select_records",
    "grouping",
    "summarise",
    "comparison_figure",
    "curves_figure",
    "ComparisonDashboard",
    "results_dashboard",
]

#: Metrics of a run record the dashboard can compare.
METRICS = ("last_acc", "best_acc", "wall_time")   # last-epoch accuracy first: the course's metric
_METRIC_LABELS = {"best_acc": "best-epoch test accuracy (%, selected on the test set)",
                  "last_acc": "last-epoch test accuracy (%)",
                  "wall_time": "wall time (s)"}
#: Record fields the dashboard filters on (besides the method).
FILTER_FIELDS = ("student", "teacher", "dataset", "budget")
#: Dropdown value meaning "no filter on this field".
ALL = "(all)"


# --------------------------------------------------------------------------------------------
# comparison: pure functions
# --------------------------------------------------------------------------------------------


def _check_metric(metric: Any) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def select_records(records: Iterable[dict], methods: Iterable[str] | str | None = None, **filters: Any) -> list[dict]:
    """The run records of the given methods that pass the filters, in their input order.

    Args:
        records: run records (see :mod:`kdteach.results`).
        methods: method names to keep (a name, a list, or None for all; an empty list keeps none).
        **filters: any of ``student``, ``teacher``, ``dataset``, ``budget``, ``seed``: a value, a
            list/tuple/set of accepted values, or None / ``ALL`` for no filter. A record whose field
            is None (the field does not apply, e.g. the teacher of a student-alone baseline) passes.

    Returns:
        The selected records (the same dict objects).
    """
    records = _check_records(records)
    unknown = sorted(set(filters) - set(FILTER_FIELDS) - {"seed"})
    if unknown:
        raise TypeError(f"select_records got unknown filter(s) {unknown}; expected any of {FILTER_FIELDS + ('seed',)}")
    if isinstance(methods, str):
        methods = (methods,)
    wanted = None if methods is None else set(methods)
    active = {k: v for k, v in filters.items() if v is not None and v != ALL}

    def passes(r: dict) -> bool:
        if wanted is not None and r["method"] not in wanted:
            return False
        for key, want in active.items():
            have = r.get(key)
            if have is None:
                continue
            if isinstance(want, (list, tuple, set, frozenset)) and have not in want:
                return False
            if not isinstance(want, (list, tuple, set, frozenset)) and have != want:
                return False
        return True

    return [r for r in records if passes(r)]


def grouping(records: Iterable[dict]) -> tuple[str, ...]:
    """The fields that define a bar: the method, plus every field of :data:`FILTER_FIELDS` that takes
    more than one (non-None) value among ``records``, so runs of different students, teachers,
    datasets or budgets are never pooled into one mean."""
    records = _check_records(records)
    varying = tuple(f for f in FILTER_FIELDS if len({r.get(f) for r in records if r.get(f) is not None}) > 1)
    return ("method",) + varying


def summarise(records: Iterable[dict], metric: str = "last_acc", by: Sequence[str] | None = None) -> list[dict]:
    """Mean ± std of ``metric`` over seeds, one row per group and hyper-parameter setting; a thin
    layer over :func:`kdteach.results.comparison_table`.

    Args:
        records: run records.
        metric: one of :data:`METRICS`.
        by: fields that define a group; default :func:`grouping` (the method, plus any field that varies).

    Returns:
        Rows sorted by the group fields: the ``by`` fields, ``setting``, ``metric``, ``mean``,
        ``std`` (sample standard deviation, 0 for one run), ``min``, ``max``, ``n``, ``seeds``,
        ``hparams``, ``run_ids``, and ``label`` (the group fields and the setting, when there is
        one, joined by " / ").
    """
    from kdteach.results import comparison_table

    records = _check_records(records)
    metric = _check_metric(metric)
    by = grouping(records) if by is None else tuple(by)
    rows = comparison_table(records, metric=metric, by=by)
    for row in rows:
        row["label"] = _label(row, by)
    return rows


def _label(fields: dict, by: Sequence[str]) -> str:
    """The group label of a table row: its ``by`` fields, then its setting when it has one, joined by " / "."""
    parts = ["none" if fields.get(b) is None else str(fields.get(b)) for b in by]
    if fields.get("setting"):
        parts.append(str(fields["setting"]))
    return " / ".join(parts)


def _record_labels(records: list[dict], by: Sequence[str]) -> dict[str, str]:
    """``run_id`` -> the label of the group (and setting) the record belongs to."""
    from kdteach.results import settings

    setting = settings(records, by)
    return {r["run_id"]: _label({**{b: r.get(b) for b in by}, "setting": setting[r["run_id"]]}, by)
            for r in records}


def comparison_figure(records: Iterable[dict], metric: str = "last_acc", by: Sequence[str] | None = None) -> Figure:
    """Bars of ``metric``: mean ± std over seeds, one horizontal bar per :func:`summarise` row, its
    group label level on the left (drawn by :func:`kdteach.viz.plot_bars`), with every run as a black
    dot on its bar.

    Returns a ``matplotlib.figure.Figure`` with one axes, not registered with pyplot (nothing is
    shown by itself). Raises ValueError when ``records`` is empty.
    """
    from kdteach.viz import plot_bars

    records = _check_records(records)
    if not records:
        raise ValueError("records is empty: nothing to compare")
    metric = _check_metric(metric)
    by = grouping(records) if by is None else tuple(by)
    rows = summarise(records, metric, by)
    fig = plot_bars([r["mean"] for r in rows], [r["std"] for r in rows], [r["label"] for r in rows],
                    ylabel=_METRIC_LABELS[metric], title="mean ± std over seeds (dots: runs)", horizontal=True)
    ax = fig.axes[0]
    counted = {run_id: i for i, row in enumerate(rows) for run_id in row["run_ids"]}
    for r in records:
        if isinstance(r.get(metric), (int, float)) and r["run_id"] in counted:
            ax.plot(r[metric], counted[r["run_id"]], "o", color="black", markersize=3, zorder=3)
    return fig


def curves_figure(records: Iterable[dict], by: Sequence[str] | None = None) -> Figure | None:
    """Test accuracy per epoch of every run (:func:`kdteach.viz.plot_curves`), one line per run
    labelled ``"<group> s<seed>"``; None when no run has a test-accuracy history."""
    from kdteach.viz import plot_curves

    records = _check_records(records)
    by = grouping(records) if by is None else tuple(by)
    labels = _record_labels(records, by)
    histories = {f"{labels[r['run_id']]} s{r.get('seed')}": r.get("history") or [] for r in records}
    if not any(isinstance(h, dict) and h.get("test_acc") is not None for hist in histories.values() for h in hist):
        return None
    return plot_curves(histories, "test_acc", title="test accuracy during training")


# --------------------------------------------------------------------------------------------
# comparison dashboard
# --------------------------------------------------------------------------------------------

class ComparisonDashboard(widgets.VBox):
    """Compare methods across run records: pick methods, filters and a metric, click "Compare".

    Args:
        records: a list of run-record dicts; when None they are read with
            :func:`kdteach.results.load_records` from ``folder``.
        folder: the results folder (default ``KDTEACH_RESULTS``), used when ``records`` is None.

    Attributes (for notebooks and tests): ``methods`` (SelectMultiple), ``student``, ``teacher``,
    ``dataset``, ``budget`` (Dropdowns, ``ALL`` = no filter; also in ``filters``), ``metric``
    (Dropdown of :data:`METRICS`), ``button`` ("Compare"), ``output`` (Output with the figures
    and the table), ``last_table`` (rows of :func:`summarise`), ``last_figure`` (the bar
    chart of :func:`comparison_figure`, None when nothing matched), ``last_curves`` (the test
    accuracy curves of :func:`curves_figure`, or None).
    """

    def __init__(self, records: Iterable[dict] | None = None, folder: Any = None):
        super().__init__()
        if records is None:
            from kdteach.results import load_records

            records = load_records(folder)
        self.records = _check_records(records)
        method_names = sorted({r["method"] for r in self.records})
        self.methods = widgets.SelectMultiple(options=method_names, value=tuple(method_names),
                                              description="methods", rows=max(2, min(8, len(method_names))))
        self.filters = {}
        for field in FILTER_FIELDS:
            values = sorted({str(r[field]) for r in self.records if r.get(field) is not None})
            self.filters[field] = widgets.Dropdown(options=[ALL] + values, value=ALL, description=field)
        self.student, self.teacher = self.filters["student"], self.filters["teacher"]
        self.dataset, self.budget = self.filters["dataset"], self.filters["budget"]
        self.metric = widgets.Dropdown(options=list(METRICS), value="last_acc", description="metric")
        self.button = widgets.Button(description="Compare", button_style="primary")
        self.output = widgets.Output()
        self.last_table: list[dict] = []
        self.last_figure: Figure | None = None
        self.last_curves: Figure | None = None
        self.button.on_click(lambda _button: self.compare())
        controls = widgets.VBox([*self.filters.values(), self.metric, self.button])
        self.children = (widgets.HBox([self.methods, controls]), self.output)
        self.compare()

    def compare(self) -> list[dict]:
        """Recompute the table and figure for the current selection (what the button does)."""
        from kdteach.results import format_table

        selected = select_records(self.records, self.methods.value,
                                  **{field: w.value for field, w in self.filters.items()})
        metric = self.metric.value
        if not selected:
            self.last_table, self.last_figure, self.last_curves = [], None, None
            self.output.outputs = (_html_output("<p>No runs match the selection.</p>",
                                                "No runs match the selection."),)
            return []
        by = grouping(selected)
        rows = summarise(selected, metric, by)
        fig = comparison_figure(selected, metric, by)
        curves = curves_figure(selected, by)
        header = ["group", f"{metric} mean", "std", "n", "seeds"]
        body = [[r["label"], f"{r['mean']:.2f}", f"{r['std']:.2f}", str(r["n"]), ", ".join(map(str, r["seeds"]))]
                for r in rows]
        plain = format_table([{k: r[k] for k in (*by, "setting", "mean", "std", "n", "seeds")} for r in rows])
        self.last_table, self.last_figure, self.last_curves = rows, fig, curves
        outputs = [_figure_output(fig, f"Figure: {metric} by {' / '.join(by)}")]
        if curves is not None:
            outputs.append(_figure_output(curves, "Figure: test accuracy curves"))
        outputs.append(_html_output(_html_table(header, body), plain))
        self.output.outputs = tuple(outputs)
        return rows


def results_dashboard(budget: Any = None, folder: Any = None) -> ComparisonDashboard:
    """The shared footer of every notebook's section 7: a :class:`ComparisonDashboard` over every run
    recorded under one budget (this notebook's runs and those of any other notebook run at it).

    One filter rule for all notebooks: records whose ``budget`` field is the budget's name. Pass
    the budget the notebook's students trained under (``exp.budget``), so a notebook that trains a
    shortened schedule (``"ci-4ep"``) compares with the runs of that schedule.

    Args:
        budget: a :class:`~kdteach.train.Budget`, a budget name, or None (``KDTEACH_BUDGET``).
        folder: the results folder (default ``KDTEACH_RESULTS``).

    Returns:
        The dashboard, already compared once (end the cell with it to display it).
    """
    from kdteach.results import load_records

    if budget is None or not isinstance(budget, str):
        from kdteach.train import get_budget

        budget = get_budget(budget)
    name = budget if isinstance(budget, str) else budget.name
    return ComparisonDashboard(load_records(folder, budget=name))

