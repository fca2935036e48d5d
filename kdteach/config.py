"""Settings read from the environment, in one place.

Every setting has an environment variable and a default; nothing else in kdteach reads
``os.environ`` directly, so a notebook, the CLI and the tests all see the same values.

==========================  =========================================================
variable                    meaning
==========================  =========================================================
``KDTEACH_DATA``            folder with the offline CIFAR subsets (``cifar10_subset.npz``,
                            ``cifar100_subset.npz``). When set, kdteach uses these files and
                            never downloads. Unset: torchvision's CIFAR in ``data_root()``.
``KDTEACH_DATA_ROOT``       where torchvision CIFAR is stored/downloaded (default: ``data/``
                            of the repository, else ``~/.cache/kdteach/data``)
``KDTEACH_DOWNLOAD``        ``0`` forbids downloading (default ``1``: download when missing)
``KDTEACH_CACHE``           cached teachers / baseline students (default ``cache/`` of the
                            repository, else ``~/.cache/kdteach``)
``KDTEACH_RESULTS``         run records, one JSON per run (default ``results/`` beside the cache)
``KDTEACH_BUDGET``          ``ci`` | ``quick`` | ``gpu`` | ``paper`` (default: ``gpu`` with
                            CUDA, ``quick`` without)
``KDTEACH_DEVICE``          force a device (``cpu``, ``cuda``, ``cuda:1``); default: CUDA if
                            available
==========================  =========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parent


def _in_checkout() -> bool:
    """True when kdteach runs from a source checkout (editable install): repo-local folders."""
    return (_REPO_DIR / "pyproject.toml").is_file() and os.access(_REPO_DIR, os.W_OK)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def offline_data_dir() -> Path | None:
    """Folder of the offline CIFAR subsets (``KDTEACH_DATA``), or None to use torchvision."""
    return _env_path("KDTEACH_DATA")


def data_root() -> Path:
    """Where torchvision's CIFAR lives or is downloaded to (``KDTEACH_DATA_ROOT``)."""
    p = _env_path("KDTEACH_DATA_ROOT")
    if p is not None:
        return p
    return _REPO_DIR / "data" if _in_checkout() else Path.home() / ".cache" / "kdteach" / "data"


def download_allowed() -> bool:
    """Whether torchvision may download CIFAR (``KDTEACH_DOWNLOAD``, default yes)."""
    return os.environ.get("KDTEACH_DOWNLOAD", "1").strip().lower() not in {"0", "false", "no", "off"}


def cache_dir() -> Path:
    """Folder of cached teachers and baseline students (``KDTEACH_CACHE``)."""
    p = _env_path("KDTEACH_CACHE")
    if p is not None:
        return p
    return _REPO_DIR / "cache" if _in_checkout() else Path.home() / ".cache" / "kdteach"


def results_dir() -> Path:
    """Folder of run records (``KDTEACH_RESULTS``)."""
    p = _env_path("KDTEACH_RESULTS")
    if p is not None:
        return p
    return _REPO_DIR / "results" if _in_checkout() else cache_dir() / "results"


def default_device() -> torch.device:
    """``KDTEACH_DEVICE`` if set, else ``cuda`` when available, else ``cpu``."""
    value = os.environ.get("KDTEACH_DEVICE", "").strip()
    if value:
        dev = torch.device(value)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"KDTEACH_DEVICE={value!r} but CUDA is not available on this machine")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


BUDGET_NAMES = ("ci", "quick", "gpu", "paper")


def budget_name() -> str:
    """The active budget name: ``KDTEACH_BUDGET``, else ``gpu`` with CUDA and ``quick`` without."""
    value = os.environ.get("KDTEACH_BUDGET", "").strip().lower()
    if value:
        if value not in BUDGET_NAMES:
            raise ValueError(f"KDTEACH_BUDGET={value!r} is not a budget; expected one of {', '.join(BUDGET_NAMES)}")
        return value
    return "gpu" if default_device().type == "cuda" else "quick"
