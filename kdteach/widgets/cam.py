"""The CAM explorer (section 7 of the cam notebook): CAM next to Grad-CAM, over a pure function.

:class:`CAMExplorer` lets the reader choose a model (the cached teacher, a student), an image, a
class and a layer, and shows the class activation map of the last stage (Zhou et al., CVPR 2016)
next to the Grad-CAM of the chosen layer (Selvaraju et al., ICCV 2017), the class scores, and the
Pearson correlation between the two maps. Nothing is trained. The logic is :func:`cam_explorer_state`.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output

__all__ = ["cam_explorer_state", "CAMExplorer"]


def _check_model(model: Any, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name} must be a kdteach model (torch.nn.Module), got {type(model).__name__}")
    stages = getattr(model, "stages", None)
    if not stages or not isinstance(getattr(model, "fc", None), nn.Linear):
        raise ValueError(f"{name} must be a kdteach model with declared stages and a GAP + linear head "
                         f"`fc` (e.g. kdteach.train.build_model(...)), got {type(model).__name__}")
    return model


def _check_images(images: Any, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a (N, 3, H, W) tensor with N >= 1, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {images.dtype}")
    return images


def _check_index(value: Any, n: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ValueError(f"{name} must be an int in [0, {n}), got {value!r}")
    return value


def cam_explorer_state(model: nn.Module, images: torch.Tensor, index: int, target_class: int | None = None,
                       layer: str | None = None) -> dict:
    """Everything the CAM explorer shows for one (model, image, class, layer); no training.

    CAM (Zhou et al., CVPR 2016, Eq. 2) of class k is M_k = Σ_c w_kc f_c on the last feature map f,
    the one the model global-average-pools into its linear classifier ``fc``
    (:func:`kdteach.losses.class_activation_map`); it is defined at the last stage only. Grad-CAM
    (Selvaraju et al., ICCV 2017, without the final ReLU: :func:`kdteach.losses.grad_cam`) is
    computed at ``layer``. At the last stage Grad-CAM = CAM / (h·w) on this GAP + FC head, so their
    correlation is 1; at an earlier stage it is not.

    Args:
        model: a kdteach model (declared ``stages``, GAP + linear ``fc``); evaluated in eval mode
            (its mode is restored afterwards).
        images: (N, 3, H, W) normalised images (the model's inputs).
        index: which image, in [0, N).
        target_class: the class k whose maps are shown, in [0, K); None for the model's predicted class.
        layer: a stage name of ``model`` for Grad-CAM; None for the last stage.

    Returns:
        dict with ``index``, ``layer``, ``last_layer``, ``class`` (k), ``predicted`` (the top-1
        class); ``logits`` and ``probs`` ((K,) tensors); ``cam`` ((h, w), last stage);
        ``grad_cam`` ((h', w'), at ``layer``); ``correlation`` (float, Pearson r of the two maps,
        :func:`kdteach.analysis.map_correlation`, the CAM resized to the Grad-CAM's grid);
        ``cam_score`` (mean of the CAM plus the bias b_k: equals ``logits[k]``);
        ``identity_gap`` (max |Grad-CAM − CAM/(h·w)| at the last stage; None at an earlier one).

    Raises:
        ValueError: ``model`` is not a kdteach model, ``images`` is not (N, 3, H, W) floating point,
            ``index`` or ``target_class`` is out of range, ``layer`` is not a stage name of ``model``.
    """
    from kdteach.analysis import map_correlation
    from kdteach.features import extract
    from kdteach.losses import class_activation_map, grad_cam

    model = _check_model(model)
    images = _check_images(images)
    index = _check_index(index, images.shape[0], "index")
    names = [s.name for s in model.stages]
    last = model.stages[-1]
    if layer is None:
        layer = last.name
    if layer not in names:
        raise ValueError(f"layer must be a stage name of the model, one of {names}, got {layer!r}")
    num_classes = model.fc.out_features
    if target_class is not None:
        target_class = _check_index(target_class, num_classes, "target_class")
    device = next(model.parameters()).device
    x = images[index:index + 1].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, feats = extract(model, x, last.name)
        logits = logits[0].float()
        k = int(logits.argmax()) if target_class is None else target_class
        cam = class_activation_map(feats[last.name], model.fc.weight.detach(), [k])        # (1, h, w)
        gc = grad_cam(model, model.get_submodule(model.stage(layer).module), x, [k])        # (1, h', w')
    finally:
        model.train(was_training)
    bias = 0.0 if model.fc.bias is None else float(model.fc.bias.detach()[k])
    h, w = cam.shape[-2:]
    gap = float((gc - cam / (h * w)).abs().max()) if layer == last.name else None
    return {
        "index": index, "layer": layer, "last_layer": last.name, "class": k, "predicted": int(logits.argmax()),
        "logits": logits.detach().cpu(), "probs": logits.softmax(0).detach().cpu(),
        "cam": cam[0].detach().float().cpu(), "grad_cam": gc[0].detach().float().cpu(),
        "correlation": float(map_correlation(gc.float(), cam.float())[0]),
        "cam_score": float(cam.mean()) + bias, "identity_gap": gap,
    }


def _overlay(ax, image, cam_map: torch.Tensor, size: tuple[int, int], title: str) -> None:
    from kdteach.losses import normalize_map

    m = F.interpolate(cam_map[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    if image is not None:
        ax.imshow(image, interpolation="nearest")
    ax.imshow(normalize_map(m).numpy(), cmap="jet", alpha=0.5 if image is not None else 1.0,
              vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


class CAMExplorer(widgets.VBox):
    """Choose a model, an image, a class and a layer; see the last stage's CAM next to the chosen
    layer's Grad-CAM (each map min-max normalised on its own), the class probabilities and the
    correlation between the maps (Zhou et al., CVPR 2016; Selvaraju et al., ICCV 2017). No training.

    Args:
        models: name -> kdteach model, e.g. ``{"teacher": teacher, "student alone": s, "kd": k}``.
        images: (N, 3, H, W) normalised images (the models' inputs).
        display_images: optional (N, 3, H, W) images in [0, 1] drawn under the maps
            (e.g. ``kdteach.data.denormalize(images, dataset)``).
        class_names: optional K class names (default ``"0"``, ``"1"``, ...).
        labels: optional (N,) true labels, shown in the image's title.

    Attributes: ``model``, ``image``, ``target``, ``layer`` (the controls), ``output`` (Output),
    ``state`` (the latest :func:`cam_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, models: Mapping[str, nn.Module], images: torch.Tensor, display_images: Any = None,
                 class_names: Sequence[str] | None = None, labels: Any = None):
        super().__init__()
        if not isinstance(models, Mapping) or not models:
            raise ValueError(f"models must be a non-empty dict name -> kdteach model, got {type(models).__name__}")
        self.models = {str(n): _check_model(m, f"models[{n!r}]") for n, m in models.items()}
        self.images = _check_images(images)
        n, _, hgt, wid = self.images.shape
        ks = {m.fc.out_features for m in self.models.values()}
        if len(ks) != 1:
            raise ValueError(f"models must all have the same number of classes, got {sorted(ks)}")
        num_classes = ks.pop()
        if display_images is not None:
            d = torch.as_tensor(display_images)
            if d.dim() != 4 or d.shape[0] != n or d.shape[1] != 3:
                raise ValueError(f"display_images must have shape ({n}, 3, H, W) like images, got {tuple(d.shape)}")
            display_images = d.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        self._display = display_images
        names = [str(c) for c in class_names] if class_names is not None else [str(k) for k in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"class_names has {len(names)} names, expected K = {num_classes}")
        self.class_names = names
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (n,):
                raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        self.labels = labels
        self._size = (hgt, wid)
        first = next(iter(self.models.values()))
        self.model = widgets.Dropdown(options=list(self.models), description="model")
        self.image = widgets.IntSlider(value=0, min=0, max=n - 1, description="image", continuous_update=False)
        self.target = widgets.Dropdown(options=[("predicted", -1)] + [(c, k) for k, c in enumerate(names)],
                                       value=-1, description="class")
        self.layer = widgets.Dropdown(options=[s.name for s in first.stages], value=first.stages[-1].name,
                                      description="layer")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        self.model.observe(self._on_model, names="value")
        for w in (self.image, self.target, self.layer):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.model, self.image]), widgets.HBox([self.target, self.layer]), self.output)
        self.update()

    def _on_model(self, _change) -> None:
        stages = [s.name for s in self.models[self.model.value].stages]
        if self.layer.value not in stages or list(self.layer.options) != stages:
            with self.layer.hold_trait_notifications():
                self.layer.options = stages
                self.layer.value = stages[-1]
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current choices (the controls call this)."""
        target = None if self.target.value == -1 else int(self.target.value)
        state = cam_explorer_state(self.models[self.model.value], self.images, int(self.image.value), target,
                                   self.layer.value)
        i, k = state["index"], state["class"]
        fig = Figure(figsize=(10, 2.8))  # fixed margins: a layout engine doubles the draw time
        ax_i, ax_c, ax_g, ax_p = fig.subplots(1, 4, width_ratios=[1, 1, 1, 1.6])
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.28, top=0.8, wspace=0.25)
        image = None if self._display is None else self._display[i]
        if image is not None:
            ax_i.imshow(image, interpolation="nearest")
        true = "" if self.labels is None else f", label {self.class_names[int(self.labels[i])]}"
        ax_i.set_title(f"image {i}{true}", fontsize=9)
        ax_i.set_xticks([])
        ax_i.set_yticks([])
        h, w = state["cam"].shape
        hg, wg = state["grad_cam"].shape
        _overlay(ax_c, image, state["cam"], self._size, f"CAM ({state['last_layer']}, {h}x{w})")
        _overlay(ax_g, image, state["grad_cam"], self._size, f"Grad-CAM ({state['layer']}, {hg}x{wg})")
        colors = ["tab:red" if j == k else "tab:gray" for j in range(len(self.class_names))]
        ax_p.bar(range(len(self.class_names)), state["probs"].tolist(), color=colors)
        ax_p.set_xticks(range(len(self.class_names)), self.class_names, rotation=45, ha="right", fontsize=8)
        ax_p.set_title(f"softmax; maps of class {self.class_names[k]} (red)", fontsize=9)
        fig.suptitle(f"{self.model.value}: each map min-max normalised on its own (no shared colour scale); "
                     f"r(CAM, Grad-CAM) = {state['correlation']:+.3f}", fontsize=9)
        gap = ("" if state["identity_gap"] is None else
               f"; max |Grad-CAM - CAM/(h*w)| = {state['identity_gap']:.2e} (the identity)")
        summary = (f"{self.model.value}, image {i}, class {self.class_names[k]} (predicted "
                   f"{self.class_names[state['predicted']]}), Grad-CAM at {state['layer']}: Pearson r between CAM "
                   f"and Grad-CAM = {state['correlation']:+.3f}; mean CAM + bias = {state['cam_score']:.4f} = logit "
                   f"{float(state['logits'][k]):.4f}{gap}")
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: CAM vs Grad-CAM and the class probabilities"),
                               _html_output(f"<p>{html.escape(summary)}</p>", summary))
        return state
