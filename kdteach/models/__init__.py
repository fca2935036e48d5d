"""The CIFAR model zoo: ``create(name, num_classes)`` and ``list_models()``.

The registry is the plain dict ``MODELS`` below: name -> constructor taking ``num_classes``.
Architectures reproduce the CRD benchmark's CIFAR models (same parameter shapes and order, so its
checkpoints load; see :func:`kdteach.models.load_benchmark_state_dict` where names differ), plus
two tiny nets for CPU demonstrations. Every model declares its stages (:class:`Stage`).
"""

from __future__ import annotations

from typing import Callable

from .base import KDModel, Stage, count_parameters, init_weights
from .tiny import tiny_student, tiny_teacher

MODELS: dict[str, Callable[..., KDModel]] = {
    "tiny_teacher": tiny_teacher,
    "tiny_student": tiny_student,
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


__all__ = ["KDModel", "Stage", "MODELS", "create", "list_models", "count_parameters", "init_weights"]
