"""CIFAR MobileNetV2 of the CRD benchmark (its ``mobile_half``: expansion T=6, width 0.5).

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, in the CIFAR
form the CRD benchmark took from Jin et al., "Knowledge Distillation via Route Constrained
Optimization", ICCV 2019 (Tian et al., ICLR 2020; HobbitLong/RepDistiller ``models/mobilenetv2.py``):

* stem ``conv1`` = conv3x3 stride 2 - BN - ReLU with ``int(32 * width)`` channels;
* seven groups ``blocks[0..6]`` of inverted residuals (t, c, n, s) = (1, 16, 1, 1), (T, 24, 2, 1),
  (T, 32, 3, 2), (T, 64, 4, 2), (T, 96, 3, 1), (T, 160, 3, 2), (T, 320, 1, 1), widths
  ``int(c * width)``; every block has the 1x1 expansion conv, even when t = 1;
* ``conv2`` = 1x1 conv - BN - ReLU to 1280 channels (``int(1280 * width)`` only when width > 1),
  global average pooling, ``classifier`` = Sequential(Linear(1280, num_classes)).

Total stride 16: a 32x32 input ends at 2x2 (the benchmark's ``AvgPool2d(2, ceil_mode=True)``, here
adaptive, so 16x16 inputs, ending at 1x1, work too).

Parameter names, shapes and order equal the benchmark's. Differences: no in-place ReLUs, and each
inverted residual ends with an ``nn.Identity`` called ``out_act`` (the linear bottleneck has no
activation), used as the stage hook (pre == post).

Stages follow the benchmark's features (the last group at each resolution):
``stem`` (``conv1.2``, stride 2, benchmark f0), ``block1`` (end of ``blocks[1]``, stride 2, f1),
``block2`` (``blocks[2]``, stride 4, f2), ``block4`` (``blocks[4]``, stride 8, f3),
``block6`` (``blocks[6]``, stride 16, f4). Stage names carry the index into ``blocks``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import AliasedFC, check_num_classes, init_linear_small
from .base import Stage, check_input, init_weights

SETTING = [  # t (expansion; None = T), c (width before the multiplier), n (blocks), s (first stride)
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
]
STAGE_GROUPS = (1, 2, 4, 6)  # the groups the benchmark returns as features


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class InvertedResidual(nn.Module):
    """1x1 expand - BN - ReLU - 3x3 depthwise (stride) - BN - ReLU - 1x1 project - BN (linear).

    Shapes: (B, cin, H, W) -> (B, cout, H / stride, W / stride); identity shortcut when
    stride == 1 and cin == cout. The result passes ``out_act`` (``nn.Identity``) for hooks.
    """

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        hidden = cin * expand_ratio
        self.stride = stride
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.out_act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return self.out_act(x + out if self.use_res_connect else out)


class CifarMobileNetV2(AliasedFC):
    """MobileNetV2 for CIFAR as in the CRD benchmark.

    Args:
        num_classes: classifier outputs.
        expansion: T, the expansion ratio of groups 1-6 (6 in ``mobile_half``).
        width_mult: channel multiplier (0.5 in ``mobile_half``).

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 16.
    """

    def __init__(self, num_classes: int = 10, expansion: int = 6, width_mult: float = 0.5):
        super().__init__()
        check_num_classes(num_classes)
        if not isinstance(expansion, int) or expansion < 1:
            raise ValueError(f"expansion must be a positive int, got {expansion!r}")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
        cin = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(3, cin, 3, 2)
        self.blocks = nn.ModuleList()
        widths, strides, stride = [], [], 2
        for t, c, n, s in SETTING:
            cout = int(c * width_mult)
            group = []
            for i in range(n):
                group.append(InvertedResidual(cin, cout, s if i == 0 else 1, expansion if t is None else t))
                cin = cout
            self.blocks.append(nn.Sequential(*group))
            stride *= s
            widths.append(cout)
            strides.append(stride)
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(cin, self.last_channel, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._fc_path = "classifier.0"
        self.feature_dim = self.last_channel
        self.stages = (Stage("stem", int(32 * width_mult), 2, "conv1.2"),) + tuple(
            Stage(f"block{g}", widths[g], strides[g], f"blocks.{g}.{len(self.blocks[g]) - 1}.out_act")
            for g in STAGE_GROUPS)
        init_weights(self)  # N(0, sqrt(2 / (k*k*cout))) convs, unit BN
        init_linear_small(self.classifier[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        out = self.conv1(x)
        for group in self.blocks:
            out = group(out)
        out = self.conv2(out)
        return self.classifier(torch.flatten(self.avgpool(out), 1))


def mobilenetv2(num_classes: int = 10) -> CifarMobileNetV2:
    """The benchmark's ``mobile_half`` (T=6, width 0.5); ~0.81M parameters at 100 classes."""
    return CifarMobileNetV2(num_classes, expansion=6, width_mult=0.5)
