"""Argument checks and dtype helpers shared by the loss functions (private).

Every loss validates its inputs at the boundary with these helpers, so messages read the same
everywhere: they name the argument, give its shape (or type) and say what was expected.
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager, nullcontext
from typing import Iterator, Sequence

import torch

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def shape_of(x: object) -> str:
    """``(2, 3)`` for a tensor, the type name for anything else (for error messages)."""
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    return type(x).__name__


def check_tensor(x: object, name: str, rank: int | Sequence[int], layout: str) -> torch.Tensor:
    """Require a floating-point tensor of the given rank(s).

    Args:
        x: the value passed by the caller.
        name: the argument name, used in the message.
        rank: allowed number of dimensions (an int or several).
        layout: the expected layout in words, e.g. ``"(B, C, H, W)"``.

    Raises:
        TypeError: ``x`` is not a tensor, or not floating point.
        ValueError: ``x`` has another rank, or is empty.
    """
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.dim() not in ranks:
        raise ValueError(f"{name} must have shape {layout} ({' or '.join(map(str, ranks))} dimensions), "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {layout}, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x


def check_same_batch(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Require the same batch size (first dimension) and the same device."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a_name} and {b_name} must have the same batch size, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{a_name} and {b_name} must be on the same device, got {a.device} and {b.device}")


def check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Require identical shapes (and the same device)."""
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    check_same_batch(a, a_name, b, b_name)


def check_positive(value: object, name: str) -> float:
    """Require a finite real number > 0 (bools are rejected); returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_int_at_least(value: object, name: str, minimum: int) -> int:
    """Require an integer >= ``minimum`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_tensor_list(xs: object, name: str) -> list[torch.Tensor]:
    """Require a non-empty list or tuple (not a tensor); returns it as a list."""
    if isinstance(xs, torch.Tensor) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of tensors, got {type(xs).__name__} "
                        f"{shape_of(xs) if isinstance(xs, torch.Tensor) else ''}".rstrip())
    if len(xs) == 0:
        raise ValueError(f"{name} must contain at least one tensor, got an empty {type(xs).__name__}")
    return list(xs)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Upcast float16/bfloat16 to float32; leave float32/float64 as they are."""
    return x.float() if x.dtype in _LOW_PRECISION else x


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` inside the block (losses reduce in float32 or better)."""
    try:
        ctx = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know: nothing to disable
        ctx = nullcontext()
    with ctx:
        yield
