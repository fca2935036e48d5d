"""CIFAR ResNets of the CRD benchmark: resnet8/14/20/32/44/56/110 and the 4x-wide resnet8x4/32x4.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the CIFAR variant: a 3x3 stem
and three stages of ``n`` BasicBlocks, depth = 6n + 2). Widths as in the CRD benchmark
(Tian et al., "Contrastive Representation Distillation", ICLR 2020; repo HobbitLong/RepDistiller,
``models/resnet.py``): ``[16, 16, 32, 64]`` (stem, layer1, layer2, layer3), and
``[32, 64, 128, 256]`` for the ``x4`` nets.

Parameter names, shapes and registration order equal the benchmark's, so its ``state_dict`` loads
as is (:func:`kdteach.models.load_benchmark_state_dict` also strips a ``module.`` prefix).
Differences, none of which touch parameters or the function computed at 32x32:

* every activation is its own non-in-place module, called once per forward: ``relu`` (stem),
  and in each block ``relu`` (after ``bn1``) and ``relu_out`` (after the residual add);
* the final pooling is ``AdaptiveAvgPool2d(1)`` (the benchmark's ``AvgPool2d(8)`` is the same
  global average at 32x32), so 16x16 inputs work.

Stages (``Stage.module`` input = the benchmark's ``preact`` feature, output = its feature):
``stem`` (``relu``, stride 1), ``layer1`` (stride 1), ``layer2`` (stride 2), ``layer3`` (stride 4),
each hooked at the ``relu_out`` of the stage's last block.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_num_classes
from .base import KDModel, Stage, check_input, init_weights


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut (identity or 1x1 conv-BN), then ``relu_out``.

    Shapes: (B, cin, H, W) -> (B, cout, H / stride, W / stride).
    """

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.stride = stride
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu_out(out + residual)


class CifarResNet(KDModel):
    """CIFAR ResNet (BasicBlock, depth = 6n + 2) as in the CRD benchmark.

    Args:
        depth: total depth, 6n + 2 (8, 14, 20, 32, 44, 56, 110).
        num_filters: widths (stem, layer1, layer2, layer3).
        num_classes: classifier outputs.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 4 (32 or 16 in the course).
    """

    def __init__(self, depth: int, num_filters: tuple[int, int, int, int], num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth!r}")
        if len(num_filters) != 4:
            raise ValueError(f"num_filters must hold 4 widths (stem, layer1..3), got {num_filters!r}")
        n = (depth - 2) // 6
        self.depth = depth
        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(3, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(num_filters[1], n, stride=1)
        self.layer2 = self._make_layer(num_filters[2], n, stride=2)
        self.layer3 = self._make_layer(num_filters[3], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_filters[3], num_classes)
        self.feature_dim = num_filters[3]
        self.stages = (
            Stage("stem", num_filters[0], 1, "relu"),
            Stage("layer1", num_filters[1], 1, f"layer1.{n - 1}.relu_out"),
            Stage("layer2", num_filters[2], 2, f"layer2.{n - 1}.relu_out"),
            Stage("layer3", num_filters[3], 4, f"layer3.{n - 1}.relu_out"),
        )
        init_weights(self)  # kaiming_normal(fan_out) convs, unit BN; fc keeps PyTorch's default

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_BASE = (16, 16, 32, 64)
_X4 = (32, 64, 128, 256)


def resnet8(num_classes: int = 10) -> CifarResNet:
    """ResNet-8 (n=1), widths 16/16/32/64; ~0.08M parameters at 100 classes."""
    return CifarResNet(8, _BASE, num_classes)


def resnet14(num_classes: int = 10) -> CifarResNet:
    """ResNet-14 (n=2), widths 16/16/32/64; ~0.18M parameters at 100 classes."""
    return CifarResNet(14, _BASE, num_classes)


def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 (n=3), widths 16/16/32/64; ~0.28M parameters at 100 classes."""
    return CifarResNet(20, _BASE, num_classes)


def resnet32(num_classes: int = 10) -> CifarResNet:
    """ResNet-32 (n=5), widths 16/16/32/64; ~0.47M parameters at 100 classes."""
    return CifarResNet(32, _BASE, num_classes)


def resnet44(num_classes: int = 10) -> CifarResNet:
    """ResNet-44 (n=7), widths 16/16/32/64; ~0.67M parameters at 100 classes."""
    return CifarResNet(44, _BASE, num_classes)


def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 (n=9), widths 16/16/32/64; ~0.86M parameters at 100 classes."""
    return CifarResNet(56, _BASE, num_classes)


def resnet110(num_classes: int = 10) -> CifarResNet:
    """ResNet-110 (n=18), widths 16/16/32/64; ~1.74M parameters at 100 classes."""
    return CifarResNet(110, _BASE, num_classes)


def resnet8x4(num_classes: int = 10) -> CifarResNet:
    """ResNet-8x4 (n=1), widths 32/64/128/256; ~1.23M parameters at 100 classes."""
    return CifarResNet(8, _X4, num_classes)


def resnet32x4(num_classes: int = 10) -> CifarResNet:
    """ResNet-32x4 (n=5), widths 32/64/128/256; ~7.43M parameters at 100 classes."""
    return CifarResNet(32, _X4, num_classes)
