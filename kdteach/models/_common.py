"""Small helpers shared by the CIFAR zoo (private to :mod:`kdteach.models`)."""

from __future__ import annotations

import torch
from torch import nn

from .base import KDModel


def check_num_classes(num_classes: int) -> int:
    """Return ``num_classes`` if it is an int >= 2, else raise ValueError/TypeError naming it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int >= 2, got {type(num_classes).__name__} {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes}")
    return num_classes


def init_linear_small(linear: nn.Linear, std: float = 0.01) -> None:
    """N(0, std) weights and zero bias, as the benchmark's VGG and MobileNetV2 classifiers."""
    nn.init.normal_(linear.weight, 0.0, std)
    nn.init.zeros_(linear.bias)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (B, C, H, W) -> (B, C, H, W), channel ``g*j + i`` <- ``i*(C/g) + j``.

    Zhang et al., "ShuffleNet", CVPR 2018. Uses ``reshape`` so channels_last inputs work.
    """

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.groups
        return x.reshape(b, g, c // g, h, w).transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class AliasedFC(KDModel):
    """A KDModel whose classifier keeps the benchmark's name (``_fc_path``) and is also ``self.fc``.

    ``model.fc`` returns the module at ``_fc_path`` (e.g. ``"classifier"`` or ``"linear"``) and
    ``model.fc = new_linear`` replaces it there, so the state_dict has no duplicate ``fc.*`` keys.
    """

    _fc_path: str = "classifier"

    @property
    def fc(self) -> nn.Linear:  # type: ignore[override]
        return self.get_submodule(self._fc_path)

    def __setattr__(self, name: str, value) -> None:
        if name == "fc":
            parent, _, leaf = self._fc_path.rpartition(".")
            setattr(self.get_submodule(parent) if parent else self, leaf, value)
            return
        super().__setattr__(name, value)
