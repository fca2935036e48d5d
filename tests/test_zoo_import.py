"""kdteach.zoo.import_teacher / ``kdteach zoo import``: the CRD benchmark's teacher checkpoints.

The checkpoints are written here from kdteach models in the benchmark's two layouts (its
``{"model": state_dict, "epoch": ..., "accuracy": ..., "optimizer": ...}`` files, saved from
``nn.DataParallel`` with ``module.`` prefixes, and a bare state dict); the published files
themselves cannot be downloaded on the course's machines.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from kdteach import cli, models, zoo
from kdteach.data import load_split
from kdteach.train import api
from kdteach.train.budgets import get_budget

# CIFAR-100 channel statistics as the CRD benchmark's dataset/cifar100.py writes them (typed in, not imported)
MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch, offline_data):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


def _trained_like(arch: str, num_classes: int = 100, seed: int = 3) -> torch.nn.Module:
    """A kdteach model with non-default weights and BN statistics (as a trained checkpoint has)."""
    torch.manual_seed(seed)
    m = models.create(arch, num_classes=num_classes)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                t.normal_(0, 0.1)
            elif name.endswith("num_batches_tracked"):
                t.fill_(12_345)
    return m.eval()


def _benchmark_file(path, model, prefix: str = "module."):
    """The benchmark's train_teacher.py layout (ckpt_epoch_240.pth)."""
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 240, "model": sd, "accuracy": torch.tensor(72.5),
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.0005, "momentum": 0.9, "params": [0, 1]}]}},
               path)
    return path


def _reference_accuracy(model) -> float:
    """Top-1 accuracy on the CIFAR-100 test split, normalised here by hand."""
    split = load_split("cifar100", train=False)
    x = split.images.float().div(255.0)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return 100.0 * float((pred == split.labels).double().mean())


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


@pytest.mark.parametrize("layout", ["benchmark", "bare"])
def test_both_layouts_import_measure_and_register(layout, tmp_path, capsys):
    src = _trained_like("resnet8")
    path = tmp_path / "ckpt_epoch_240.pth"
    if layout == "benchmark":
        _benchmark_file(path, src)
    else:
        torch.save(src.state_dict(), path)
    t = zoo.import_teacher(path, "resnet8")
    assert _same_weights(t, src) and not t.training and t.kd_arch == "resnet8"
    assert t.kd_test_acc == pytest.approx(_reference_accuracy(src), abs=1e-9)
    out = capsys.readouterr().out
    assert f"{t.kd_test_acc:.2f}% on 916 test images" in out
    assert "publishes no teacher" in out and "budget-paper teacher" in out
    target = zoo.cache_path("teacher", "resnet8", get_budget("paper"), 0)
    assert target.is_file() and str(target) in out
    rec = t.kd_record
    assert rec["imported"] and rec["method"] == "teacher" and rec["budget"] == "paper"
    assert rec["dataset"] == "cifar100" and rec["last_acc"] == t.kd_test_acc
    assert rec["recipe"]["imported_from"] == path.name and len(rec["recipe"]["sha256"]) == 64


def test_cache_registration_serves_teacher_and_distill_without_training(tmp_path, monkeypatch, capsys):
    src = _trained_like("resnet8")
    path = _benchmark_file(tmp_path / "resnet8.pth", src)
    assert cli.main(["zoo", "import", str(path), "--arch", "resnet8", "--dataset", "cifar100"]) == 0

    def no_training(*args, **kwargs):
        raise AssertionError("the imported teacher must be loaded, not trained")

    monkeypatch.setattr(zoo, "train_model", no_training)
    t = zoo.teacher("resnet8", budget="paper")
    assert _same_weights(t, src) and t.kd_record["imported"]
    assert "[imported from resnet8.pth]" in capsys.readouterr().out
    # `distill --budget paper` hands the trainer that teacher (stopped there: 240 epochs are not for a test)
    seen = {}

    class Stop(Exception):
        pass

    def trainer_stub(method, student, teacher, budget, **kwargs):
        seen.update(method=method.name, teacher=teacher, budget=budget.name, student=student.kd_arch)
        raise Stop

    monkeypatch.setattr(api, "Trainer", trainer_stub)
    with pytest.raises(Stop):
        cli.main(["distill", "--method", "kd", "--budget", "paper", "--teacher", "resnet8", "--student", "resnet8"])
    assert seen["method"] == "kd" and seen["budget"] == "paper" and seen["student"] == "resnet8"
    assert _same_weights(seen["teacher"], src) and seen["teacher"].kd_record["imported"]
    assert "teacher resnet8 (cifar100, budget paper, seed 0): test accuracy" in capsys.readouterr().out


