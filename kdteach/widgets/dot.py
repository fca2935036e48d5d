"""The DOT momentum explorer (section 7 of the dot notebook): one momentum or two, on a 2-D toy.

A parameter w in R² is trained on two quadratic losses, a task loss and a distillation loss,

    L_task(w) = ½ Σ_i c_i (w_i − a_i)²,        L_distill(w) = ½ Σ_i d_i (w_i − b_i)²,

from the same start, by SGD with one momentum μ on L_task + L_distill (``torch.optim.SGD``) and by
DOT (:class:`kdteach.optim.DistillationOrientedSGD`: two backward passes, momentum μ − Δ on
the task gradient and μ + Δ on the distillation gradient). The reader moves Δ, the learning rate,
the number of steps and an optional gradient noise (a seeded stand-in for mini-batch noise) and
sees both trajectories on the contours of the summed loss and both losses step by step. The logic
is :func:`dot_toy_state` (pure, tested); :func:`dot_toy_figure` draws it; nothing is trained.

What it shows. With constant gradients a momentum buffer tends to g / (1 − m), so DOT's resting
point is the minimiser of L_task / (1 − μ + Δ) + L_distill / (1 − μ − Δ) (the state's
``dot_fixed_point``), not SGD's minimiser of the sum: in the long run the larger distillation
momentum is a reweighting towards the distillation loss; before that, it moves faster along
directions where the distillation loss is shallow.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ..optim import DistillationOrientedSGD, dot_momenta
from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["dot_toy_state", "dot_toy_figure", "DOTTrajectoryExplorer"]

#: the toy's default losses and start: a round task loss at the origin, a distillation loss with a
#: shallow direction (curvature 0.02 along w_2) centred elsewhere, a start far from both
TOY = {"task_center": (0.0, 0.0), "task_curvature": (1.0, 1.0), "distill_center": (0.3, 0.5),
       "distill_curvature": (1.0, 0.02), "start": (2.5, 2.5)}


def _pair(value: Any, name: str, positive: bool = False) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be two finite numbers, got {value!r}") from None
    if t.shape != (2,) or not bool(torch.isfinite(t).all()) or (positive and not bool((t > 0).all())):
        want = "two finite numbers > 0" if positive else "two finite numbers"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return t


def _number(value: Any, name: str, low: float, high: float | None = None, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if (v <= low if low_open else v < low) or (high is not None and v > high):
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def dot_toy_state(delta: float = 0.075, lr: float = 0.05, steps: int = 30, momentum: float = 0.9,
                  noise: float = 0.0, seed: int = 0, task_center: Sequence[float] = TOY["task_center"],
                  task_curvature: Sequence[float] = TOY["task_curvature"],
                  distill_center: Sequence[float] = TOY["distill_center"],
                  distill_curvature: Sequence[float] = TOY["distill_curvature"],
                  start: Sequence[float] = TOY["start"]) -> dict:
    """SGD with one momentum and DOT with two, on the 2-D toy of the module docstring.

    Both optimisers start at ``start`` and take ``steps`` steps with learning rate ``lr`` (no
    weight decay). SGD steps on the gradient of L_task + L_distill with momentum μ; DOT
    back-propagates L_distill, collects its gradient, back-propagates L_task and steps (Zhao et al.,
    "DOT: A Distillation-Oriented Trainer", ICCV 2023, with the authors' Δ = 0.075 by default).
    With ``noise`` > 0 each gradient gets Gaussian noise of that standard deviation per entry, the
    same draws for both optimisers (seeded by ``seed``).

    Args:
        delta: Δ; μ − Δ and μ + Δ must lie in [0, 1).
        lr: learning rate > 0. steps: number of steps, 1 to 2000. momentum: μ in [0, 1).
        noise: gradient-noise standard deviation >= 0. seed: the noise's seed.
        task_center, distill_center: a and b (2 numbers each).
        task_curvature, distill_curvature: c and d (2 numbers > 0 each, the diagonal curvatures).
        start: the starting point (2 numbers).

    Returns:
        dict with ``delta``, ``lr``, ``steps``, ``momentum``, ``noise``, ``momenta`` ((μ − Δ, μ + Δ));
        ``sgd`` and ``dot``: each ``{"path": (steps + 1, 2) tensor, "task": [steps + 1 floats],
        "distill": [...], "total": [...]}``; ``sgd_fixed_point`` (the minimiser of L_task + L_distill)
        and ``dot_fixed_point`` (the minimiser of L_task / (1 − μ + Δ) + L_distill / (1 − μ − Δ)),
        (2,) tensors; the toy's ``task_center``, ``distill_center``, ``task_curvature``,
        ``distill_curvature`` and ``start``.

    Raises:
        ValueError: a number out of range (named), or a pair that is not two finite numbers.
    """
    lr = _number(lr, "lr", 0.0, low_open=True)
    noise = _number(noise, "noise", 0.0)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 2000:
        raise ValueError(f"steps must be an int from 1 to 2000, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    m_task, m_distill = dot_momenta(momentum, delta)
    a, c = _pair(task_center, "task_center"), _pair(task_curvature, "task_curvature", positive=True)
    b, d = _pair(distill_center, "distill_center"), _pair(distill_curvature, "distill_curvature", positive=True)
    w0 = _pair(start, "start")

    def task(w):
        return 0.5 * (c * (w - a) ** 2).sum()

    def distill(w):
        return 0.5 * (d * (w - b) ** 2).sum()

    gen = torch.Generator().manual_seed(seed)
    draws = noise * torch.randn(steps, 2, 2, generator=gen, dtype=torch.float64)   # (step, task/distill, coord)

    def run(kind: str) -> dict:
        w = torch.nn.Parameter(w0.clone())
        if kind == "sgd":
            opt = torch.optim.SGD([w], lr=lr, momentum=float(momentum))
        else:
            opt = DistillationOrientedSGD([w], lr=lr, momentum=float(momentum), delta=float(delta))
        path, lt, ld = [w0.clone()], [float(task(w0))], [float(distill(w0))]
        for s in range(steps):
            opt.zero_grad(set_to_none=True)
            n_task, n_distill = draws[s, 0], draws[s, 1]
            if kind == "sgd":
                (task(w) + distill(w) + (n_task + n_distill) @ w).backward()
            else:
                (distill(w) + n_distill @ w).backward()
                opt.collect_distillation_grads()
                (task(w) + n_task @ w).backward()
            opt.step()
            with torch.no_grad():
                path.append(w.detach().clone())
                lt.append(float(task(w)))
                ld.append(float(distill(w)))
        return {"path": torch.stack(path), "task": lt, "distill": ld, "total": [x + y for x, y in zip(lt, ld)]}

    w_t, w_d = 1.0 / (1.0 - m_task), 1.0 / (1.0 - m_distill)
    return {
        "delta": float(delta), "lr": lr, "steps": steps, "momentum": float(momentum), "noise": noise,
        "momenta": (m_task, m_distill), "sgd": run("sgd"), "dot": run("dot"),
        "sgd_fixed_point": (c * a + d * b) / (c + d),
        "dot_fixed_point": (w_t * c * a + w_d * d * b) / (w_t * c + w_d * d),
        "task_center": a, "distill_center": b, "task_curvature": c, "distill_curvature": d, "start": w0,
    }


def dot_toy_figure(state: dict, title: str | None = None) -> Figure:
    """Two panels for a :func:`dot_toy_state` dict: the trajectories on the contours of
    L_task + L_distill (with both centres and both resting points), and both losses per step (log
    scale; SGD dashed, DOT solid). Returns a matplotlib ``Figure`` (not a pyplot figure)."""
    fig = Figure(figsize=(10.5, 3.9))                               # fixed margins: no layout engine
    ax_p, ax_l = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.86, wspace=0.22)
    a, b, c, d = (state[k] for k in ("task_center", "distill_center", "task_curvature", "distill_curvature"))
    pts = torch.cat([state["sgd"]["path"], state["dot"]["path"], a[None], b[None]])
    lo, hi = pts.min(0).values, pts.max(0).values
    pad = 0.15 * (hi - lo).clamp_min(0.5)
    xs = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), 120, dtype=torch.float64)
    ys = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), 120, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    total = 0.5 * (c[0] * (gx - a[0]) ** 2 + c[1] * (gy - a[1]) ** 2 + d[0] * (gx - b[0]) ** 2
                   + d[1] * (gy - b[1]) ** 2)
    ax_p.contour(gx.numpy(), gy.numpy(), total.numpy(), levels=14, colors="0.75", linewidths=0.7)
    m_t, m_d = state["momenta"]
    for key, color, label in (("sgd", "tab:blue", f"SGD, one momentum {state['momentum']:g}"),
                              ("dot", "tab:red", f"DOT, momenta {m_t:.3g} / {m_d:.3g}")):
        p = state[key]["path"].numpy()
        ax_p.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.3, marker=".", ms=3, label=label)
    ax_p.plot(*state["start"].tolist(), "ks", ms=5, label="start")
    ax_p.plot(*a.tolist(), "o", color="tab:green", ms=7, label="task optimum a")
    ax_p.plot(*b.tolist(), "o", color="tab:purple", ms=7, label="distillation optimum b")
    ax_p.plot(*state["sgd_fixed_point"].tolist(), "x", color="tab:blue", ms=9, mew=2, label="SGD rests here")
    ax_p.plot(*state["dot_fixed_point"].tolist(), "x", color="tab:red", ms=9, mew=2, label="DOT rests here")
    ax_p.set_xlabel("$w_1$")
    ax_p.set_ylabel("$w_2$")
    ax_p.set_title("trajectories on the contours of L_task + L_distill", fontsize="small")
    ax_p.legend(fontsize="x-small", loc="best")
    steps = range(state["steps"] + 1)
    for key, style in (("sgd", "--"), ("dot", "-")):
        name = "SGD" if key == "sgd" else "DOT"
        ax_l.plot(steps, state[key]["task"], style, color="tab:green", label=f"{name}: task loss")
        ax_l.plot(steps, state[key]["distill"], style, color="tab:purple", label=f"{name}: distillation loss")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step")
    ax_l.set_title("both losses per step", fontsize="small")
    ax_l.grid(alpha=0.3, which="both")
    ax_l.legend(fontsize="x-small")
    fig.suptitle(title or f"delta = {state['delta']:g}, lr = {state['lr']:g}, {state['steps']} steps, "
                 f"noise = {state['noise']:g}", fontsize="medium")
    return fig


class DOTTrajectoryExplorer(widgets.VBox):
    """Sliders for Δ, the learning rate, the number of steps and the gradient noise of the 2-D toy;
    shows SGD's and DOT's trajectories and both losses (:func:`dot_toy_state`, :func:`dot_toy_figure`)
    and a table of the final task and distillation losses.

    Args:
        delta, lr, steps, noise: starting values (defaults: the authors' Δ = 0.075, 0.05, 30, 0).
        momentum: the base momentum μ (the budget's 0.9).

    Attributes: ``delta``, ``lr``, ``steps``, ``noise`` (sliders), ``output`` (Output), ``state``
    (the latest :func:`dot_toy_state` dict), ``last_figure``.
    """

    def __init__(self, delta: float = 0.075, lr: float = 0.05, steps: int = 30, noise: float = 0.0,
                 momentum: float = 0.9):
        super().__init__()
        self.momentum = float(momentum)
        dot_toy_state(delta, lr, 1, self.momentum, noise)                  # validate early
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 300:
            raise ValueError(f"steps must be an int from 1 to 300, got {steps!r}")
        limit = min(self.momentum, 0.999 - self.momentum)
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.delta = widgets.FloatSlider(value=delta, min=-round(limit, 3), max=round(limit, 3), step=0.005,
                                         description="delta", readout_format=".3f", **slider)
        self.lr = widgets.FloatSlider(value=lr, min=0.005, max=0.2, step=0.005, description="lr",
                                      readout_format=".3f", **slider)
        self.steps = widgets.IntSlider(value=steps, min=1, max=300, step=1, description="steps", **slider)
        self.noise = widgets.FloatSlider(value=noise, min=0.0, max=1.0, step=0.05, description="noise", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.delta, self.lr, self.steps, self.noise):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.delta, self.lr]), widgets.HBox([self.steps, self.noise]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current sliders (the sliders call this)."""
        st = dot_toy_state(self.delta.value, self.lr.value, self.steps.value, self.momentum, self.noise.value)
        fig = dot_toy_figure(st)
        m_t, m_d = st["momenta"]
        body = [["SGD", f"{self.momentum:g}", f"{st['sgd']['task'][-1]:.4f}", f"{st['sgd']['distill'][-1]:.4f}"],
                ["DOT", f"{m_t:.3f} / {m_d:.3f}", f"{st['dot']['task'][-1]:.4f}", f"{st['dot']['distill'][-1]:.4f}"]]
        table = _html_table(["optimiser", "momentum (task / distillation)", "final task loss",
                             "final distillation loss"], body)
        summary = (f"after {st['steps']} steps: SGD task {st['sgd']['task'][-1]:.4f}, distillation "
                   f"{st['sgd']['distill'][-1]:.4f}; DOT task {st['dot']['task'][-1]:.4f}, distillation "
                   f"{st['dot']['distill'][-1]:.4f}")
        self.state, self.last_figure = st, fig
        self.output.outputs = (_figure_output(fig, "Figure: SGD and DOT trajectories and losses"),
                               _html_output(f"{table}<p>{html.escape(summary)}</p>", summary))
        return st
