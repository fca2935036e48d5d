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


@pytest.fixture(scope="module")
def batch():
    """16 images of the ci data (16x16, normalised) and their labels: one real batch for loss terms."""
    from kdteach.data import example_batch

    return example_batch(16, "cifar10", resolution=16)


@pytest.fixture
def pair():
    """(tiny student seed 0, tiny teacher seed 1 in eval mode), untrained: equal stage widths (16, 24, 32)."""
    import kdteach.train as T

    return T.build_model("tiny_student", 10, 0), T.build_model("tiny_teacher", 10, 1).eval()


@pytest.fixture
def cached_ci_teacher(tmp_path, monkeypatch):
    """A ci teacher in a temporary cache (untrained weights are enough for the commands' plumbing), with
    KDTEACH_CACHE, KDTEACH_RESULTS (``tmp_path / "results"``) and KDTEACH_DEVICE=cpu set for the test."""
    import kdteach.train as T
    from kdteach import results, zoo
    from kdteach.train.budgets import get_budget

    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    budget = get_budget("ci")
    teacher = T.build_model(budget.teacher, 10, 0)
    record = results.new_record(method="teacher", teacher=None, student=budget.teacher, dataset="cifar10",
                                budget="ci", seed=0, hparams={}, recipe=budget.teacher_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache("teacher", teacher, budget, 0, record)
    return teacher


@pytest.fixture
def distill_cli(cached_ci_teacher, tmp_path, capsys):
    """Run ``kdteach distill --method NAME --budget ci --epochs 1 --quiet [--set K=V ...]`` against
    :func:`cached_ci_teacher` and return (its one run record, the command's stdout). Asserts the exit
    code 0, exactly one record, its method, teacher, student and budget name (``ci-1ep``), and that the
    printed output names the run id."""
    import json

    from kdteach import cli

    def run(method: str, *settings: str):
        args = ["distill", "--method", method, "--budget", "ci", "--epochs", "1", "--quiet"]
        for setting in settings:
            args += ["--set", setting]
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        files = list((tmp_path / "results").glob("*.json"))
        assert len(files) == 1, files
        rec = json.loads(files[0].read_text())
        assert (rec["method"], rec["teacher"], rec["student"], rec["budget"]) == (method, "tiny_teacher", "tiny_student",
                                                                                  "ci-1ep")
        assert rec["run_id"] in out
        return rec, out

    return run
