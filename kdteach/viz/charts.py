"""Figures of response knowledge and of experiments: softened distributions, class-similarity
matrices, training curves and bar charts. Each function returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import check_mapping, check_rank, new_figure, to_numpy

__all__ = ["plot_softened_distributions", "plot_similarity_matrix", "plot_curves", "plot_bars", "history_values"]

_METRIC_LABELS = {
    "test_acc": "test accuracy",
    "train_acc": "train accuracy",
    "lr": "learning rate",
    "seconds": "seconds",
    "loss": "loss",
}


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    z = z / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def plot_softened_distributions(logits: object, temperatures: Sequence[float] = (1.0, 4.0, 10.0),
                                class_names: Sequence[str] | None = None, *, title: str | None = None) -> Figure:
    """Bar charts of softmax(z / T) for several temperatures (Hinton et al., 2015).

    Larger T flattens the distribution and reveals the "dark knowledge" in the small
    probabilities of the wrong classes.

    Args:
        logits: (C,) logits of one sample or (N, C) of several (tensor or array).
        temperatures: temperatures T > 0, one column each.
        class_names: optional C class names for the x axis.
        title: optional figure title.

    Returns:
        Figure with N x len(temperatures) axes (one row per sample).
    """
    z = check_rank(to_numpy(logits, "logits"), "logits", (1, 2), "(C,) or (N, C)")
    if z.ndim == 1:
        z = z[None]
    temps = list(temperatures) if isinstance(temperatures, (list, tuple, np.ndarray)) else [temperatures]
    if not temps:
        raise ValueError("temperatures must contain at least one temperature")
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not np.isfinite(t) or t <= 0:
            raise ValueError(f"temperatures must be finite numbers > 0, got {t!r} in {list(temps)!r}")
    n, c = z.shape
    if class_names is not None and len(class_names) != c:
        raise ValueError(f"class_names must have {c} names (one per logit), got {len(class_names)}")
    names = [str(x) for x in class_names] if class_names is not None else [str(i) for i in range(c)]
    fig = new_figure(n, len(temps), cell=(max(2.6, 0.32 * c), 2.3))
    axes = fig.subplots(n, len(temps), squeeze=False, sharey=True)
    x = np.arange(c)
    for r in range(n):
        for j, t in enumerate(temps):
            ax = axes[r, j]
            p = _softmax(z[r], float(t))
            ax.bar(x, p, color="tab:blue")
            ax.set_ylim(0.0, 1.0)
            ax.set_xticks(x)
            ax.set_xticklabels(names, rotation=90 if c > 4 else 0, fontsize=7)
            if r == 0:
                ax.set_title(f"T = {t:g}", fontsize=10)
            if j == 0:
                ax.set_ylabel("probability" if n == 1 else f"sample {r}\nprobability", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_similarity_matrix(matrix: object, class_names: Sequence[str] | None = None,
                           title: str = "Class similarity", *, cmap: str = "viridis",
                           annotate: bool | None = None, colorbar_label: str = "similarity") -> Figure:
    """Heat map of a square similarity matrix, e.g. the teacher's mean soft target per class
    (dark knowledge: which classes the teacher finds alike), or a class-similarity matrix.

    Args:
        matrix: (K, K) matrix (row i, column j).
        class_names: optional K names for both axes.
        title: axes title.
        cmap: colour map.
        annotate: write the values in the cells (default: when K <= 10).
        colorbar_label: label of the colour bar.

    Returns:
        Figure with two axes: the heat map and its colour bar.
    """
    m = check_rank(to_numpy(matrix, "matrix"), "matrix", (2,), "(K, K)")
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got shape {m.shape}")
    k = m.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"class_names must have {k} names, got {len(class_names)}")
    if annotate is None:
        annotate = k <= 10
    side = min(9.0, max(3.5, 0.45 * k + 1.5))
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = draw_matrix(ax, m, class_names, annotate=annotate, cmap=cmap)
    ax.set_title(str(title))
    fig.colorbar(image, ax=ax, label=colorbar_label)
    return fig


def draw_matrix(ax, m: np.ndarray, names: Sequence[str] | None = None, *, annotate: bool = False,
                cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None, fmt: str = ".2f"):
    """Draw the square matrix ``m`` (K, K) on ``ax`` as a heat map (the cell of
    :func:`plot_similarity_matrix`, shared with multi-panel figures); returns the image for a colour bar.

    ``names`` label both axes (K names); ``annotate`` writes each value with ``fmt``; ``vmin``/``vmax``
    fix the colour scale (default: the matrix's range).
    """
    k = m.shape[0]
    image = ax.imshow(m, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
    if names is not None:
        ax.set_xticks(range(k))
        ax.set_xticklabels([str(x) for x in names], rotation=90, fontsize=8)
        ax.set_yticks(range(k))
        ax.set_yticklabels([str(x) for x in names], fontsize=8)
    if annotate:
        lo = float(m.min()) if vmin is None else vmin
        hi = float(m.max()) if vmax is None else vmax
        mid = (lo + hi) / 2
        for i in range(k):
            for j in range(k):
                ax.text(j, i, format(m[i, j], fmt), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < mid else "black")
    return image


def history_values(history: Sequence[Mapping], metric: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of ``metric`` from a trainer history (a list of per-epoch dicts).

    ``metric`` is a key of the entries (``"test_acc"``, ``"train_acc"``, ``"lr"``, ``"seconds"``),
    ``"loss"`` (the entry's ``loss`` dict: its ``"total"`` if present, else the sum of its terms;
    or the number itself), or ``"loss.<term>"`` for one term. Entries without it are skipped;
    the x value is the entry's ``epoch`` (else its position, from 1).
    """
    xs, ys = [], []
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise TypeError(f"history entries must be dicts, got {type(entry).__name__} at position {i}")
        value = None
        if metric == "loss" or metric.startswith("loss."):
            loss = entry.get("loss")
            if isinstance(loss, Mapping):
                if metric == "loss":
                    value = loss["total"] if "total" in loss else (sum(loss.values()) if loss else None)
                else:
                    value = loss.get(metric[len("loss."):])
            elif metric == "loss":
                value = loss
        else:
            value = entry.get(metric)
        if value is None:
            continue
        xs.append(float(entry.get("epoch", i + 1)))
        ys.append(float(value))
    return xs, ys


#: beyond this many runs, plot_curves puts one legend beside the axes instead of inside them
_INLINE_LEGEND = 8


def plot_curves(histories_by_label: Mapping[str, Sequence[Mapping]], metric: str | Sequence[str] = "test_acc", *,
                title: str | None = None) -> Figure:
    """Training curves of several runs, one line per run, one axes per metric.

    Args:
        histories_by_label: run label -> trainer history, a list of dicts with keys ``epoch``,
            ``test_acc``, ``train_acc``, ``lr``, ``seconds`` and ``loss`` (a dict of loss terms).
        metric: a metric name or several (see :func:`history_values`), e.g.
            ``("train_acc", "test_acc")`` or ``"loss.kd"``.
        title: optional figure title.

    Returns:
        Figure with one axes per metric.

    Raises:
        ValueError: no run has any value for one of the metrics.
    """
    check_mapping(histories_by_label, "histories_by_label")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"metric must be a metric name or a list of names, got {metric!r}")
    fig = new_figure(1, len(metrics), cell=(4.2, 3.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        drawn = 0
        for label, history in histories_by_label.items():
            if isinstance(history, Mapping) or not isinstance(history, Sequence):
                raise TypeError(f"histories_by_label[{label!r}] must be a list of per-epoch dicts, "
                                f"got {type(history).__name__}")
            xs, ys = history_values(history, m)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=str(label))
                drawn += 1
        if drawn == 0:
            raise ValueError(f"no history in histories_by_label has values for metric {m!r}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_METRIC_LABELS.get(m, m.replace("loss.", "loss: ")))
        ax.grid(alpha=0.3)
        if len(histories_by_label) <= _INLINE_LEGEND:
            ax.legend(fontsize=8)
    if len(histories_by_label) > _INLINE_LEGEND:
        # many runs (a dashboard over a whole budget): one legend beside the axes, the figure grown to hold it
        handles, labels = axes[0].get_legend_handles_labels()
        ncol = 1 + (len(labels) - 1) // 24
        width, height = fig.get_size_inches()
        longest = max(len(lab) for lab in labels)
        fig.set_size_inches(width + ncol * (0.6 + 0.055 * longest), max(height, 0.16 * len(labels) / ncol + 1.0))
        fig.legend(handles, labels, loc="outside right upper", fontsize=6, ncol=ncol)
    if title:
        fig.suptitle(title)
    return fig


def plot_bars(means: Sequence[float], stds: Sequence[float] | None = None, labels: Sequence[str] | None = None,
              ylabel: str = "", *, title: str | None = None, annotate: bool = True,
              horizontal: bool = False) -> Figure:
    """Bar chart of means with optional standard-deviation error bars (e.g. accuracy over seeds).

    Args:
        means: n values.
        stds: n standard deviations, or None for no error bars.
        labels: n bar labels (default: 0..n-1).
        ylabel: label of the value axis (the y axis, or the x axis when ``horizontal``).
        title: optional axes title.
        annotate: write each mean (± std) at the end of its bar.
        horizontal: one bar per row, first at the top, its label written level on the left and the
            figure sized to the longest label and to n, so that long labels (the dashboard's
            ``"takd / tiny_student / tiny_teacher>tiny_assistant"``) are never rotated or cut off.

    Returns:
        Figure with one axes.
    """
    mu = check_rank(to_numpy(means, "means"), "means", (1,), "(n,)")
    n = mu.shape[0]
    sd = None
    if stds is not None:
        sd = check_rank(to_numpy(stds, "stds"), "stds", (1,), "(n,)")
        if sd.shape[0] != n:
            raise ValueError(f"stds must have {n} values like means, got shape {sd.shape}")
        if np.any(sd < 0):
            raise ValueError("stds must be non-negative")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have {n} entries like means, got {len(labels)}")
    names = [str(x) for x in labels] if labels is not None else [str(i) for i in range(n)]
    if horizontal:
        return _plot_bars_horizontal(mu, sd, names, str(ylabel), title, annotate)
    fig = Figure(figsize=(min(12.0, max(3.5, 1.0 * n + 1.5)), 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    ax.bar(x, mu, yerr=sd, capsize=4 if sd is not None else 0, color="tab:blue", alpha=0.85)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_ylabel(str(ylabel))
    if annotate:
        for i in range(n):
            text = f"{mu[i]:.2f}" if sd is None else f"{mu[i]:.2f}±{sd[i]:.2f}"
            top = mu[i] + (sd[i] if sd is not None else 0.0)
            ax.annotate(text, (x[i], top), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    if title:
        ax.set_title(str(title))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _plot_bars_horizontal(mu: np.ndarray, sd: np.ndarray | None, names: list[str], xlabel: str,
                          title: str | None, annotate: bool) -> Figure:
    """:func:`plot_bars` with ``horizontal=True``: bar i at row i from the top."""
    n = mu.shape[0]
    longest = max((len(x) for x in names), default=1)
    # ~0.075 in per label character at the default 10 pt, plus room for the bars and their values
    fig = Figure(figsize=(min(14.0, 4.5 + 0.075 * longest), min(16.0, max(2.2, 0.32 * n + 1.3))),
                 layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(n)
    ax.barh(y, mu, xerr=sd, capsize=3 if sd is not None else 0, color="tab:blue", alpha=0.85)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_ylim(n - 0.5, -0.5)   # first bar at the top
    ax.set_xlabel(xlabel)
    if annotate:
        for i in range(n):
            text = f"{mu[i]:.2f}" if sd is None else f"{mu[i]:.2f}±{sd[i]:.2f}"
            end = mu[i] + (sd[i] if sd is not None else 0.0)
            ax.annotate(text, (end, y[i]), textcoords="offset points", xytext=(3, 0), ha="left", va="center",
                        fontsize=8)
        ax.margins(x=0.18)   # room for the values right of the longest bar
    if title:
        ax.set_title(str(title))
    ax.grid(axis="x", alpha=0.3)
    return fig