def test_published_teachers_and_benchmark_names(tmp_path, capsys):
    assert set(zoo.PUBLISHED_TEACHERS) <= set(models.list_models())
    assert zoo.PUBLISHED_TEACHERS["resnet50"] == ("ResNet50", 79.34)
    src = _trained_like("resnet56")
    path = tmp_path / "ckpt.pth"
    # the benchmark's *_last.pth layout also stores its argparse options; its model name is accepted as --arch
    torch.save({"opt": argparse.Namespace(model="resnet56", learning_rate=0.05), "model": src.state_dict()}, path)
    t = zoo.import_teacher(path, "resnet56", evaluate=False)
    assert _same_weights(t, src) and math.isnan(t.kd_test_acc)
    out = capsys.readouterr().out
    assert "not measured" in out and "the CRD benchmark reports 72.34% for its resnet56" in out
    r50 = tmp_path / "r50.pth"
    torch.save({"model": models.create("resnet50", 100).state_dict()}, r50)
    assert zoo.import_teacher(r50, "ResNet50", evaluate=False, verbose=False).kd_arch == "resnet50"


def test_without_test_data_it_is_registered_unmeasured(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no_data"
    empty.mkdir()
    monkeypatch.setenv("KDTEACH_DATA", str(empty))
    path = _benchmark_file(tmp_path / "ckpt.pth", _trained_like("resnet8"))
    t = zoo.import_teacher(path, "resnet8")
    assert math.isnan(t.kd_test_acc)
    assert "not measured: no cifar100 test split here" in capsys.readouterr().out
    assert zoo.cache_path("teacher", "resnet8", get_budget("paper"), 0).is_file()


def _one_line_exit_2(argv, capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_corrupted_and_non_checkpoint_files_are_one_line_errors(tmp_path, capsys):
    good = _benchmark_file(tmp_path / "good.pth", _trained_like("resnet8"))
    data = good.read_bytes()
    cases = {"truncated.pth": data[: len(data) // 2], "text.pth": b"<html>404 Not Found</html>\n",
             "flipped.pth": data[:200] + bytes(b ^ 0xFF for b in data[200:400]) + data[400:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    torch.save({"epoch": 3, "best_acc": 70.0}, tmp_path / "no_weights.pth")
    np.save(tmp_path / "array.npy", np.zeros(3))
    expected = {"truncated.pth": "is not a PyTorch checkpoint that loads with weights_only=True",
                "text.pth": "is not a PyTorch checkpoint (neither",
                "flipped.pth": "is not a PyTorch checkpoint",
                "list.pth": "holds no state dict", "no_weights.pth": "holds no state dict",
                "array.npy": "is not a PyTorch checkpoint", "missing.pth": "no checkpoint file at"}
    for name, message in expected.items():
        err = _one_line_exit_2(["zoo", "import", str(tmp_path / name), "--arch", "resnet8"], capsys)
        assert name in err and message in err, err
    assert not zoo.cache_path("teacher", "resnet8", get_budget("paper"), 0).exists()


def test_wrong_architecture_is_refused_whole(tmp_path, capsys):
    # a teacher imported before stays as it was: a refused file never writes the cache
    first = _benchmark_file(tmp_path / "r8.pth", _trained_like("resnet8", seed=1))
    kept = zoo.import_teacher(first, "resnet8", evaluate=False, verbose=False)
    target = zoo.cache_path("teacher", "resnet8", get_budget("paper"), 0)
    before = target.read_bytes()

    _benchmark_file(tmp_path / "r8x4.pth", _trained_like("resnet8x4"))
    err = _one_line_exit_2(["zoo", "import", str(tmp_path / "r8x4.pth"), "--arch", "resnet8"], capsys)
    assert "is not a resnet8 checkpoint for cifar100 (it fits resnet8x4)" in err
    assert "first mismatch: conv1.weight: checkpoint (32, 3, 3, 3) vs resnet8 (16, 3, 3, 3)" in err
    # the same net for another number of classes: the classifier is the first tensor that differs
    _benchmark_file(tmp_path / "r8_c10.pth", _trained_like("resnet8", num_classes=10))
    err = _one_line_exit_2(["zoo", "import", str(tmp_path / "r8_c10.pth"), "--arch", "resnet8"], capsys)
    assert "first mismatch: fc.weight: checkpoint (10, 64) vs resnet8 (100, 64)" in err
    assert "it fits no zoo model with 100 classes" in err
    # one tensor missing: named, and no zoo model fits
    sd = _trained_like("resnet8").state_dict()
    del sd["layer2.0.bn2.running_var"]
    torch.save(sd, tmp_path / "partial.pth")
    err = _one_line_exit_2(["zoo", "import", str(tmp_path / "partial.pth"), "--arch", "resnet8"], capsys)
    assert "first mismatch: layer2.0.bn2.running_var: checkpoint has none vs resnet8 (32,)" in err
    err = _one_line_exit_2(["zoo", "import", str(first), "--arch", "resnet9"], capsys)
    assert "unknown model 'resnet9'" in err
    assert target.read_bytes() == before
    assert _same_weights(zoo.teacher("resnet8", budget="paper", verbose=False), kept)
