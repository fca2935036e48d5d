"""Class activation maps: CAM (Zhou et al.) and Grad-CAM (Selvaraju et al., via captum).

References:
    * CAM: B. Zhou, A. Khosla, A. Lapedriza, A. Oliva, A. Torralba, "Learning Deep Features for
      Discriminative Localization", CVPR 2016.
    * Grad-CAM: R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
      Gradient-based Localization", ICCV 2017.

On a network that ends with global average pooling and a linear layer (GAP + FC), the two agree up
to a constant: the Grad-CAM weight of channel c is the spatial mean of ∂y_k/∂f_c = w_kc/(h·w), so
Grad-CAM = CAM / (h·w) for the last feature map (before ReLU is applied to the Grad-CAM map).

Paper vs kdteach's models: Zhou et al. (Sec. 2) write the pooled feature as a sum,
F_c = Σ_{x,y} f_c(x, y), and set the bias of the softmax input to 0, so that S_k = Σ_{x,y} M_k(x, y)
exactly (and Grad-CAM = CAM, with no 1/(h·w)). kdteach's models average (``nn.AdaptiveAvgPool2d``)
and keep the bias of ``fc``: S_k = mean_{x,y} M_k(x, y) + b_k. The map M_k is the same formula in
both; the bias is constant over positions, so it shifts the score but not the map.

Used later by CAT-KD (Guo et al., CVPR 2023), which distils the CAMs of all classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._validate import as_float, check_tensor, full_precision, shape_of

__all__ = ["class_activation_map", "grad_cam", "normalize_map"]


def _as_classes(classes: object, batch: int, num_classes: int | None, device: torch.device) -> torch.Tensor:
    """Validate class indices: (B,) integers in [0, num_classes); returns a long tensor on device."""
    expected = "classes must be a (B,) tensor or sequence of integer class indices"
    if isinstance(classes, torch.Tensor):
        t = classes
    elif isinstance(classes, Sequence) and not isinstance(classes, str):
        try:
            t = torch.as_tensor(list(classes))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{expected}, got {classes!r}") from err
    else:
        raise TypeError(f"{expected}, got {type(classes).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"classes must hold integer class indices, got dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != batch:
        raise ValueError(f"classes must have shape ({batch},) to match the batch, got {tuple(t.shape)}")
    if num_classes is not None and t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"classes must lie in [0, {num_classes}), got values from {int(t.min())} to {int(t.max())}")
    return t.to(device=device, dtype=torch.long)


def class_activation_map(features: torch.Tensor, fc_weight: torch.Tensor, classes: Sequence[int] | torch.Tensor,
                         ) -> torch.Tensor:
    """Class activation map M_k(x, y) = Σ_c w_kc f_c(x, y) (Zhou et al., CVPR 2016, Eq. 2).

    ``features`` is the last convolutional feature map, the one the network global-average-pools
    into the linear classifier with weight ``fc_weight``; the classifier bias is not part of CAM.
    With kdteach's mean pooling, the logit of class k is ``M_k.mean((-2, -1)) + b_k``; with the
    paper's sum pooling and zero bias (Sec. 2) it is ``M_k.sum((-2, -1))`` (see the module doc).

    Args:
        features: (B, C, H, W) last feature map f.
        fc_weight: (K, C) weight w of the final linear layer (e.g. ``model.fc.weight``).
        classes: (B,) class index k per sample (tensor or sequence of ints).

    Returns:
        (B, H, W) un-normalised maps (float32 for half/bfloat16 inputs); see :func:`normalize_map`.

    Raises:
        ValueError: ``features`` not (B, C, H, W), ``fc_weight`` not (K, C) with C matching the
            channels of ``features``, ``classes`` not of shape (B,) or outside [0, K).
        TypeError: ``features`` or ``fc_weight`` not a floating-point tensor; ``classes`` not a
            tensor or sequence of integer indices.
    """
    check_tensor(features, "features", 4, "(B, C, H, W)")
    check_tensor(fc_weight, "fc_weight", 2, "(K, C)")
    if fc_weight.shape[1] != features.shape[1]:
        raise ValueError(f"fc_weight must have shape (K, {features.shape[1]}) to match the channels of features "
                         f"{tuple(features.shape)}, got {tuple(fc_weight.shape)}")
    k = _as_classes(classes, features.shape[0], fc_weight.shape[0], features.device)
    with full_precision(features.device):
        f = as_float(features)
        w = as_float(fc_weight).to(device=f.device, dtype=f.dtype)[k]          # (B, C)
        return torch.einsum("bc,bchw->bhw", w, f)


def grad_cam(model: nn.Module, layer_module: nn.Module, x: torch.Tensor, classes: Sequence[int] | torch.Tensor,
             ) -> torch.Tensor:
    """Grad-CAM of ``layer_module``'s output for the given classes, with captum's ``LayerGradCam``.

    Grad-CAM (Selvaraju et al., ICCV 2017, Eqs. 1-2): α_c = mean_{h,w} ∂y_k/∂A_c with y_k the
    pre-softmax score, map = ReLU(Σ_c α_c A_c). The final ReLU is not applied here
    (``relu_attributions=False``) so the map can be compared with CAM: on a GAP + FC head, Grad-CAM
    of the last feature map = CAM / (h·w). The computation is captum's ``LayerGradCam``
    (Kokhlikyan et al., 2020); this function validates the inputs and sums its (B, 1, h, w) output
    over the singleton channel.

    Put the model in eval mode first (BatchNorm in train mode would mix the batch and update its
    running statistics). Gradients are enabled inside even when the caller disabled them; do not
    call it under ``torch.inference_mode()``.

    Args:
        model: network mapping (B, 3, H, W) images to (B, K) logits.
        layer_module: a sub-module of ``model`` whose output (B, C, h, w) is explained.
        x: (B, 3, H, W) images.
        classes: (B,) target class per sample.

    Returns:
        (B, h, w) Grad-CAM maps (detached).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``classes`` not integer indices.
        ValueError: ``layer_module`` is not a sub-module of ``model`` or does not output a
            (B, C, h, w) map; ``x`` not (B, 3, H, W); ``classes`` not of shape (B,).
    """
    from captum.attr import LayerGradCam  # imported here: captum is slow to import

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(layer_module, nn.Module) or not any(m is layer_module for m in model.modules()):
        raise ValueError(f"layer_module must be a sub-module of model (e.g. model.layer3), got "
                         f"{type(layer_module).__name__}")
    check_tensor(x, "x", 4, "(B, 3, H, W)")
    k = _as_classes(classes, x.shape[0], None, x.device)
    with torch.enable_grad():
        attr = LayerGradCam(model, layer_module).attribute(x, target=k, relu_attributions=False)
    if not isinstance(attr, torch.Tensor) or attr.dim() != 4:
        raise ValueError(f"layer_module's output must be a (B, C, h, w) feature map; Grad-CAM gave {shape_of(attr)}")
    return attr.detach().sum(1)


def normalize_map(m: torch.Tensor) -> torch.Tensor:
    """Min-max normalise maps to [0, 1], each sample separately, for display.

    A display convention, not part of CAM's or Grad-CAM's definition. Constant maps (all zero
    included) become all-zero maps instead of NaN. Per-map normalisation removes each map's scale:
    compare intensities across maps only on a shared scale.

    Args:
        m: (H, W) one map, or (B, H, W) / (B, 1, H, W) maps (normalised over all but dimension 0).

    Returns:
        Tensor of the same shape with values in [0, 1] (float32 for non-float32/64 inputs).

    Raises:
        ValueError: ``m`` is not (H, W), (B, H, W) or (B, 1, H, W).
    """
    check_tensor(m, "m", (2, 3, 4), "(H, W), (B, H, W) or (B, 1, H, W)")
    x = as_float(m)
    flat = x.reshape(1, -1) if x.dim() == 2 else x.reshape(x.shape[0], -1)
    lo = flat.amin(1, keepdim=True)
    hi = flat.amax(1, keepdim=True)
    rng = hi - lo
    scale = torch.maximum(hi.abs(), lo.abs())
    ok = rng > torch.finfo(x.dtype).eps * scale
    out = torch.where(ok, (flat - lo) / torch.where(ok, rng, torch.ones_like(rng)), torch.zeros_like(flat))
    return out.reshape(x.shape)
