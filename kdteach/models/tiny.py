"""Tiny CIFAR nets for CPU demonstrations (the ``ci`` budget's default teacher/student pair).

Both nets share the stage widths (16, 24, 32) at strides (1, 2, 4), so every feature method,
including those that compare channel-indexed matrices (FSP, KD-SVD), pairs them stage by stage.

* ``tiny_teacher`` (~50k parameters): a residual net, stem + BasicBlocks (1, 1, 2) per stage.
* ``tiny_student`` (~13k parameters): a plain net, stem + one conv-BN-ReLU per stage.
* ``tiny_assistant`` (~32k parameters): the teacher's residual design with one block per stage
  (1, 1, 1), between the two in size: the teacher assistant of TAKD's chain at the ``ci`` budget.
* ``tiny_assistant_small`` (~23k parameters): the student's plain design with a second 32->32
  conv-BN-ReLU in ``layer3``, between the student and ``tiny_assistant``: TAKD's second, smaller
  assistant (a deeper plain net, as the paper's plain-CNN assistants are).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import KDModel, Stage, check_input, init_weights

WIDTHS = (16, 24, 32)


class _ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _Block(nn.Module):
    """BasicBlock: conv-BN-ReLU-conv-BN, + shortcut, then ``relu_out`` (the hooked activation)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu_out(out + res)


class TinyTeacher(KDModel):
    """Residual tiny teacher: stem 3->16, stages of BasicBlocks (1, 1, 2) with widths (16, 24, 32)."""

    def __init__(self, num_classes: int = 10, blocks: tuple[int, int, int] = (1, 1, 2)):
        super().__init__()
        w = WIDTHS
        self.stem = _ConvBNReLU(3, w[0])
        layers, cin = [], w[0]
        for i, (cout, n) in enumerate(zip(w, blocks)):
            stride = 1 if i == 0 else 2
            mods = [_Block(cin, cout, stride)] + [_Block(cout, cout) for _ in range(n - 1)]
            layers.append(nn.Sequential(*mods))
            cin = cout
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w[2], num_classes)
        self.feature_dim = w[2]
        self.stages = (
            Stage("stem", w[0], 1, "stem.relu"),
            Stage("layer1", w[0], 1, f"layer1.{blocks[0] - 1}.relu_out"),
            Stage("layer2", w[1], 2, f"layer2.{blocks[1] - 1}.relu_out"),
            Stage("layer3", w[2], 4, f"layer3.{blocks[2] - 1}.relu_out"),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyStudent(KDModel):
    """Plain tiny student: stem 3->16, then one conv-BN-ReLU per stage, widths (16, 24, 32).

    ``layer3_depth`` > 1 appends that many − 1 conv-BN-ReLU (32->32) to ``layer3`` (then a
    ``Sequential``; the stage is its last ReLU): ``tiny_assistant_small`` is depth 2.
    """

    def __init__(self, num_classes: int = 10, layer3_depth: int = 1):
        super().__init__()
        if isinstance(layer3_depth, bool) or not isinstance(layer3_depth, int) or layer3_depth < 1:
            raise ValueError(f"layer3_depth must be an int >= 1, got {layer3_depth!r}")
        w = WIDTHS
        self.stem = _ConvBNReLU(3, w[0])
        self.layer1 = _ConvBNReLU(w[0], w[0], 1)
        self.layer2 = _ConvBNReLU(w[0], w[1], 2)
        if layer3_depth == 1:   # the student's own parameter names (cached students load strictly)
            self.layer3 = _ConvBNReLU(w[1], w[2], 2)
            layer3_out = "layer3.relu"
        else:
            self.layer3 = nn.Sequential(_ConvBNReLU(w[1], w[2], 2),
                                        *(_ConvBNReLU(w[2], w[2], 1) for _ in range(layer3_depth - 1)))
            layer3_out = f"layer3.{layer3_depth - 1}.relu"
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w[2], num_classes)
        self.feature_dim = w[2]
        self.stages = (
            Stage("stem", w[0], 1, "stem.relu"),
            Stage("layer1", w[0], 1, "layer1.relu"),
            Stage("layer2", w[1], 2, "layer2.relu"),
            Stage("layer3", w[2], 4, layer3_out),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_teacher(num_classes: int = 10) -> TinyTeacher:
    """Tiny residual teacher (~50k parameters at 10 classes)."""
    return TinyTeacher(num_classes)


def tiny_student(num_classes: int = 10) -> TinyStudent:
    """Tiny plain student (~13k parameters at 10 classes)."""
    return TinyStudent(num_classes)


def tiny_assistant(num_classes: int = 10) -> TinyTeacher:
    """Tiny residual net between the teacher and the student in size (~32k parameters at 10 classes):
    BasicBlocks (1, 1, 1) with the shared widths; TAKD's teacher assistant at the ``ci`` budget."""
    return TinyTeacher(num_classes, blocks=(1, 1, 1))


def tiny_assistant_small(num_classes: int = 10) -> TinyStudent:
    """Tiny plain net between ``tiny_student`` and ``tiny_assistant`` in size (~23k parameters at 10
    classes): the student with a second 32->32 conv-BN-ReLU in ``layer3``; TAKD's second, smaller
    teacher assistant at the ``ci`` budget (Mirzadeh et al., AAAI 2020, compare assistants of graded size)."""
    return TinyStudent(num_classes, layer3_depth=2)
