"""CIFAR Wide ResNets of the CRD benchmark: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.

Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016: pre-activation blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut), depth = 6n + 4, widths 16, 16k, 32k, 64k for widen
factor k. As in the CRD benchmark (Tian et al., ICLR 2020; HobbitLong/RepDistiller ``models/wrn.py``),
including its shortcut rule: when a block changes width, the BN-ReLU'd input feeds both the conv
path and the 1x1 ``convShortcut``; otherwise the raw input is the identity shortcut.

Parameter names, shapes and order equal the benchmark's (``conv1``, ``block{1,2,3}.layer.{i}.*``,
``bn1``, ``fc``), so its checkpoints load as is. The global pooling is adaptive (the benchmark's
``avg_pool2d(out, 8)`` at 32x32), so 16x16 inputs work. Dropout is not used (the benchmark's
``dropRate`` is 0 for all its nets).

Stage features (pre-activation design). A pre-activation block's output is a raw residual sum;
it becomes "activated" only inside the next block, as ``relu1(bn1(sum))``. We follow what the
benchmark returns with ``preact=True``: the stage feature is hooked at the **first ReLU that
consumes the stage output**, i.e. the next block's ``relu1`` (the final ``relu`` after ``bn1`` for
the last stage):

=========  ==========================  ===========================================  ========
stage      ``Stage.module``            pre-activation (hook input)                  stride
=========  ==========================  ===========================================  ========
stem       ``block1.layer.0.relu1``    ``bn1`` of ``conv1``'s output                1
block1     ``block2.layer.0.relu1``    ``block2.layer[0].bn1(f1)`` = benchmark f1   1
block2     ``block3.layer.0.relu1``    ``block3.layer[0].bn1(f2)`` = benchmark f2   2
block3     ``relu``                    ``bn1(f3)`` = benchmark f3                   4
=========  ==========================  ===========================================  ========

The post-activation (hook output) is ReLU of that, the tensor the next convolution reads. For
block1..3 the pre-activation features equal the benchmark's ``preact`` features exactly (the BNs of
its ``get_bn_before_relu``, used by OFD). Its non-``preact`` features are the raw sums (before BN)
and have no counterpart here; its ``f0`` is the raw ``conv1`` output, ours is ``bn1`` + ReLU of it.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_num_classes
from .base import KDModel, Stage, check_input, init_weights


class WideBasicBlock(nn.Module):
    """Pre-activation block: (B, cin, H, W) -> (B, cout, H / stride, W / stride), no final activation."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.equalInOut = cin == cout
        self.convShortcut = None if self.equalInOut else nn.Conv2d(
            cin, cout, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        shortcut = x if self.equalInOut else self.convShortcut(act)
        return shortcut + out


class NetworkBlock(nn.Module):
    """``nb_layers`` WideBasicBlocks in ``self.layer`` (the first one carries the stride)."""

    def __init__(self, nb_layers: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[WideBasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(nb_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(KDModel):
    """WRN-depth-k for CIFAR (depth = 6n + 4), as in the CRD benchmark.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 4. See the module
    docstring for the stage features.
    """

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 40, ...), got {depth!r}")
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive int, got {widen_factor!r}")
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, ch[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]
        self.feature_dim = ch[3]
        self.stages = (
            Stage("stem", ch[0], 1, "block1.layer.0.relu1"),
            Stage("block1", ch[1], 1, "block2.layer.0.relu1"),
            Stage("block2", ch[2], 2, "block3.layer.0.relu1"),
            Stage("block3", ch[3], 4, "relu"),
        )
        init_weights(self)  # N(0, sqrt(2 / (k*k*cout))) convs = kaiming_normal(fan_out), unit BN
        nn.init.zeros_(self.fc.bias)  # the benchmark zeroes Linear biases (weights: PyTorch default)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(self.avgpool(out), 1))


def wrn_16_1(num_classes: int = 10) -> WideResNet:
    """WRN-16-1 (n=2, widths 16/16/32/64); ~0.18M parameters at 100 classes."""
    return WideResNet(16, 1, num_classes)


def wrn_16_2(num_classes: int = 10) -> WideResNet:
    """WRN-16-2 (n=2, widths 16/32/64/128); ~0.70M parameters at 100 classes."""
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes: int = 10) -> WideResNet:
    """WRN-40-1 (n=6, widths 16/16/32/64); ~0.57M parameters at 100 classes."""
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes: int = 10) -> WideResNet:
    """WRN-40-2 (n=6, widths 16/32/64/128); ~2.26M parameters at 100 classes."""
    return WideResNet(40, 2, num_classes)
