"""What every kdteach model declares, so distillation methods need no per-model code.

A model is a plain ``nn.Module`` whose ``forward(x)`` returns logits (B, num_classes). In addition
it declares:

* ``stages``: a tuple of :class:`Stage`, shallow to deep. Each stage names an *activation module*
  (``Stage.module``, a dotted path inside the model) that is called exactly once per forward pass:
  its **input** is the stage's pre-activation output and its **output** the post-activation output.
  :mod:`kdteach.features` hooks that module, so pre-activation features (AB, OFD) come without
  rewriting ``forward()``. Where a stage ends without a non-linearity (MobileNetV2's linear
  bottlenecks) the module is an ``nn.Identity`` and pre == post.
* ``feature_dim``: size of the pooled penultimate feature (the input of ``fc``).
* ``fc``: the final linear classifier. The feature name ``"pool"`` is its input.

Activations are never in-place (captum's and our hooks need the tensors intact).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Stage:
    """One capturable stage of a model.

    Attributes:
        name: feature name used by :func:`kdteach.features.capture` (e.g. ``"layer2"``).
        channels: channels C of the stage output (B, C, H, W).
        stride: total down-sampling of the stage output relative to the input (H = input / stride).
        module: dotted path of the activation module (input = pre-activation, output = post).
    """

    name: str
    channels: int
    stride: int
    module: str


class KDModel(nn.Module):
    """Base class: subclasses set ``stages``, ``feature_dim`` and ``fc`` in ``__init__``."""

    stages: tuple[Stage, ...] = ()
    feature_dim: int = 0

    def stage(self, name: str) -> Stage:
        """The :class:`Stage` called ``name`` (KeyError listing the valid names otherwise)."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"{type(self).__name__} has no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def stage_shapes(self, resolution: int = 32) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) of every stage output for square inputs of side ``resolution``."""
        return {s.name: (s.channels, max(1, resolution // s.stride), max(1, resolution // s.stride))
                for s in self.stages}

    @property
    def num_classes(self) -> int:
        return int(self.fc.out_features)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, zero biases; as in the CRD benchmark's CIFAR models."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_input(x: torch.Tensor, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is an image batch (B, 3, H, W)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an image batch of shape (B, 3, H, W), got {shape}")
