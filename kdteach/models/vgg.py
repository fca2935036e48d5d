"""CIFAR VGG nets of the CRD benchmark: vgg8, vgg11, vgg13, vgg16, vgg19 (its ``vgg*_bn``).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015, in the CIFAR form of the CRD benchmark (Tian et al., ICLR 2020; HobbitLong/RepDistiller
``models/vgg.py``): five conv groups ``block0..block4`` of conv3x3(bias)-BN(-ReLU) layers, max-pool
between groups 0-1, 1-2 and 2-3 (none between 3 and 4 at 32x32), global average pooling and a
single ``classifier`` Linear(512, num_classes). No fully connected hidden layers.

Configurations (convs per group, widths 64/128/256/512/512):
``vgg8`` = [1, 1, 1, 1, 1] ("S"), ``vgg11`` = [1, 1, 2, 2, 2] ("A"), ``vgg13`` = [2, 2, 2, 2, 2] ("B"),
``vgg16`` = [2, 2, 3, 3, 3] ("D"), ``vgg19`` = [2, 2, 4, 4, 4] ("E").

Each ``block{i}`` is an ``nn.Sequential`` with the benchmark's indices (conv, BN, ReLU, conv, BN, ...;
the group ends with a BN), so parameter names, shapes and order equal the benchmark's. The ReLU
the benchmark applies to a group's output with ``F.relu`` is the module ``relu{i}`` here, which is
the stage's hooked activation: input = benchmark ``f{i}_pre``, output = benchmark ``f{i}``.
Differences from the benchmark: no in-place ReLUs; its ``pool3``, used only for 64x64 inputs, is
left out (this course uses 32x32 and 16x16).

Stages: ``block0`` (stride 1), ``block1`` (2), ``block2`` (4), ``block3`` (8), ``block4`` (8).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import AliasedFC, check_num_classes, init_linear_small
from .base import Stage, check_input, init_weights

CFG = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _make_group(widths: list[int], cin: int) -> nn.Sequential:
    """conv3x3(bias)-BN-ReLU per width, without the last ReLU: (B, cin, H, W) -> (B, widths[-1], H, W)."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, kernel_size=3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
        cin = w
    return nn.Sequential(*layers[:-1])


class CifarVGG(AliasedFC):
    """VGG with batch norm for CIFAR, as the CRD benchmark's ``vgg*_bn``.

    Args:
        cfg: five lists of conv widths, one per group (see ``CFG``).
        num_classes: classifier outputs.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 8.
    """

    def __init__(self, cfg: list[list[int]], num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if len(cfg) != 5 or any(len(g) == 0 for g in cfg):
            raise ValueError(f"cfg must hold 5 non-empty lists of widths, got {cfg!r}")
        cins = [3] + [g[-1] for g in cfg[:-1]]
        self.block0 = _make_group(cfg[0], cins[0])
        self.block1 = _make_group(cfg[1], cins[1])
        self.block2 = _make_group(cfg[2], cins[2])
        self.block3 = _make_group(cfg[3], cins[3])
        self.block4 = _make_group(cfg[4], cins[4])
        self.relu0, self.relu1, self.relu2, self.relu3, self.relu4 = (nn.ReLU() for _ in range(5))
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool4 = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg[4][-1], num_classes)  # ``self.fc`` is an alias
        self.feature_dim = cfg[4][-1]
        strides = (1, 2, 4, 8, 8)
        self.stages = tuple(Stage(f"block{i}", cfg[i][-1], strides[i], f"relu{i}") for i in range(5))
        init_weights(self)  # N(0, sqrt(2 / (k*k*cout))) convs with zero bias, unit BN
        init_linear_small(self.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        x = self.pool0(self.relu0(self.block0(x)))
        x = self.pool1(self.relu1(self.block1(x)))
        x = self.pool2(self.relu2(self.block2(x)))
        x = self.relu3(self.block3(x))
        x = self.relu4(self.block4(x))
        return self.classifier(torch.flatten(self.pool4(x), 1))


def vgg8(num_classes: int = 10) -> CifarVGG:
    """VGG-8 with BN (config "S", the benchmark's ``vgg8_bn``); ~3.96M parameters at 100 classes."""
    return CifarVGG(CFG["S"], num_classes)


def vgg11(num_classes: int = 10) -> CifarVGG:
    """VGG-11 with BN (config "A", the benchmark's ``vgg11_bn``); ~9.28M parameters at 100 classes."""
    return CifarVGG(CFG["A"], num_classes)


def vgg13(num_classes: int = 10) -> CifarVGG:
    """VGG-13 with BN (config "B", the benchmark's ``vgg13_bn``); ~9.46M parameters at 100 classes."""
    return CifarVGG(CFG["B"], num_classes)


def vgg16(num_classes: int = 10) -> CifarVGG:
    """VGG-16 with BN (config "D", the benchmark's ``vgg16_bn``); ~14.77M parameters at 100 classes."""
    return CifarVGG(CFG["D"], num_classes)


def vgg19(num_classes: int = 10) -> CifarVGG:
    """VGG-19 with BN (config "E", the benchmark's ``vgg19_bn``); ~20.09M parameters at 100 classes."""
    return CifarVGG(CFG["E"], num_classes)
