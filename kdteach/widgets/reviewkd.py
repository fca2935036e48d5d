"""The HCL level explorer (section 7 of the reviewkd notebook): ReviewKD's pyramid over a pure function.

:class:`HCLExplorer` shows, for one image and one reviewed stage, the teacher's map and the student's
review-path output (channel means) at every level of the hierarchical context loss (the full map,
then the 4x4, 2x2 and 1x1 average pools that are smaller than it), with each level's weight, its MSE
and its share of the stage's loss. The logic is :func:`hcl_explorer_state`, a pure function of stored
maps: no model is run and nothing is trained.

Reference: P. Chen, S. Liu, H. Zhao, J. Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021.
"""

from __future__ import annotations

import html
import numbers
from typing import Mapping

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["hcl_explorer_state", "HCLExplorer"]


def _check_pairs(pairs) -> tuple[list[str], int]:
    if not isinstance(pairs, Mapping) or not pairs:
        raise ValueError(f"pairs must be a non-empty dict stage -> (student map, teacher map), got {type(pairs).__name__}")
    n = None
    for stage, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"pairs[{stage!r}] must be a (student map, teacher map) pair")
        s, t = pair
        if not (isinstance(s, torch.Tensor) and isinstance(t, torch.Tensor)) or s.dim() != 4 or s.shape != t.shape:
            raise ValueError(f"pairs[{stage!r}] must hold two (N, C, H, W) tensors of the same shape, got "
                             f"{getattr(s, 'shape', type(s).__name__)} and {getattr(t, 'shape', type(t).__name__)}")
        if n is not None and s.shape[0] != n:
            raise ValueError(f"every pair must hold the same N images, got {s.shape[0]} for {stage!r} and {n} before")
        n = s.shape[0]
    return list(pairs), n


def hcl_explorer_state(pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], image: int, stage: str) -> dict:
    """Everything the HCL explorer shows for one image and one reviewed stage (Chen et al., CVPR 2021, Sec. 3.3).

    Args:
        pairs: stage name -> (student review-path output, teacher map), both (N, C, H, W) of one shape.
        image: index of the image, 0 <= image < N.
        stage: one of ``pairs``.

    Returns:
        dict with ``image``, ``stage``, ``stages``, ``levels``: a list of dicts, one per level used
        (:func:`kdteach.losses.hcl_level_weights`), with ``grid``, ``weight`` (normalised), ``mse``,
        ``contribution`` (weight · mse), ``student`` and ``teacher`` (grid x grid channel means); and
        ``loss``, the image's :func:`kdteach.losses.hcl_loss` (the sum of the contributions).

    Raises:
        ValueError: malformed ``pairs``, ``image`` out of range, unknown ``stage``.
    """
    from kdteach.losses import hcl_level_weights, hcl_loss

    stages, n = _check_pairs(pairs)
    for arg, value, ok, expected in (
            ("image", image, not isinstance(image, bool) and isinstance(image, numbers.Integral) and 0 <= image < n,
             f"an int in [0, {n})"),
            ("stage", stage, stage in stages, f"one of {stages}")):
        if not ok:
            raise ValueError(f"{arg} must be {expected}, got {value!r}")
    image = int(image)
    with torch.no_grad():
        s, t = (x[image:image + 1].detach().double().cpu() for x in pairs[stage])
        levels = []
        for grid, weight in hcl_level_weights(s.shape[2]):
            ps, pt = (s, t) if grid == s.shape[2] else (F.adaptive_avg_pool2d(s, grid), F.adaptive_avg_pool2d(t, grid))
            mse = float((ps - pt).pow(2).mean())
            levels.append({"grid": grid, "weight": weight, "mse": mse, "contribution": weight * mse,
                           "student": ps[0].mean(0), "teacher": pt[0].mean(0)})
        loss = float(hcl_loss([s], [t]))
    return {"image": image, "stage": stage, "stages": stages, "levels": levels, "loss": loss}


class HCLExplorer(widgets.VBox):
    """Choose an image and a reviewed stage; see HCL's levels (teacher and student channel means per
    level, one colour scale per level) and each level's weight, MSE and contribution (Chen et al. 2021).

    Args:
        pairs: stage -> (student review-path output, teacher map), (N, C, H, W) each
            (see :func:`hcl_explorer_state`).
        labels: optional N strings naming the images; stage: the initial stage.

    Attributes: ``image``, ``stage`` (controls), ``output`` (Output), ``state``, ``last_figure``.
    """

    def __init__(self, pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]], labels=None, stage: str | None = None):
        super().__init__()
        stages, n = _check_pairs(pairs)
        if labels is not None:
            labels = [str(v) for v in labels]
            if len(labels) != n:
                raise ValueError(f"labels must have one entry per image (N = {n}), got {len(labels)}")
        stage = stages[0] if stage is None else stage
        hcl_explorer_state(pairs, 0, stage)          # validate once, early
        self._pairs, self._labels = pairs, labels
        names = [f"{i}: {labels[i]}" if labels else str(i) for i in range(n)]
        self.image = widgets.Dropdown(options=[(s, i) for i, s in enumerate(names)], value=0, description="image")
        self.stage = widgets.Dropdown(options=stages, value=stage, description="stage")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.image, self.stage):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.image, self.stage]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        from kdteach.viz._common import new_figure

        state = hcl_explorer_state(self._pairs, self.image.value, self.stage.value)
        levels = state["levels"]
        fig = new_figure(2, len(levels), cell=(1.8, 1.8))
        axes = fig.subplots(2, len(levels), squeeze=False)
        for j, lv in enumerate(levels):
            lo = float(min(lv["student"].min(), lv["teacher"].min()))
            hi = float(max(lv["student"].max(), lv["teacher"].max()))
            for i, who in enumerate(("teacher", "student")):
                ax = axes[i, j]
                ax.imshow(lv[who].numpy(), cmap="viridis", vmin=lo, vmax=hi)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{lv['grid']}x{lv['grid']}, weight {lv['weight']:.3f}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(who, fontsize=8)
        name = self._labels[state["image"]] if self._labels else f"image {state['image']}"
        fig.suptitle(f"{name}, {state['stage']}: HCL levels (channel means; one colour scale per column)", fontsize=9)
        header = ["level", "weight", "MSE", "weight x MSE"]
        body = [[f"{lv['grid']}x{lv['grid']}", f"{lv['weight']:.3f}", f"{lv['mse']:.5f}", f"{lv['contribution']:.5f}"]
                for lv in levels] + [["HCL (sum)", "1.000", "", f"{state['loss']:.5f}"]]
        plain = "; ".join(f"{lv['grid']}x{lv['grid']}: weight {lv['weight']:.3f}, MSE {lv['mse']:.5f}" for lv in levels)
        caption = html.escape(f"Image {state['image']}, stage {state['stage']}: HCL {state['loss']:.5f}")
        table = _html_output(f"<p>{caption}</p>{_html_table(header, body)}", plain + f"; HCL {state['loss']:.5f}")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, f"Figure: HCL levels at {state['stage']}, image {state['image']}"),
                               table)
        return state
