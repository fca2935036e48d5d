"""Shared fixtures. CUDA tests are marked ``cuda`` and skip cleanly without a GPU."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def offline_data():
    """Skip-free: the offline subsets must be configured (``.ci/run`` sets KDTEACH_DATA)."""
    folder = os.environ.get("KDTEACH_DATA")
    assert folder, "set KDTEACH_DATA to the folder of the offline CIFAR subsets (e.g. ../shared/data)"
    return folder
