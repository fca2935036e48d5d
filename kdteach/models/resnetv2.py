"""The CIFAR ResNet-50 of the CRD benchmark (Bottleneck blocks, four stages, 64-wide 3x3 stem).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: the ImageNet ResNet-50 layout
(3, 4, 6, 3 Bottleneck blocks of widths 64/128/256/512, expansion 4) with the CIFAR stem of the CRD
benchmark (Tian et al., "Contrastive Representation Distillation", ICLR 2020; repo
HobbitLong/RepDistiller, ``models/resnetv2.py``, model name ``ResNet50``): one 3x3 stride-1 conv +
BN + ReLU and no max-pool, so a 32x32 image reaches ``layer4`` at 4x4. It is the benchmark's
teacher of the ResNet50 -> MobileNetV2 and ResNet50 -> vgg8 pairs.

Parameter names, shapes and registration order equal the benchmark's (``conv1``, ``bn1``,
``layer{1..4}.{i}.conv{1,2,3}/bn{1,2,3}``, ``layer{k}.0.shortcut.{0,1}`` for the projection
shortcuts, ``linear``), so its checkpoints load as is; ``model.fc`` is an alias of ``linear``.
Differences, none of which touch parameters or the function computed: every activation is its own
non-in-place module called once per forward (``relu`` in the stem; ``relu1``, ``relu2`` and
``relu_out`` in each block), and an identity shortcut is ``None`` instead of an empty
``nn.Sequential`` (neither has parameters).

Stages (``Stage.module`` input = the benchmark's ``preact`` feature f1_pre..f4_pre, output = its
feature f1..f4): ``stem`` (``relu``, 64 channels, stride 1) and ``layer1..4`` (256/512/1024/2048
channels, strides 1/2/4/8), each hooked at ``relu_out`` of the stage's last block.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import AliasedFC, check_num_classes
from .base import Stage, check_input, init_weights


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU, conv3x3(stride)-BN-ReLU, conv1x1-BN (4x wider), + shortcut, then ``relu_out``.

    Shapes: (B, cin, H, W) -> (B, 4 * planes, H / stride, W / stride). The shortcut is the identity,
    or a 1x1 conv-BN projection when the stride or the width changes.
    """

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = self.expansion * planes
        self.conv1 = nn.Conv2d(cin, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, cout, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(out)))))
        return self.relu_out(out + (x if self.shortcut is None else self.shortcut(x)))


class CifarBottleneckResNet(AliasedFC):
    """ResNet with Bottleneck blocks and a CIFAR stem, as the CRD benchmark's ``ResNet50``.

    Args:
        num_blocks: blocks in layer1..4 (``(3, 4, 6, 3)`` for ResNet-50).
        num_classes: classifier outputs.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 8 (32 or 16 in the course).
    """

    _fc_path = "linear"

    def __init__(self, num_blocks: tuple[int, int, int, int], num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if len(num_blocks) != 4 or any(not isinstance(n, int) or n < 1 for n in num_blocks):
            raise ValueError(f"num_blocks must hold 4 positive ints (layer1..4), got {num_blocks!r}")
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(512, num_blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        width = 512 * Bottleneck.expansion
        self.linear = nn.Linear(width, num_classes)  # ``self.fc`` is an alias
        self.feature_dim = width
        self.stages = (Stage("stem", 64, 1, "relu"),) + tuple(
            Stage(f"layer{k}", 64 * 2 ** (k - 1) * Bottleneck.expansion, 2 ** (k - 1),
                  f"layer{k}.{num_blocks[k - 1] - 1}.relu_out") for k in (1, 2, 3, 4))
        init_weights(self)  # kaiming_normal(fan_out) convs, unit BN; linear keeps PyTorch's default

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(Bottleneck(self.in_planes, planes, stride if i == 0 else 1))
            self.in_planes = planes * Bottleneck.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.linear(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 10) -> CifarBottleneckResNet:
    """CIFAR ResNet-50 (Bottleneck, 3/4/6/3 blocks; the benchmark's ``ResNet50``); ~23.71M parameters at 100 classes."""
    return CifarBottleneckResNet((3, 4, 6, 3), num_classes)
