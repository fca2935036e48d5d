"""The attention-mapping explorer (section 7 of the at notebook): Zagoruyko & Komodakis's maps over a pure function.

:class:`AttentionExplorer` shows, for one image and one stage, the attention map of the teacher and
of each student (e.g. the student trained alone and the AT student) under one of the three mappings
of the paper (Sec. 3.1: Σ_c |A_c|, Σ_c |A_c|^p, max_c |A_c|^p), L2-normalised as AT compares them and
drawn on one shared colour scale, with the per-image AT loss of each student against the teacher.
The logic is :func:`attention_explorer_state`, a pure function of stored features: no model is run
and nothing is trained.

Reference: S. Zagoruyko, N. Komodakis, "Paying More Attention to Attention: Improving the Performance
of Convolutional Neural Networks via Attention Transfer", ICLR 2017 (arXiv:1612.03928).
"""

from __future__ import annotations

import html
import numbers
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["attention_explorer_state", "AttentionExplorer"]

_MODE_LABELS = {"sum": "sum |A|", "sum_p": "sum |A|^p", "max_p": "max |A|^p"}


def _check_features(features: Any, teacher: str) -> tuple[list[str], list[str], int]:
    """Validate ``features`` (model -> stage -> (N, C, H, W)); return (models, stages, N).

    ``stages`` are those every model has, in the teacher's order."""
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"features must be a non-empty dict model name -> (stage -> (N, C, H, W) tensor), "
                         f"got {type(features).__name__}")
    if teacher not in features:
        raise ValueError(f"features must hold the teacher {teacher!r}, got models {list(features)}")
    if len(features) < 2:
        raise ValueError(f"features must hold the teacher and at least one student, got models {list(features)}")
    n = None
    for model, stages in features.items():
        if not isinstance(stages, Mapping) or not stages:
            raise ValueError(f"features[{model!r}] must be a non-empty dict stage -> (N, C, H, W) tensor, "
                             f"got {type(stages).__name__}")
        for stage, f in stages.items():
            if not isinstance(f, torch.Tensor) or f.dim() != 4 or 0 in f.shape:
                shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
                raise ValueError(f"features[{model!r}][{stage!r}] must be a (N, C, H, W) tensor, got {shape}")
            if n is None:
                n = f.shape[0]
            elif f.shape[0] != n:
                raise ValueError(f"features[{model!r}][{stage!r}] has {f.shape[0]} images (shape {tuple(f.shape)}), "
                                 f"expected N = {n} like the other features")
    models = [teacher] + [m for m in features if m != teacher]
    stages = [s for s in features[teacher] if all(s in features[m] for m in models)]
    if not stages:
        raise ValueError(f"features: the models share no stage (teacher stages {list(features[teacher])})")
    return models, stages, int(n)


