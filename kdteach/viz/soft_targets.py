"""Figures of the understanding_kd notebook: the targets a student is asked to match, and the
per-image gradient scale against the teacher's confidence.

Tang et al., "Understanding and Improving Knowledge Distillation", arXiv:2002.03532 (2020): a
teacher's soft target carries label smoothing, class relationships and a per-image rescaling of the
gradient by how sure the teacher is. :func:`plot_target_distributions` puts the teacher's target next
to targets with some of that removed (:mod:`kdteach.losses.soft_targets`);
:func:`plot_gradient_scale` scatters per-image gradient norms (:func:`kdteach.analysis.kd_gradient_norms`)
against the teacher's probability of the true class.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._common import check_mapping, check_rank, new_figure, to_numpy

__all__ = ["plot_target_distributions", "plot_gradient_scale"]

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:gray")


def plot_target_distributions(targets: Mapping[str, object], class_names: Sequence[str] | None = None,
                              labels: Sequence[int] | None = None, *, row_titles: Sequence[str] | None = None,
                              title: str | None = None) -> Figure:
    """Grouped bars of several target distributions over the classes, one panel per image.

    Args:
        targets: name -> (K,) or (N, K) distributions (tensor or array), all of the same shape, e.g.
            ``{"teacher": p_t, "uniform smoothing": q_ls, "permuted teacher": q_perm}``.
        class_names: optional K names (x tick labels).
        labels: optional N true classes; their tick label is drawn in bold.
        row_titles: optional N panel titles.
        title: optional figure title.

    Returns:
        Figure with N axes, all on the y range [0, max] of the values (one scale for every bar).

    Raises:
        ValueError: empty ``targets``, arrays of different shapes or not (K,)/(N, K), or
            ``class_names`` / ``labels`` / ``row_titles`` of the wrong length.
    """
    check_mapping(targets, "targets")
    arrays = {}
    for name, value in targets.items():
        a = check_rank(to_numpy(value, f"targets[{name!r}]"), f"targets[{name!r}]", (1, 2), "(K,) or (N, K)")
        arrays[str(name)] = a[None] if a.ndim == 1 else a
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"targets must all have the same shape, got {sorted(shapes)}")
    n, k = next(iter(shapes))
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"class_names must have {k} names (one per class), got {len(names)}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have {n} entries (one per row), got {len(labels)}")
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles must have {n} entries (one per row), got {len(row_titles)}")
    top = max(float(a.max()) for a in arrays.values()) * 1.08
    fig = new_figure(n, 1, cell=(max(5.0, 0.55 * k), 2.1))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    width = 0.8 / len(arrays)
    x = np.arange(k)
    for r, ax in enumerate(axes):
        for j, (name, a) in enumerate(arrays.items()):
            ax.bar(x - 0.4 + width * (j + 0.5), a[r], width=width, color=_COLOURS[j % len(_COLOURS)],
                   label=name if r == 0 else None)
        ax.set_ylim(0.0, top)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30 if k > 5 else 0, ha="right" if k > 5 else "center", fontsize=8)
        if labels is not None:
            ax.get_xticklabels()[int(labels[r])].set_fontweight("bold")
        ax.set_ylabel("probability", fontsize=8)
        if row_titles is not None:
            ax.set_title(str(row_titles[r]), fontsize=9)
    axes[0].legend(fontsize=7, ncol=len(arrays), loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


def plot_gradient_scale(confidence: object, gradient_norms: Mapping[str, object],
                        components: Mapping[str, object] | None = None, *, bins: int = 10,
                        title: str | None = None, xlabel: str = "teacher's probability of the true class, T = 1"
                        ) -> Figure:
    """Scatter of per-image gradient sizes against the teacher's confidence, with binned means.

    Args:
        confidence: (N,) the teacher's probability of each image's true class.
        gradient_norms: name -> (N,) per-image gradient norms (e.g. ``{"KD, T = 4": ..., "CE": ...}``
            from :func:`kdteach.analysis.kd_gradient_norms`): the left panel.
        components: optional name -> (N,) per-image components of the gradients on the true class's
            logit (``"kd_target"``, ``"ce_target"``); a right panel draws their negatives, the push
            that a gradient-descent step gives the true class's logit (> 0 raises it).
        bins: number of equal-width confidence bins for the mean lines (>= 1).
        title: optional figure title; xlabel: the x axis label.

    Returns:
        Figure with one or two axes (the panels have their own y scales): a point per image and
        series, and each series' mean per confidence bin (series told apart by colour and line style).

    Raises:
        ValueError: ``confidence`` not (N,), a series of another length, empty ``gradient_norms`` or
            ``components``, or ``bins`` < 1.
    """
    c = check_rank(to_numpy(confidence, "confidence"), "confidence", (1,), "(N,)")
    check_mapping(gradient_norms, "gradient_norms")
    panels = [("whole gradient: L2 norm", "gradient_norms", gradient_norms, False)]
    if components is not None:
        check_mapping(components, "components")
        panels.append(("true class's logit: push = - gradient component", "components", components, True))
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(c, edges) - 1, 0, bins - 1)
    fig = new_figure(1, len(panels), cell=(5.2, 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    styles = ("-", "--", ":", "-.")
    for ax, (panel, arg, series, negate) in zip(axes, panels):
        for j, (name, value) in enumerate(series.items()):
            g = check_rank(to_numpy(value, f"{arg}[{name!r}]"), f"{arg}[{name!r}]", (1,), "(N,)")
            if g.shape != c.shape:
                raise ValueError(f"{arg}[{name!r}] must have {c.shape[0]} values (one per image), got {g.shape[0]}")
            g = -g if negate else g
            colour = _COLOURS[j % len(_COLOURS)]
            ax.scatter(c, g, s=5, alpha=0.3, color=colour, linewidths=0)
            present = [b for b in range(bins) if (which == b).any()]
            ax.plot([(edges[b] + edges[b + 1]) / 2 for b in present], [float(g[which == b].mean()) for b in present],
                    marker="o", ls=styles[j % len(styles)], color=colour, lw=1.8, ms=4, label=name)
        ax.set_xlim(0.0, 1.0)
        if negate:
            ax.axhline(0.0, color="black", lw=0.8)
        else:
            ax.set_ylim(bottom=0.0)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_title(panel, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("per-image gradient w.r.t. the student's logits", fontsize=9)
    axes[0].legend(fontsize=7, title="lines: bin means", title_fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
