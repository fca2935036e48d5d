"""The CIFAR model zoo: ``create(name, num_classes)`` and ``list_models()``.

The registry is the plain dict ``MODELS`` below: name -> constructor taking ``num_classes``.
Architectures reproduce the CRD benchmark's CIFAR models (Tian et al., ICLR 2020; same parameter
names, shapes and order, so its checkpoints load with :func:`load_benchmark_state_dict`, which also
unwraps its checkpoint dicts and ``module.`` prefixes; :func:`kdteach_name` maps its model names),
plus four tiny nets for CPU demonstrations. Every model declares its stages (:class:`Stage`).
Parameter counts and stages of every model: ``docs/MODELS.md``.
"""

from __future__ import annotations

from typing import Callable

from .base import KDModel, Stage, count_parameters, init_weights
from .compat import BENCHMARK_NAMES, kdteach_name, load_benchmark_state_dict
from .mobilenetv2 import mobilenetv2
from .resnet import resnet8, resnet8x4, resnet14, resnet20, resnet32, resnet32x4, resnet44, resnet56, resnet110
from .resnetv2 import resnet50
from .shufflenetv1 import shufflenetv1
from .shufflenetv2 import shufflenetv2
from .tiny import tiny_assistant, tiny_assistant_small, tiny_student, tiny_teacher
from .vgg import vgg8, vgg11, vgg13, vgg16, vgg19
from .wrn import wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2

MODELS: dict[str, Callable[..., KDModel]] = {
    "tiny_teacher": tiny_teacher,
    "tiny_student": tiny_student,
    "tiny_assistant": tiny_assistant,
    "tiny_assistant_small": tiny_assistant_small,
    "resnet8": resnet8,
    "resnet14": resnet14,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet8x4": resnet8x4,
    "resnet32x4": resnet32x4,
    "resnet50": resnet50,
    "wrn_16_1": wrn_16_1,
    "wrn_16_2": wrn_16_2,
    "wrn_40_1": wrn_40_1,
    "wrn_40_2": wrn_40_2,
    "vgg8": vgg8,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "mobilenetv2": mobilenetv2,
    "shufflenetv1": shufflenetv1,
    "shufflenetv2": shufflenetv2,
}


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(MODELS)


def create(name: str, num_classes: int = 10) -> KDModel:
    """Build a model of the zoo by name.

    Args:
        name: one of :func:`list_models` (e.g. ``"resnet32x4"``, ``"wrn_40_2"``, ``"tiny_student"``).
        num_classes: size of the classifier output (10 for CIFAR-10, 100 for CIFAR-100).

    Returns:
        A freshly initialised :class:`KDModel` mapping (B, 3, H, W) images to (B, num_classes) logits.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return MODELS[name](num_classes=num_classes)


__all__ = ["KDModel", "Stage", "MODELS", "create", "list_models", "count_parameters", "init_weights",
           "load_benchmark_state_dict", "kdteach_name", "BENCHMARK_NAMES"]
