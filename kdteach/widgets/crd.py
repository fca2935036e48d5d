"""The NCE explorer (section 7 of the crd notebook): CRD's contrastive objective over a pure function.

:class:`NCEExplorer` sets the cosine of the positive pair, the cosine of every negative pair, the
temperature τ, the number of negatives N and the size of the training set, and shows CRD's NCE loss
(:func:`kdteach.losses.crd_nce_loss`), the critic's posteriors and the loss as a function of the
positive's cosine. The logic is :func:`nce_explorer_state`; nothing is trained.

Reference: Y. Tian, D. Krishnan, P. Isola, "Contrastive Representation Distillation", ICLR 2020, Sec. 3.
"""

from __future__ import annotations

import html
import math
import numbers

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["nce_explorer_state", "NCEExplorer"]


def _check(name: str, value, ok: bool, expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def nce_explorer_state(positive_cos: float, negative_cos: float, num_negatives: int, num_data: int,
                       temperature: float = 0.07) -> dict:
    """CRD's NCE loss for one anchor whose positive has cosine ``positive_cos`` and whose N negatives all have
    cosine ``negative_cos`` with it.

    Scores h = exp(cos / τ) / Z with Z = num_data · (mean score over the 1 + N pairs), the rule CRD uses to
    fix Z from its first batch; then :func:`kdteach.losses.crd_nce_loss` on the (1, 1 + N) scores. The
    posteriors are the critic's probabilities that the positive came from the data,
    h₀ / (h₀ + N / num_data), and that a negative came from the noise, (N / num_data) / (h_k + N / num_data).

    Returns:
        dict with ``loss``, ``positive_term`` and ``negative_term`` (the two parts of the loss, summed over
        the negatives), ``p_data_positive``, ``p_noise_negative``, ``curve`` ((cosines, losses) over
        positive cosines in [−1, 1], the other settings fixed) and the inputs.

    Raises:
        ValueError: a cosine outside [−1, 1], N or num_data not an int ≥ 1, or τ not > 0.
    """
    from kdteach.losses import crd_nce_loss
    from kdteach.losses.contrastive import CRD_EPS

    _check("positive_cos", positive_cos, -1 <= positive_cos <= 1, "a number in [-1, 1]")
    _check("negative_cos", negative_cos, -1 <= negative_cos <= 1, "a number in [-1, 1]")
    for name, v in (("num_negatives", num_negatives), ("num_data", num_data)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    _check("temperature", temperature, temperature > 0, "a number > 0")
    n, tau = int(num_negatives), float(temperature)

    def parts(pos: float) -> tuple[float, float, float, float, float]:
        raw_p, raw_n = math.exp(pos / tau), math.exp(negative_cos / tau)
        z = num_data * (raw_p + n * raw_n) / (1 + n)
        h_p, h_n = raw_p / z, raw_n / z
        noise = n / num_data
        scores = torch.tensor([[h_p] + [h_n] * n], dtype=torch.float64)
        loss = float(crd_nce_loss(scores, num_data))
        pos_term = -math.log(h_p / (h_p + noise + CRD_EPS))
        return loss, pos_term, loss - pos_term, h_p / (h_p + noise), noise / (h_n + noise)

    loss, pos_term, neg_term, p_pos, p_neg = parts(float(positive_cos))
    xs = np.linspace(-1.0, 1.0, 81)
    curve = (xs, np.array([parts(float(c))[0] for c in xs]))
    return {"positive_cos": float(positive_cos), "negative_cos": float(negative_cos), "num_negatives": n,
            "num_data": int(num_data), "temperature": tau, "loss": loss, "positive_term": pos_term,
            "negative_term": neg_term, "p_data_positive": p_pos, "p_noise_negative": p_neg, "curve": curve}


def nce_figure(state: dict) -> Figure:
    """The loss against the positive's cosine (current point marked) and the two posteriors as bars."""
    fig = Figure(figsize=(8.0, 2.9), layout="constrained")
    ax, bx = fig.subplots(1, 2, width_ratios=(2, 1))
    xs, ys = state["curve"]
    ax.plot(xs, ys, color="tab:blue")
    ax.scatter([state["positive_cos"]], [state["loss"]], color="tab:red", zorder=3)
    ax.axvline(state["negative_cos"], color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("cosine of the positive pair")
    ax.set_ylabel("NCE loss")
    ax.set_title(f"N = {state['num_negatives']}, tau = {state['temperature']:g} (dashed: negatives' cosine)",
                 fontsize=9)
    bx.bar(["P(data | positive)", "P(noise | negative)"], [state["p_data_positive"], state["p_noise_negative"]],
           color=["tab:green", "tab:orange"])
    bx.set_ylim(0, 1)
    bx.tick_params(axis="x", labelsize=7)
    bx.set_title("critic posteriors", fontsize=9)
    return fig


class NCEExplorer(widgets.VBox):
    """Sliders for the positive's and the negatives' cosine, τ, N and the training-set size; shows CRD's NCE
    loss, its two parts and the critic's posteriors (:func:`nce_explorer_state`).

    Attributes: ``positive``, ``negative``, ``temperature``, ``negatives``, ``num_data`` (controls),
    ``output``, ``state``, ``last_figure``.
    """

    def __init__(self, positive_cos: float = 0.5, negative_cos: float = 0.0, num_negatives: int = 4096,
                 num_data: int = 5590, temperature: float = 0.07):
        super().__init__()
        nce_explorer_state(positive_cos, negative_cos, num_negatives, num_data, temperature)   # validate early
        self.positive = widgets.FloatSlider(value=positive_cos, min=-1, max=1, step=0.05, description="cos(pos)")
        self.negative = widgets.FloatSlider(value=negative_cos, min=-1, max=1, step=0.05, description="cos(neg)")
        self.temperature = widgets.FloatLogSlider(value=temperature, base=10, min=-2, max=0, step=0.05,
                                                  description="tau")
        self.negatives = widgets.Dropdown(options=sorted({16, 256, 1024, 4096, 16384, int(num_negatives)}),
                                          value=int(num_negatives), description="N")
        self.num_data = widgets.Dropdown(options=sorted({5590, 50000, int(num_data)}), value=int(num_data),
                                         description="num_data")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.positive, self.negative, self.temperature, self.negatives, self.num_data):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.positive, self.negative, self.temperature]),
                         widgets.HBox([self.negatives, self.num_data]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        st = nce_explorer_state(self.positive.value, self.negative.value, self.negatives.value, self.num_data.value,
                                self.temperature.value)
        fig = nce_figure(st)
        header = ["loss", "positive term", "negative terms", "P(data | positive)", "P(noise | negative)"]
        row = [f"{st['loss']:.4f}", f"{st['positive_term']:.4f}", f"{st['negative_term']:.4f}",
               f"{st['p_data_positive']:.4f}", f"{st['p_noise_negative']:.4f}"]
        plain = "; ".join(f"{h} {v}" for h, v in zip(header, row))
        caption = html.escape(f"CRD NCE loss for one anchor, N = {st['num_negatives']}, num_data = {st['num_data']}:")
        self.state, self.last_figure = st, fig
        self.output.outputs = (_figure_output(fig, "Figure: NCE loss against the positive's cosine"),
                               _html_output(f"<p>{caption}</p>{_html_table(header, [row])}", plain))
        return st