def attention_explorer_state(features: Mapping[str, Mapping[str, torch.Tensor]], image: int, stage: str,
                             mode: str = "sum_p", p: float = 2.0, teacher: str = "teacher") -> dict:
    """Everything the attention explorer shows for one image, stage, mapping and exponent.

    Zagoruyko & Komodakis (ICLR 2017), Sec. 3.1 and Eq. 2. For each model the stage feature of the
    image, A (C, H, W), is average-pooled to the smallest spatial size among the models (as
    :func:`kdteach.losses.at_loss` pools the larger map), mapped to an (h, w) map by
    :func:`kdteach.losses.attention_map` (``mode``: Σ_c |A_c|, Σ_c |A_c|^p or max_c |A_c|^p) and
    divided by its L2 norm over the h·w positions: the unit-norm map AT compares. For every student
    against the teacher:

    * ``at_loss``: :func:`kdteach.losses.at_loss` of this image (AT's Σ_c |A_c|^p mapping whatever
      ``mode`` is shown), the mean over the h·w positions of the squared difference of the
      normalised maps;
    * ``map_distance``: the same formula for the mapping shown (equal to ``at_loss`` for ``"sum_p"``);
    * ``cosine``: the cosine between the shown normalised maps, ``1 − h·w·map_distance / 2``.

    Args:
        features: model name -> (stage name -> (N, C, H, W) activations), e.g. captured with
            :func:`kdteach.features.capture` on N test images; the teacher and one or more
            students, all with the same N. Channel counts may differ between models.
        image: index of the image, 0 <= image < N.
        stage: a stage every model has (e.g. ``"stem"``, ``"layer1"``).
        mode: ``"sum"``, ``"sum_p"`` or ``"max_p"`` (:data:`kdteach.losses.ATTENTION_MODES`).
        p: the exponent p > 0 of ``"sum_p"``, ``"max_p"`` and of the AT loss.
        teacher: the key of the teacher in ``features``.

    Returns:
        dict with ``image``, ``stage``, ``mode``, ``p``, ``size`` ((h, w) compared), ``models``
        (teacher first), ``stages`` (available), ``maps`` (model -> (h, w) un-normalised map),
        ``normalised`` (model -> (h, w) unit-L2-norm map), ``vmax`` (the largest value of the
        normalised maps: one shared colour scale [0, vmax]), and student -> float dicts
        ``at_loss``, ``map_distance``, ``cosine``.

    Raises:
        ValueError: malformed ``features``, ``image`` out of range, unknown ``stage`` or ``mode``,
            ``p`` not > 0.
    """
    from kdteach.losses import ATTENTION_MODES, at_loss, attention_map

    if not isinstance(teacher, str):
        raise ValueError(f"teacher must be a str (a key of features), got {teacher!r}")
    models, stages, n = _check_features(features, teacher)
    if isinstance(image, bool) or not isinstance(image, numbers.Integral) or not 0 <= int(image) < n:
        raise ValueError(f"image must be an int in [0, {n}), got {image!r}")
    if stage not in stages:
        raise ValueError(f"stage must be one of {stages} (the stages every model has), got {stage!r}")
    if mode not in ATTENTION_MODES:
        raise ValueError(f"mode must be one of {ATTENTION_MODES}, got {mode!r}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"p must be a number > 0, got {p!r}")
    image, p = int(image), float(p)
    with torch.no_grad():
        feats = {m: features[m][stage][image:image + 1].detach().float().cpu() for m in models}
        size = (min(f.shape[-2] for f in feats.values()), min(f.shape[-1] for f in feats.values()))
        pooled = {m: f if tuple(f.shape[-2:]) == size else F.adaptive_avg_pool2d(f, size) for m, f in feats.items()}
        maps = {m: attention_map(f, p=p, mode=mode)[0] for m, f in pooled.items()}
        normalised = {m: F.normalize(a.flatten(), dim=0).reshape(size) for m, a in maps.items()}
        hw = size[0] * size[1]
        t = normalised[teacher]
        students = models[1:]
        distance = {m: float((normalised[m] - t).pow(2).mean()) for m in students}
        cosine = {m: float((normalised[m] * t).sum()) for m in students}
        loss = {m: float(at_loss(feats[m], feats[teacher], p=p)) for m in students}
    return {
        "image": image, "stage": stage, "mode": mode, "p": p, "size": size, "hw": hw,
        "models": models, "stages": stages, "maps": maps, "normalised": normalised,
        "vmax": max(float(a.max()) for a in normalised.values()),
        "at_loss": loss, "map_distance": distance, "cosine": cosine,
    }


class AttentionExplorer(widgets.VBox):
    """Choose an image, a stage (the stem included), a mapping (Σ|A|, Σ|A|^p, max|A|^p) and p; see
    the teacher's and each student's L2-normalised attention maps on one shared colour scale and the
    per-image AT loss of each student against the teacher (Zagoruyko & Komodakis, ICLR 2017).

    Args:
        features: model name -> (stage -> (N, C, H, W) activations), teacher included (see
            :func:`attention_explorer_state`).
        images: optional (N, 3, H, W) images with values in [0, 1], shown beside the maps.
        labels: optional N strings (e.g. class names) naming the images.
        teacher: the key of the teacher in ``features``.
        stage, mode, p: initial values.

    Attributes: ``image``, ``stage``, ``mode``, ``p`` (controls), ``output`` (Output), ``state``
    (the latest :func:`attention_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, features: Mapping[str, Mapping[str, torch.Tensor]], images: Any = None,
                 labels: Sequence[str] | None = None, teacher: str = "teacher", stage: str | None = None,
                 mode: str = "sum_p", p: float = 2.0):
        super().__init__()
        models, stages, n = _check_features(features, teacher)
        self._features, self._teacher = features, teacher
        self._images = None
        if images is not None:
            imgs = torch.as_tensor(images).detach().float().cpu()
            if imgs.dim() != 4 or imgs.shape[0] != n or imgs.shape[1] != 3:
                raise ValueError(f"images must have shape (N={n}, 3, H, W), got {tuple(imgs.shape)}")
            self._images = imgs.clamp(0, 1).permute(0, 2, 3, 1).numpy()
        if labels is not None:
            labels = [str(v) for v in labels]
            if len(labels) != n:
                raise ValueError(f"labels must have one entry per image (N = {n}), got {len(labels)}")
        self._labels = labels
        stage = stages[0] if stage is None else stage
        attention_explorer_state(features, 0, stage, mode, p, teacher)  # validate once, early
        names = [f"{i}: {labels[i]}" if labels else str(i) for i in range(n)]
        self.image = widgets.Dropdown(options=[(s, i) for i, s in enumerate(names)], value=0, description="image")
        self.stage = widgets.Dropdown(options=stages, value=stage, description="stage")
        self.mode = widgets.ToggleButtons(options=[(_MODE_LABELS[m], m) for m in _MODE_LABELS], value=mode,
                                          description="mapping")
        self.p = widgets.FloatSlider(value=p, min=0.5, max=8.0, step=0.5, description="p", continuous_update=False)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.image, self.stage, self.mode, self.p):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.image, self.stage, self.p]), self.mode, self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        state = attention_explorer_state(self._features, self.image.value, self.stage.value, self.mode.value,
                                         self.p.value, self._teacher)
        models, i = state["models"], state["image"]
        extra = self._images is not None
        fig = Figure(figsize=(2.3 * (len(models) + extra) + 0.6, 2.8))  # fixed margins: no layout engine
        axes = fig.subplots(1, len(models) + extra, squeeze=False)[0]
        fig.subplots_adjust(left=0.02, right=0.9, bottom=0.04, top=0.78, wspace=0.08)
        if extra:
            axes[0].imshow(self._images[i], interpolation="nearest")
            axes[0].set_title(self._labels[i] if self._labels else f"image {i}", fontsize=9)
        im = None
        for ax, m in zip(axes[extra:], models):
            im = ax.imshow(state["normalised"][m].numpy(), vmin=0.0, vmax=state["vmax"], cmap="viridis",
                           interpolation="nearest")
            sub = "" if m == models[0] else f"\nat_loss {state['at_loss'][m]:.4f}"
            ax.set_title(f"{m}{sub}", fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        cax = fig.add_axes([0.92, 0.08, 0.015, 0.66])
        fig.colorbar(im, cax=cax)
        h, w = state["size"]
        mapping = _MODE_LABELS[state["mode"]].replace("^p", "^" + format(state["p"], "g"))
        fig.suptitle(f"{mapping} at {state['stage']} ({h}x{w}), L2-normalised, one shared colour scale",
                     fontsize=10)
        header = ["student", f"at_loss (AT's mapping, p={state['p']:g})", "distance (mapping shown)",
                  "cosine (mapping shown)"]
        body = [[m, f"{state['at_loss'][m]:.5f}", f"{state['map_distance'][m]:.5f}", f"{state['cosine'][m]:.4f}"]
                for m in models[1:]]
        plain = "; ".join(f"{m}: at_loss {state['at_loss'][m]:.5f}, cosine {state['cosine'][m]:.4f}"
                          for m in models[1:])
        self.state, self.last_figure = state, fig
        self.output.outputs = (
            _figure_output(fig, f"Figure: attention maps at {state['stage']}, image {i}"),
            _html_output("<p>" + html.escape(f"Image {i}, stage {state['stage']}, against the teacher:") + "</p>"
                         + _html_table(header, body), plain),
        )
        return state
