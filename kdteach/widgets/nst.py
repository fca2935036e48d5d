"""The neuron selectivity explorer (section 7 of the nst notebook): Huang & Wang's MMD over a pure function.

:class:`SelectivityExplorer` shows, for one image, one stage and one kernel, the teacher's and each
student's most active channels as L2-normalised selectivity maps
(:func:`kdteach.viz.plot_selectivity_maps`) and each student's squared MMD to the teacher under
the three kernels of the paper. The logic is :func:`selectivity_explorer_state`, a pure function of
stored features: no model is run and nothing is trained.

Reference: Z. Huang, N. Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity
Transfer", arXiv:1707.01219 (2017).
"""

from __future__ import annotations

import html
import numbers
from typing import Mapping

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table
from .at import _check_features

__all__ = ["selectivity_explorer_state", "SelectivityExplorer"]


def selectivity_explorer_state(features: Mapping[str, Mapping[str, torch.Tensor]], image: int, stage: str,
                               kernel: str = "poly", teacher: str = "teacher") -> dict:
    """Everything the selectivity explorer shows for one image, stage and kernel.

    Huang & Wang (2017), Sec. 3. For every student against the teacher, the squared MMD of this one
    image's channel distributions, :func:`kdteach.losses.nst_loss` on the (1, C, H, W) features
    (the larger map average-pooled to the smaller), under each kernel of
    :data:`kdteach.losses.NST_KERNELS` (the Gaussian with its default mean-pair-distance bandwidth).

    Args:
        features: model name -> (stage name -> (N, C, H, W) activations), the teacher and one or
            more students, all with the same N; channel counts and map sizes may differ.
        image: index of the image, 0 <= image < N.
        stage: a stage every model has.
        kernel: the kernel shown in the figure, one of :data:`kdteach.losses.NST_KERNELS`.
        teacher: the key of the teacher in ``features``.

    Returns:
        dict with ``image``, ``stage``, ``kernel``, ``models`` (teacher first), ``stages``,
        ``maps`` (model -> (C, H, W) features of the image) and ``mmd`` (student -> kernel -> float).

    Raises:
        ValueError: malformed ``features``, ``image`` out of range, unknown ``stage`` or ``kernel``.
    """
    from kdteach.losses import NST_KERNELS, nst_loss

    models, stages, n = _check_features(features, teacher)
    for arg, value, ok, expected in (
            ("image", image, not isinstance(image, bool) and isinstance(image, numbers.Integral) and 0 <= image < n,
             f"an int in [0, {n})"),
            ("stage", stage, stage in stages, f"one of {stages} (the stages every model has)"),
            ("kernel", kernel, kernel in NST_KERNELS, f"one of {NST_KERNELS}")):
        if not ok:
            raise ValueError(f"{arg} must be {expected}, got {value!r}")
    image = int(image)
    with torch.no_grad():
        feats = {m: features[m][stage][image:image + 1].detach().float().cpu() for m in models}
        mmd = {m: {k: float(nst_loss(feats[m], feats[teacher], k)) for k in NST_KERNELS} for m in models[1:]}
    return {"image": image, "stage": stage, "kernel": kernel, "models": models, "stages": stages,
            "maps": {m: f[0] for m, f in feats.items()}, "mmd": mmd}


class SelectivityExplorer(widgets.VBox):
    """Choose an image, a stage and a kernel; see the teacher's and each student's selectivity maps
    and each student's squared MMD to the teacher under the three kernels (Huang & Wang 2017).

    Args:
        features: model name -> (stage -> (N, C, H, W) activations), teacher included (see
            :func:`selectivity_explorer_state`).
        labels: optional N strings (e.g. class names) naming the images.
        teacher: the key of the teacher in ``features``.
        stage, kernel: initial values; ``n_channels``: channels drawn per model.

    Attributes: ``image``, ``stage``, ``kernel`` (controls), ``output`` (Output), ``state`` (the
    latest :func:`selectivity_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, features: Mapping[str, Mapping[str, torch.Tensor]], labels=None, teacher: str = "teacher",
                 stage: str | None = None, kernel: str = "poly", n_channels: int = 6):
        from kdteach.losses import NST_KERNELS

        super().__init__()
        _, stages, n = _check_features(features, teacher)
        if labels is not None:
            labels = [str(v) for v in labels]
            if len(labels) != n:
                raise ValueError(f"labels must have one entry per image (N = {n}), got {len(labels)}")
        stage = stages[-1] if stage is None else stage
        selectivity_explorer_state(features, 0, stage, kernel, teacher)  # validate once, early
        self._features, self._teacher, self._labels, self._n_channels = features, teacher, labels, n_channels
        names = [f"{i}: {labels[i]}" if labels else str(i) for i in range(n)]
        self.image = widgets.Dropdown(options=[(s, i) for i, s in enumerate(names)], value=0, description="image")
        self.stage = widgets.Dropdown(options=stages, value=stage, description="stage")
        self.kernel = widgets.ToggleButtons(options=list(NST_KERNELS), value=kernel, description="kernel")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.image, self.stage, self.kernel):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.image, self.stage]), self.kernel, self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        from kdteach.losses import NST_KERNELS
        from kdteach.viz import plot_selectivity_maps

        state = selectivity_explorer_state(self._features, self.image.value, self.stage.value, self.kernel.value,
                                           self._teacher)
        i, stage = state["image"], state["stage"]
        name = self._labels[i] if self._labels else f"image {i}"
        fig = plot_selectivity_maps(state["maps"], n_channels=self._n_channels, kernel=state["kernel"],
                                    title=f"{name}: selectivity maps at {stage} (one colour scale per row)")
        header = ["student"] + [f"MMD^2, {k}" for k in NST_KERNELS]
        body = [[m] + [f"{state['mmd'][m][k]:.5f}" for k in NST_KERNELS] for m in state["models"][1:]]
        plain = "; ".join(f"{m}: " + ", ".join(f"{k} {state['mmd'][m][k]:.5f}" for k in NST_KERNELS)
                          for m in state["models"][1:])
        caption = html.escape(f"Image {i}, stage {stage}, squared MMD to the teacher:")
        table = _html_output(f"<p>{caption}</p>{_html_table(header, body)}", plain)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, f"Figure: selectivity maps at {stage}, image {i}"), table)
        return state
