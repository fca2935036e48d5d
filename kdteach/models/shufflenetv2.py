"""CIFAR ShuffleNetV2 of the CRD benchmark (its ``ShuffleV2``: net size 1, widths 116/232/464/1024).

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", ECCV 2018,
in the CIFAR form of the CRD benchmark (Tian et al., ICLR 2020; HobbitLong/RepDistiller
``models/ShuffleNetv2.py``): a 1x1 conv stem 3 -> 24 (stride 1, no max-pool), three stages, each a
stride-2 ``DownBlock`` followed by (3, 7, 3) ``BasicBlock`` units, then ``conv2`` 1x1 -> 1024 - BN -
ReLU, global average pooling and ``linear``.

* ``BasicBlock``: split channels in halves (x1, x2); x2 -> 1x1 conv-BN-ReLU -> 3x3 depthwise conv-BN
  -> 1x1 conv-BN-ReLU; concatenate [x1, branch]; channel shuffle (2 groups).
* ``DownBlock``: left = 3x3 depthwise stride-2 conv-BN -> 1x1 conv-BN-ReLU; right = 1x1 conv-BN-ReLU
  -> 3x3 depthwise stride-2 conv-BN -> 1x1 conv-BN-ReLU; concatenate; shuffle.

Parameter names, shapes and order equal the benchmark's. Every ReLU is its own non-in-place
module; the final pooling is adaptive (the benchmark's ``avg_pool2d(out, 4)`` at 32x32); the
benchmark keeps PyTorch's default initialisation, as we do.

Stage hook (``relu_out`` of a stage's last ``BasicBlock``). The benchmark applies the last ReLU to
the branch only, concatenates and shuffles; we concatenate [x1, branch], shuffle, then apply
``relu_out`` to all channels. This computes the same function with the same gradients because x1
is itself a ReLU output (every block input is >= 0, so ReLU leaves it unchanged), and it gives a
hook whose output is exactly the benchmark's stage feature (the shuffled block output). Its input
(our pre-activation) is the benchmark's ``preact`` feature with its channels shuffled, i.e. the
same tensor up to a fixed channel permutation (the benchmark returns that one unshuffled).

Stages: ``stem`` (``relu``, 24 channels, stride 1), ``layer1`` (116, stride 2), ``layer2``
(232, stride 4), ``layer3`` (464, stride 8).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import AliasedFC, ChannelShuffle, check_num_classes
from .base import Stage, check_input

STEM = 24
CONFIGS = {  # net size -> (out_channels of layer1..3 and conv2, BasicBlocks per stage)
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2: ((224, 488, 976, 2048), (3, 7, 3)),
}


class SplitBlock(nn.Module):
    """Split (B, C, H, W) into the first ``int(C * ratio)`` channels and the rest."""

    def __init__(self, ratio: float):
        super().__init__()
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = int(x.size(1) * self.ratio)
        return x[:, :c], x[:, c:]


class BasicBlock(nn.Module):
    """ShuffleNetV2 unit, stride 1: (B, C, H, W) -> (B, C, H, W). Expects inputs >= 0 (see module doc)."""

    def __init__(self, in_channels: int, split_ratio: float = 0.5):
        super().__init__()
        self.split = SplitBlock(split_ratio)
        c = int(in_channels * split_ratio)
        self.conv1 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.shuffle = ChannelShuffle(2)
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.split(x)
        out = self.relu1(self.bn1(self.conv1(x2)))
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        return self.relu_out(self.shuffle(torch.cat([x1, out], 1)))


class DownBlock(nn.Module):
    """ShuffleNetV2 unit, stride 2: (B, cin, H, W) -> (B, cout, H / 2, W / 2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # left branch
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=1,
                               groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU()
        # right branch
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)
        self.relu5 = nn.ReLU()
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.relu2(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(self.relu3(self.bn3(self.conv3(x)))))
        right = self.relu5(self.bn5(self.conv5(right)))
        return self.shuffle(torch.cat([left, right], 1))


class CifarShuffleNetV2(AliasedFC):
    """ShuffleNetV2 for CIFAR as in the CRD benchmark.

    Args:
        net_size: key of ``CONFIGS`` (1 for the benchmark's ``ShuffleV2``).
        num_classes: classifier outputs.

    ``forward``: (B, 3, H, W) -> logits (B, num_classes); H, W multiples of 8.
    """

    _fc_path = "linear"

    def __init__(self, net_size: float = 1, num_classes: int = 10):
        super().__init__()
        check_num_classes(num_classes)
        if net_size not in CONFIGS:
            raise ValueError(f"net_size must be one of {sorted(CONFIGS)}, got {net_size!r}")
        out_channels, num_blocks = CONFIGS[net_size]
        self.conv1 = nn.Conv2d(3, STEM, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        self.relu = nn.ReLU()
        self.in_channels = STEM
        self.layer1 = self._make_layer(out_channels[0], num_blocks[0])
        self.layer2 = self._make_layer(out_channels[1], num_blocks[1])
        self.layer3 = self._make_layer(out_channels[2], num_blocks[2])
        self.conv2 = nn.Conv2d(out_channels[2], out_channels[3], kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.relu2 = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(out_channels[3], num_classes)  # ``self.fc`` is an alias
        self.feature_dim = out_channels[3]
        self.stages = (Stage("stem", STEM, 1, "relu"),) + tuple(
            Stage(f"layer{i + 1}", out_channels[i], 2 ** (i + 1), f"layer{i + 1}.{num_blocks[i]}.relu_out")
            for i in range(3))

    def _make_layer(self, out_channels: int, num_blocks: int) -> nn.Sequential:
        layers: list[nn.Module] = [DownBlock(self.in_channels, out_channels)]
        layers += [BasicBlock(out_channels) for _ in range(num_blocks)]
        self.in_channels = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.linear(torch.flatten(self.avgpool(out), 1))


def shufflenetv2(num_classes: int = 10) -> CifarShuffleNetV2:
    """The benchmark's ``ShuffleV2`` (net size 1); ~1.36M parameters at 100 classes."""
    return CifarShuffleNetV2(1, num_classes)
