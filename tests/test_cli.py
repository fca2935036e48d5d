"""The kdteach command: help everywhere, one-line errors with exit 2, a short distill run recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kdteach import cli, results, zoo
from kdteach.methods import get_method
from kdteach.train import build_model
from kdteach.train.budgets import get_budget

COMMANDS = [[], ["models"], ["methods"], ["train-teacher"], ["distill"], ["results"], ["zoo"], ["zoo", "warm"],
            ["zoo", "import"], ["notebooks"], ["notebooks", "export"], ["notebooks", "run"], ["notebooks", "check"],
            ["notebooks", "readme"]]


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "kdteach")
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv + ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kdteach") and " ".join(["kdteach"] + argv) in out


@pytest.mark.parametrize("argv,message", [
    (["distill", "--method", "nope"], "unknown method 'nope'; valid methods: student, kd"),
    (["distill", "--method", "kd", "--budget", "huge"], "unknown budget 'huge'; valid budgets: ci, quick, gpu, paper"),
    (["distill", "--method", "kd", "--epochs", "0"], "expected a positive integer, got 0"),
    (["distill", "--method", "kd", "--budget", "ci", "--student", "resnet9000"], "unknown model 'resnet9000'"),
    (["distill", "--method", "kd", "--set", "temp=3", "--budget", "ci"], "unknown hyper-parameter"),
    (["distill"], "the following arguments are required: --method"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["notebooks", "check", "no/such/folder"], "kdteach notebooks check: no notebook or folder at no/such/folder"),
    (["notebooks", "readme", "--readme", "no/README.md"], "--readme no/README.md does not exist"),
])
def test_user_mistakes_are_one_line_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_listings(capsys):
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "kd" in out and "temperature=4.0" in out and "Hinton" in out
    assert cli.main(["models"]) == 0
    assert "tiny_student" in capsys.readouterr().out


@pytest.mark.usefixtures("offline_data")
def test_distill_one_epoch_writes_a_record(tmp_path, capsys):
    budget = get_budget("ci")
    # a cached teacher (untrained weights are enough for the command's plumbing)
    teacher = build_model("tiny_teacher", 10, 0)
    record = results.new_record(method="teacher", teacher=None, student="tiny_teacher", dataset="cifar10",
                                budget="ci", seed=0, hparams={}, recipe=budget.teacher_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache("teacher", teacher, budget, 0, record)
    assert cli.main(["distill", "--method", "kd", "--budget", "ci", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "teacher tiny_teacher (cifar10, budget ci, seed 0): test accuracy 10.00% [cached]" in out
    files = list((tmp_path / "results").glob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    # --epochs 1 is another schedule than ci's: recorded under its own budget name
    assert (rec["method"], rec["teacher"], rec["student"], rec["budget"]) == ("kd", "tiny_teacher", "tiny_student",
                                                                              "ci-1ep")
    assert len(rec["history"]) == 1 and rec["run_id"] in out
    assert cli.main(["results", "--method", "kd"]) == 0
    table = capsys.readouterr().out
    assert "kd" in table and "tiny_student" in table and "± 0.00" in table


def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "KDTEACH_RESULTS": str(tmp_path), "KDTEACH_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "kdteach", "distill", "--method", "nope"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "kdteach: error: unknown method 'nope'; valid methods: " + ", ".join(
        __import__("kdteach.methods", fromlist=["list_methods"]).list_methods())


def test_notebooks_check_and_readme(tmp_path, capsys):
    from kdteach import nbtools

    nb = nbtools.new_notebook({"id": "demo", "paper": "A paper", "venue": "X 2020", "part": "00_foundations"})
    nbtools.add_prose(nb, "# Title", "# 标题")
    path = tmp_path / "notebooks" / "00_foundations" / "demo.ipynb"
    nbtools.write_notebook(nb, path)
    assert cli.main(["notebooks", "check", str(path)]) == 1               # template sections missing
    assert "missing section" in capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- notebooks:start -->\n<!-- notebooks:end -->\n", encoding="utf-8")
    assert cli.main(["notebooks", "readme", "--readme", str(readme), "--notebooks", str(tmp_path / "notebooks")]) == 0
    assert "[demo](" in readme.read_text(encoding="utf-8")


@pytest.mark.usefixtures("offline_data")
@pytest.mark.parametrize("method, extra", [("dml", []), ("byot", []), ("takd", []),
                                           ("dafl", ["--set", "iters_per_epoch=2", "--set", "latent_dim=16"])])
def test_distill_every_protocol_from_the_command_line(tmp_path, capsys, method, extra):
    budget = get_budget("ci")
    teacher = build_model("tiny_teacher", 10, 0)
    record = results.new_record(method="teacher", teacher=None, student="tiny_teacher", dataset="cifar10",
                                budget="ci", seed=0, hparams={}, recipe=budget.teacher_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache("teacher", teacher, budget, 0, record)
    assert cli.main(["distill", "--method", method, "--budget", "ci", "--epochs", "1", "--quiet", *extra]) == 0
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    mine = [r for r in recs if r["method"] == method and r["student"] == "tiny_student"]
    assert len(mine) == 1 and mine[0]["run_id"] in capsys.readouterr().out
    if method in ("dml", "byot"):
        assert mine[0]["teacher"] is None and mine[0]["heads"]
    if method == "takd":
        assert mine[0]["teacher"] == "tiny_teacher>tiny_assistant"
    assert cli.main(["methods"]) == 0
    assert get_method(method).paper.split(",")[0] in capsys.readouterr().out
