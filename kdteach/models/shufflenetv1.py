"""CIFAR ShuffleNetV1 of the CRD benchmark (its ``ShuffleV1``: groups 3, widths 240/480/960).

Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
CVPR 2018, in the CIFAR form of the CRD benchmark (Tian et al., ICLR 2020; HobbitLong/RepDistiller
``models/ShuffleNetv1.py``): a 1x1 conv stem 3 -> 24 (stride 1), three stages of (4, 8, 4)
bottlenecks, each stage starting with a stride-2 block whose output concatenates the residual
branch with a 3x3 average-pooled shortcut, global average pooling and ``linear``.

A bottleneck: grouped 1x1 conv (groups 1 when its input has 24 channels) - BN - ReLU - channel
shuffle - 3x3 depthwise conv (stride) - BN - ReLU - grouped 1x1 conv - BN; then add (stride 1) or
concatenate (stride 2) the shortcut, then ReLU. Mid width = out / 4.

Parameter names, shapes and order equal the benchmark's. Differences: every ReLU is its own
non-in-place module (``relu`` for the stem; ``relu1``, ``relu2``, ``relu_out`` in a block), the
final pooling is adaptive (the benchmark's ``avg_pool2d(out, 4)`` at 32x32), and the benchmark
keeps PyTorch's default initialisation, as we do (no explicit Kaiming init in its ShuffleNets).

Stages (hook input = the benchmark's ``preact`` feature, output = its feature):
``stem`` (``relu``, 24 channels, stride 1), ``layer1`` (240, stride 2), ``layer2`` (480, stride 4),
``layer3`` (960, stride 8), each at the ``relu_out`` of the stage's last block.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import AliasedFC, ChannelShuffle, check_num_classes
from .base import Stage, check_input

STEM = 24


class ShuffleV1Bottleneck(nn.Module):
    """ShuffleNetV1 unit: (B, cin, H, W) -> (B, cout + (cin if stride == 2 else 0), H / s, W / s)."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        if stride == 1 and cin != cout:
            raise ValueError(f"a stride-1 unit adds its shortcut: cin ({cin}) must equal cout ({cout})")
        self.stride = stride
        mid = int(cout / 4)
        g = 1 if cin == STEM else groups
        self.conv1 = nn.Conv2d(cin, mid, kernel_size=1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU()
        self.shuffle1 = ChannelShuffle(g)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(mid, cout, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle1(self.relu1(self.bn1(self.conv1(x))))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.shortcut(x)
        return self.relu_out(torch.cat([out, res], 1) if self.stride == 2 else out + res)


class CifarShuffleNetV1(AliasedFC):
    """ShuffleNetV1 for CIFAR as in the CRD benchmark.

    Args:
        out_planes: output widths of the three stages.
        num_blocks: units per stage.
        groups: groups of the 1x1 convolutions.
        num_classes: classifier outputs.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 8.
    """

    _fc_path = "linear"

    def __init__(self, out_planes=(240, 480, 960), num_blocks=(4, 8, 4), groups: int = 3,
                 num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if len(out_planes) != 3 or len(num_blocks) != 3 or min(num_blocks) < 1:
            raise ValueError(f"out_planes and num_blocks must hold 3 entries (blocks >= 1), got "
                             f"{out_planes!r}, {num_blocks!r}")
        self.conv1 = nn.Conv2d(3, STEM, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        self.relu = nn.ReLU()
        self.in_planes = STEM
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(out_planes[2], num_classes)  # ``self.fc`` is an alias
        self.feature_dim = out_planes[2]
        self.stages = (Stage("stem", STEM, 1, "relu"),) + tuple(
            Stage(f"layer{i + 1}", out_planes[i], 2 ** (i + 1), f"layer{i + 1}.{num_blocks[i] - 1}.relu_out")
            for i in range(3))

    def _make_layer(self, out_planes: int, num_blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(num_blocks):
            cat_planes = self.in_planes if i == 0 else 0
            layers.append(ShuffleV1Bottleneck(self.in_planes, out_planes - cat_planes, 2 if i == 0 else 1, groups))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.avgpool(out), 1))


def shufflenetv1(num_classes: int = 10) -> CifarShuffleNetV1:
    """The benchmark's ``ShuffleV1`` (groups 3, widths 240/480/960); ~0.95M parameters at 100 classes."""
    return CifarShuffleNetV1(num_classes=num_classes)
