"""Shared helpers of :mod:`kdteach.viz` (private): array conversion, checks, figure creation.

Figures are built with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``: no global
figure registry is touched, nothing needs closing, and a notebook shows a returned figure exactly
once (the inline backend displays ``Figure`` objects; ``pyplot`` figures would also be auto-shown).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure


def to_numpy(x: object, name: str) -> np.ndarray:
    """Tensor (any device/dtype, detached), ndarray or nested sequence -> float64 ndarray."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__}") from err
    return arr


def check_rank(arr: np.ndarray, name: str, ranks: tuple[int, ...], layout: str) -> np.ndarray:
    """Raise a ValueError naming ``name`` unless ``arr`` has one of the given ranks."""
    if arr.ndim not in ranks:
        raise ValueError(f"{name} must have shape {layout}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def images_to_hwc(images: object, name: str = "images") -> np.ndarray:
    """(N, 3, H, W) or (3, H, W) images in [0, 1] -> (N, H, W, 3) float array clipped to [0, 1]."""
    arr = to_numpy(images, name)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have shape (N, 3, H, W) (values in [0, 1]), got shape {arr.shape}")
    arr = np.clip(arr, 0.0, 1.0).transpose(0, 2, 3, 1)
    return np.repeat(arr, 3, axis=3) if arr.shape[3] == 1 else arr


def maps_to_nhw(maps: object, name: str, n: int | None = None) -> np.ndarray:
    """(N, h, w), (N, 1, h, w) or (h, w) maps -> (N, h, w) array; checks N against ``n`` if given."""
    arr = to_numpy(maps, name)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(f"{name} must have shape (N, h, w), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must hold one map per image ({n}), got shape {arr.shape}")
    return arr


def minmax(arr: np.ndarray) -> np.ndarray:
    """Min-max normalise each (h, w) map of an (N, h, w) array to [0, 1]; constant maps -> 0."""
    flat = arr.reshape(arr.shape[0], -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    rng = hi - lo
    ok = rng > np.finfo(np.float64).eps * np.maximum(np.abs(lo), np.abs(hi))
    out = np.where(ok, (flat - lo) / np.where(ok, rng, 1.0), 0.0)
    return out.reshape(arr.shape)


def check_mapping(d: object, name: str) -> Mapping:
    """Require a non-empty mapping (dict)."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{name} must be a dict, got {type(d).__name__}")
    if len(d) == 0:
        raise ValueError(f"{name} must not be empty")
    return d


def new_figure(nrows: int, ncols: int, cell: tuple[float, float] = (2.0, 2.0),
               max_size: tuple[float, float] = (16.0, 24.0)) -> Figure:
    """A constrained-layout Figure sized for an nrows x ncols grid of ``cell``-sized panels."""
    width = min(max_size[0], max(3.0, cell[0] * ncols))
    height = min(max_size[1], max(2.0, cell[1] * nrows))
    return Figure(figsize=(width, height), layout="constrained")
