"""Dashboards for the notebooks: ipywidgets over pure functions, so pytest can drive them headlessly.

- :class:`ComparisonDashboard`: compare methods across run records (mean ± std over seeds, test
  accuracy curves, a table). Logic: :func:`select_records`, :func:`summarise`,
  :func:`comparison_figure`, :func:`curves_figure` (drawn with :mod:`kdteach.viz`).
- :class:`KDTemperatureExplorer`: vary the temperature T and the KD weight alpha of Hinton et al.'s
  loss and watch the softened distributions and the loss split. Logic: :func:`kd_explorer_state`.

The widgets never print: figures are rendered to PNG and placed, with the tables, into an
``ipywidgets.Output`` as display data (no matplotlib object reprs reach the notebook).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Iterable, Sequence

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

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
    "kd_explorer_state",
    "KDTemperatureExplorer",
]

#: Metrics of a run record the dashboard can compare.
METRICS = ("best_acc", "last_acc", "wall_time")
_METRIC_LABELS = {"best_acc": "best test accuracy (%)", "last_acc": "last test accuracy (%)",
                  "wall_time": "wall time (s)"}
#: Record fields the dashboard filters on (besides the method).
FILTER_FIELDS = ("student", "teacher", "dataset", "budget")
#: Dropdown value meaning "no filter on this field".
ALL = "(all)"


# --------------------------------------------------------------------------------------------
# comparison: pure functions
# --------------------------------------------------------------------------------------------

def _check_records(records: Any, name: str = "records") -> list[dict]:
    if isinstance(records, dict) or not isinstance(records, Iterable):
        raise TypeError(f"{name} must be a list of run-record dicts, got {type(records).__name__}")
    records = list(records)
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "method" not in r:
            raise TypeError(f"{name}[{i}] must be a run-record dict with a 'method', got {type(r).__name__}")
    return records


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


def summarise(records: Iterable[dict], metric: str = "best_acc", by: Sequence[str] | None = None) -> list[dict]:
    """Mean ± std of ``metric`` over seeds, one row per group; a thin layer over
    :func:`kdteach.results.comparison_table`.

    Args:
        records: run records.
        metric: one of :data:`METRICS`.
        by: fields that define a group; default :func:`grouping` (the method, plus any field that varies).

    Returns:
        Rows sorted by the group fields: the ``by`` fields, ``metric``, ``mean``, ``std`` (sample
        standard deviation, 0 for one run), ``min``, ``max``, ``n``, ``seeds``, and ``label`` (the
        group fields joined by " / ").
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
    """The group label of a record or table row: its ``by`` fields joined by " / "."""
    return " / ".join("none" if fields.get(b) is None else str(fields.get(b)) for b in by)


def comparison_figure(records: Iterable[dict], metric: str = "best_acc", by: Sequence[str] | None = None) -> Figure:
    """Bars of ``metric``: mean ± std over seeds, one bar per :func:`summarise` row (drawn by
    :func:`kdteach.viz.plot_bars`), with every run as a black dot on its bar.

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
                    ylabel=_METRIC_LABELS[metric], title="mean ± std over seeds (dots: runs)")
    ax = fig.axes[0]
    position = {r["label"]: i for i, r in enumerate(rows)}
    for r in records:
        if isinstance(r.get(metric), (int, float)) and _label(r, by) in position:
            ax.plot(position[_label(r, by)], r[metric], "o", color="black", markersize=3, zorder=3)
    return fig


def curves_figure(records: Iterable[dict], by: Sequence[str] | None = None) -> Figure | None:
    """Test accuracy per epoch of every run (:func:`kdteach.viz.plot_curves`), one line per run
    labelled ``"<group> s<seed>"``; None when no run has a test-accuracy history."""
    from kdteach.viz import plot_curves

    records = _check_records(records)
    by = grouping(records) if by is None else tuple(by)
    histories = {f"{_label(r, by)} s{r.get('seed')}": r.get("history") or [] for r in records}
    if not any(isinstance(h, dict) and h.get("test_acc") is not None for hist in histories.values() for h in hist):
        return None
    return plot_curves(histories, "test_acc", title="test accuracy during training")


# --------------------------------------------------------------------------------------------
# display helpers: outputs as data, never printed
# --------------------------------------------------------------------------------------------

def _figure_output(fig: Figure, text: str) -> dict:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": text}}


def _html_output(html_text: str, plain: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": html_text, "text/plain": plain}}


def _html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


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
        self.metric = widgets.Dropdown(options=list(METRICS), value="best_acc", description="metric")
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
        plain = format_table([{k: r[k] for k in (*by, "mean", "std", "n", "seeds")} for r in rows])
        self.last_table, self.last_figure, self.last_curves = rows, fig, curves
        outputs = [_figure_output(fig, f"Figure: {metric} by {' / '.join(by)}")]
        if curves is not None:
            outputs.append(_figure_output(curves, "Figure: test accuracy curves"))
        outputs.append(_html_output(_html_table(header, body), plain))
        self.output.outputs = tuple(outputs)
        return rows


# --------------------------------------------------------------------------------------------
# KD temperature explorer
# --------------------------------------------------------------------------------------------

def _entropy(p: torch.Tensor) -> torch.Tensor:
    """(B,) Shannon entropy in nats of the rows of (B, C) probabilities."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)


def _as_logits(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] < 2:
        raise ValueError(f"{name} must have shape (B, C) with B >= 1 and C >= 2, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}")
    return t.detach()


