"""Figures of OFD (Heo et al., "A Comprehensive Overhaul of Feature Distillation", ICCV 2019): the
per-channel margins of the teacher's stages, and one channel's pre-ReLU responses of teacher and students
with the margin ReLU and the positions the partial L2 ignores. Each function returns a
:class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from matplotlib.figure import Figure

from ._common import check_mapping, check_rank, new_figure, to_numpy

__all__ = ["plot_margins", "plot_preact_response"]


def plot_margins(margins: Mapping[str, object], negative_share: Mapping[str, object] | None = None, *,
                 title: str | None = None) -> Figure:
    """The teacher's OFD margins, one panel per stage, channels sorted by margin (bars).

    Each panel shows the (C,) margins of one stage (:func:`kdteach.losses.ofd_margin`, always < 0) as bars
    sorted from most negative to least, with their mean in the panel title. With ``negative_share`` a
    second axis (right, in [0, 1]) draws, in the same channel order, the share of the channel's pre-ReLU
    responses that are negative (e.g. measured on images, or Φ(−β/|γ|) from the BN): the part the
    teacher's ReLU cuts, where the margin replaces the response. Panels have their own y-scales.

    Args:
        margins: stage name -> (C,) margins.
        negative_share: optional stage name -> (C,) shares in [0, 1] (the same stages and lengths).
        title: optional figure title.

    Returns:
        Figure with one axes per stage (plus their twin axes with ``negative_share``).

    Raises:
        ValueError: no stages, a margin that is not 1-D, or shares for other stages or of other lengths.
    """
    check_mapping(margins, "margins")
    rows = {str(k): check_rank(to_numpy(v, f"margins[{k!r}]"), f"margins[{k!r}]", (1,), "(C,)")
            for k, v in margins.items()}
    shares = None
    if negative_share is not None:
        check_mapping(negative_share, "negative_share")
        shares = {str(k): to_numpy(v, f"negative_share[{k!r}]") for k, v in negative_share.items()}
        if set(shares) != set(rows):
            raise ValueError(f"negative_share must have the stages of margins {sorted(rows)}, got {sorted(shares)}")
        for k, v in shares.items():
            if v.shape != rows[k].shape:
                raise ValueError(f"negative_share[{k!r}] must have shape {rows[k].shape}, got {v.shape}")
    fig = new_figure(1, len(rows), cell=(3.6, 2.8))
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    for ax, (k, m) in zip(axes, rows.items()):
        order = np.argsort(m)
        ax.bar(np.arange(len(m)), m[order], color="tab:blue", width=0.9)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xlabel("channel (sorted by margin)", fontsize=8)
        ax.set_title(f"{k}: {len(m)} channels, mean margin {m.mean():.2f}", fontsize=9)
        ax.set_xticks([])
        if shares is not None:
            twin = ax.twinx()
            twin.plot(np.arange(len(m)), shares[k][order], "o", ms=3, color="tab:red")
            twin.set_ylim(0, 1)
            twin.set_ylabel("share of negative responses", fontsize=8, color="tab:red")
    axes[0].set_ylabel("margin m_c = E[x | x < 0]", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_preact_response(teacher: object, students: Mapping[str, object], margin: float, *,
                         bn: tuple[float, float] | None = None, bins: int = 40, max_points: int = 4000,
                         title: str | None = None, seed: int = 0) -> Figure:
    """One channel's pre-ReLU responses: the teacher's distribution, and each student against the teacher.

    Left: histogram (density) of the teacher's pre-ReLU values, the margin m (dashed) and 0; with ``bn``
    = (γ, β) the Gaussian N(β, γ²) the margin is computed from. Right: one point per position (a random
    subset of at most ``max_points``), teacher value on x, student value on y, one colour per student;
    the target curve max(t, m) of the margin ReLU; the shaded area is where the partial L2 ignores the
    student (s ≤ target ≤ 0), points inside it cost nothing. Both panels share the teacher's x-axis.

    Args:
        teacher: the teacher's values of the channel, any shape (flattened), e.g. (N, h, w).
        students: label -> the (connected) student's values at the same positions, the teacher's shape.
        margin: the channel's margin (< 0 expected).
        bn: optional (γ, β) of the channel's BN.
        bins: histogram bins; max_points: points drawn per student; seed: for the subset.
        title: optional figure title.

    Returns:
        Figure with two axes.

    Raises:
        ValueError: an empty teacher, a student of another size, or a non-finite margin.
    """
    t = to_numpy(teacher, "teacher").ravel()
    if t.size == 0:
        raise ValueError("teacher must not be empty")
    if not math.isfinite(float(margin)):
        raise ValueError(f"margin must be a finite number, got {margin!r}")
    m = float(margin)
    studs = {}
    for k, v in (students or {}).items():
        arr = to_numpy(v, f"students[{k!r}]").ravel()
        if arr.size != t.size:
            raise ValueError(f"students[{k!r}] must have the teacher's {t.size} values, got {arr.size}")
        studs[str(k)] = arr
    fig = new_figure(1, 2, cell=(4.2, 3.2))
    left, right = fig.subplots(1, 2, squeeze=True)
    left.hist(t, bins=bins, density=True, color="tab:gray", alpha=0.7, label="teacher")
    if bn is not None:
        g, b = abs(float(bn[0])), float(bn[1])
        if g > 0:
            xs = np.linspace(t.min(), t.max(), 200)
            left.plot(xs, np.exp(-0.5 * ((xs - b) / g) ** 2) / (g * math.sqrt(2 * math.pi)), color="black", lw=1,
                      label=f"N(beta, gamma^2), beta={b:.2f}, |gamma|={g:.2f}")
    left.axvline(m, color="tab:red", ls="--", label=f"margin {m:.2f}")
    left.axvline(0.0, color="black", lw=0.8)
    left.set_xlabel("teacher pre-ReLU value", fontsize=8)
    left.set_ylabel("density", fontsize=8)
    left.set_title(f"teacher: {100 * float((t < 0).mean()):.0f}% of responses < 0", fontsize=9)
    left.legend(fontsize=7)
    lo, hi = float(min(t.min(), m)), float(t.max())
    rng = np.random.default_rng(seed)
    idx = rng.permutation(t.size)[:max_points]
    ys = [m, hi]
    for k, s in studs.items():
        target = np.maximum(t, m)
        ignored = (s <= target) & (target <= 0)
        right.scatter(t[idx], s[idx], s=3, alpha=0.4, label=f"{k} ({100 * float(ignored.mean()):.0f}% ignored)")
        ys += [float(s.min()), float(s.max())]
    y_lo = min(ys)
    xs = np.linspace(lo, hi, 200)
    target = np.maximum(xs, m)
    right.fill_between(xs, np.full_like(xs, y_lo), target, where=target <= 0, color="tab:green", alpha=0.15,
                       label="ignored: s <= target <= 0")
    right.plot(xs, target, color="tab:red", lw=1.2, label="target max(t, m)")
    right.axhline(0.0, color="black", lw=0.6)
    right.axvline(0.0, color="black", lw=0.6)
    right.set_xlabel("teacher pre-ReLU value t", fontsize=8)
    right.set_ylabel("student value s (after connector)", fontsize=8)
    right.set_title("partial L2: what counts", fontsize=9)
    right.legend(fontsize=7, markerscale=3)
    if title:
        fig.suptitle(title)
    return fig