def kd_explorer_state(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float,
                      alpha: float) -> dict:
    """Everything the KD explorer shows for one (T, alpha): Hinton et al. (2015)'s loss, split.

    total = (1 − alpha) · CE(z_s, y) + alpha · KD, with KD = T² · (1/B) Σ_i KL(p_t,i ‖ p_s,i)
    (:func:`kdteach.losses.kd_loss`) and p = softmax(z / T) (:func:`kdteach.losses.softened_probs`).

    Args:
        student_logits: (B, C) student logits z_s.
        teacher_logits: (B, C) teacher logits z_t.
        labels: (B,) integer class labels y in [0, C).
        temperature: T > 0.
        alpha: KD weight in [0, 1].

    Returns:
        dict with ``temperature``, ``alpha``; ``teacher_probs`` and ``student_probs`` ((B, C) tensors
        at temperature T); ``teacher_entropy`` and ``student_entropy`` (mean over the batch, nats);
        floats ``ce``, ``kd``, ``weighted_ce`` = (1 − alpha)·ce, ``weighted_kd`` = alpha·kd, ``total``.
    """
    from kdteach.losses import kd_loss, softened_probs

    z_s = _as_logits(student_logits, "student_logits")
    z_t = _as_logits(teacher_logits, "teacher_logits")
    if z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    y = torch.as_tensor(labels, device=z_s.device)
    if y.dim() != 1 or y.shape[0] != z_s.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({z_s.shape[0]},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z_s.shape[1]):
        raise ValueError(f"labels must lie in [0, {z_s.shape[1]}), got range [{int(y.min())}, {int(y.max())}]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    temperature, alpha = float(temperature), float(alpha)
    with torch.no_grad():
        p_t = softened_probs(z_t, temperature)
        p_s = softened_probs(z_s, temperature)
        ce = float(F.cross_entropy(z_s.float(), y.long()))
        kd = float(kd_loss(z_s, z_t, temperature))
    return {
        "temperature": temperature, "alpha": alpha,
        "teacher_probs": p_t, "student_probs": p_s,
        "teacher_entropy": float(_entropy(p_t).mean()), "student_entropy": float(_entropy(p_s).mean()),
        "ce": ce, "kd": kd, "weighted_ce": (1.0 - alpha) * ce, "weighted_kd": alpha * kd,
        "total": (1.0 - alpha) * ce + alpha * kd,
    }


class KDTemperatureExplorer(widgets.VBox):
    """Sliders for the temperature T, the KD weight alpha and the example shown; displays the
    softened teacher and student distributions of that example and the loss split
    (1 − alpha)·CE + alpha·KD over the batch (Hinton, Vinyals, Dean 2015).

    Args:
        student_logits: (B, C) student logits.
        teacher_logits: (B, C) teacher logits.
        labels: (B,) integer labels.
        class_names: C class names (figure tick labels).

    Attributes: ``temperature``, ``alpha``, ``sample`` (sliders), ``output`` (Output),
    ``state`` (the latest :func:`kd_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, student_logits: Any, teacher_logits: Any, labels: Any, class_names: Sequence[str],
                 temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self._z_s = _as_logits(student_logits, "student_logits")
        self._z_t = _as_logits(teacher_logits, "teacher_logits")
        self._y = torch.as_tensor(labels)
        class_names = [str(c) for c in class_names]
        if len(class_names) != self._z_s.shape[1]:
            raise ValueError(f"class_names has {len(class_names)} names, expected C = {self._z_s.shape[1]}")
        self.class_names = class_names
        kd_explorer_state(self._z_s, self._z_t, self._y, temperature, alpha)  # validate once, early
        slider = dict(continuous_update=False)  # one update per release, not per pixel dragged
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T", **slider)
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha", **slider)
        self.sample = widgets.IntSlider(value=0, min=0, max=self._z_s.shape[0] - 1, description="example", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.temperature, self.alpha, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.temperature, self.alpha, self.sample]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current slider values (sliders call this)."""
        state = kd_explorer_state(self._z_s, self._z_t, self._y, self.temperature.value, self.alpha.value)
        i = self.sample.value
        fig = Figure(figsize=(11, 3.6))  # fixed margins: a layout engine doubles the draw time
        ax_p, ax_l = fig.subplots(1, 2, width_ratios=[2, 1])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.24, top=0.9, wspace=0.2)
        x = torch.arange(len(self.class_names)).tolist()
        ax_p.bar([v - 0.2 for v in x], state["teacher_probs"][i].tolist(), width=0.4, label="teacher")
        ax_p.bar([v + 0.2 for v in x], state["student_probs"][i].tolist(), width=0.4, label="student")
        ax_p.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_p.set_ylabel(f"softmax(z / T), T = {state['temperature']:g}")
        ax_p.set_title(f"example {i}, label: {self.class_names[int(self._y[i])]}")
        ax_p.legend(fontsize="small")
        parts = ["(1-alpha) CE", "alpha KD", "total"]
        values = [state["weighted_ce"], state["weighted_kd"], state["total"]]
        ax_l.bar(parts, values, color=["tab:gray", "tab:purple", "black"])
        ax_l.set_title(f"loss over the batch, alpha = {state['alpha']:g}")
        summary = (f"T = {state['temperature']:g}, alpha = {state['alpha']:g}: CE = {state['ce']:.4f}, "
                   f"KD = {state['kd']:.4f}, total = {state['total']:.4f}; mean entropy teacher "
                   f"{state['teacher_entropy']:.3f}, student {state['student_entropy']:.3f} nats")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: softened distributions and loss split"),
                               _html_output(f"<p>{html.escape(summary)}</p>", summary))
        return state
