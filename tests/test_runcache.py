"""Cached runs (kdteach.train.runcache): run_experiment trains a recipe once and loads it afterwards,
with the method's trained extras; a one-link chain is the same run; anything in the key retrains."""

from __future__ import annotations

import json

import pytest
import torch

from kdteach import config, results, zoo
from kdteach import train as T
from kdteach.methods import get_method
from kdteach.train import runcache
from kdteach.train.budgets import get_budget


@pytest.fixture
def budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=2,
                                    teacher_epochs=1, init_epochs=1, seeds=(0,))


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _no_training(monkeypatch):
    monkeypatch.setattr("kdteach.train.api.distill_offline", lambda *a, **k: pytest.fail("retrained a cached run"))


def test_experiment_runs_are_trained_once_and_loaded_afterwards(budget, monkeypatch):
    first = T.run_experiment("kd", budget=budget)
    run = first.runs[0]
    assert list(config.cache_dir().glob("runs/tiny_student-*.pt")), "the run was not cached"
    _no_training(monkeypatch)
    again = T.run_experiment("kd", budget=budget)
    assert _same(again.runs[0].student, run.student) and again.runs[0].record == run.record
    # the record is written again when KDTEACH_RESULTS lost it (the dashboard reads it there)
    path = config.results_dir() / f"{run.record['run_id']}.json"
    path.unlink()
    T.run_experiment("kd", budget=budget)
    assert json.loads(path.read_text())["run_id"] == run.record["run_id"]


def test_a_direct_run_is_link_one_of_its_chain(budget, monkeypatch):
    exp = T.run_experiment("kd", budget=budget)
    rec = exp.runs[0].record
    assert rec["teacher"] == "tiny_teacher" and rec["chain"] == {"archs": ["tiny_teacher", "tiny_student"],
                                                               "link": 1, "previous": []}
    _no_training(monkeypatch)
    chain = T.run_chain(["tiny_teacher", "tiny_student"], "kd", budget=budget, teacher_model=exp.teacher)
    assert chain.links[1].source == "cached" and chain.links[1].record == rec
    assert _same(chain.student, exp.runs[0].student)


@pytest.mark.parametrize("method, hparams, extra", [("dml", {}, "peer1"), ("byot", {}, "exit1")])
def test_trained_extras_are_cached_with_the_student(budget, monkeypatch, method, hparams, extra):
    first = T.run_experiment(method, budget=budget, hparams=hparams)
    assert extra in first.runs[0].extras
    _no_training(monkeypatch)
    again = T.run_experiment(method, budget=budget, hparams=hparams)
    assert _same(again.runs[0].extras, first.runs[0].extras) and not again.runs[0].extras.training
    assert _same(again.runs[0].student, first.runs[0].student)


def test_the_datafree_generator_is_cached(budget, monkeypatch):
    first = T.run_experiment("dafl", budget=budget, hparams={"iters_per_epoch": 2})
    _no_training(monkeypatch)
    again = T.run_experiment("dafl", budget=budget, hparams={"iters_per_epoch": 2})
    assert _same(again.runs[0].extras["generator"], first.runs[0].extras["generator"])


def test_everything_in_the_key_retrains(budget, monkeypatch):
    m, t = get_method("kd"), "record-x"
    key = runcache.run_key(["tiny_teacher", "tiny_student"], m, budget, 0, t)
    assert key == runcache.run_key(["tiny_teacher", "tiny_student"], get_method("kd"), budget, 0, t)
    others = [runcache.run_key(["tiny_teacher", "tiny_student"], get_method("kd", temperature=8.0), budget, 0, t),
              runcache.run_key(["tiny_teacher", "tiny_student"], m, budget, 1, t),
              runcache.run_key(["tiny_teacher", "tiny_student"], m, budget, 0, "record-y"),
              runcache.run_key(["tiny_teacher", "tiny_assistant", "tiny_student"], m, budget, 0, t),
              runcache.run_key(["tiny_teacher", "tiny_student"], m, budget.replace(lr=0.05), 0, t)]
    assert len({key, *others}) == 6
    # editing the code that trains a run changes its key
    monkeypatch.setattr(runcache, "code_signature", lambda method: "edited")
    assert runcache.run_key(["tiny_teacher", "tiny_student"], m, budget, 0, t) != key


def test_code_signature_covers_the_method_module_and_the_losses(tmp_path, monkeypatch):
    sig = runcache.code_signature(get_method("kd"))
    assert sig == runcache.code_signature(get_method("kd", temperature=2.0))     # hparams are keyed apart
    assert sig != runcache.code_signature(get_method("at"))                      # another method's module
    calls = []
    real = runcache._file_hash
    monkeypatch.setattr(runcache, "_file_hash", lambda p, m: calls.append(p) or real(p, m))
    runcache.code_signature(get_method("kd"))
    names = {p.replace("\\", "/").split("kdteach/")[-1] for p in calls}
    assert {"methods/kd.py", "losses/response.py", "train/trainer.py", "methods/base.py"} <= names


def test_teacher_key_needs_a_recorded_teacher(budget):
    assert runcache.teacher_key(None) == "none"
    with pytest.raises(ValueError, match="run record"):
        runcache.teacher_key(T.build_model("tiny_teacher", 10))
    teacher = zoo.teacher(budget=budget, verbose=False)
    assert runcache.teacher_key(teacher) == f"record-{teacher.kd_record['run_id']}"
    with pytest.raises(ValueError, match="must end with the student"):
        runcache.cached_run(get_method("kd"), budget, teacher=teacher, student="tiny_student", seed=0,
                            archs=["tiny_teacher", "tiny_assistant"])


def test_distill_always_trains(budget):
    a = T.distill("kd", budget=budget, progress=False, verbose=False)
    b = T.distill("kd", budget=budget, progress=False, verbose=False)
    assert not list(config.cache_dir().glob("runs/*.pt")) and a.record["run_id"] == b.record["run_id"]
    assert results.load_records(method="kd")


def test_zoo_warm_caches_the_shared_runs(budget, monkeypatch):
    summary = zoo.warm(budget=budget, progress=False, verbose=False)
    assert set(summary["runs"]) == {"kd", "tiny_teacher -> tiny_assistant (takd)",
                                    "tiny_teacher -> tiny_assistant_small (takd)"}
    assert all(0 <= v <= 100 for accs in summary["runs"].values() for v in accs.values())
    _no_training(monkeypatch)
    T.run_experiment("kd", budget=budget)
    teacher = zoo.teacher(budget=budget, verbose=False)
    for a in ("tiny_assistant", "tiny_assistant_small"):   # link 1 of the takd notebook's chains: cached
        key = T.sequence.chain_key(["tiny_teacher", a], get_method("takd", assistants=a), budget, 0,
                                   runcache.teacher_key(teacher))
        assert (config.cache_dir() / "runs" / f"{key}.pt").is_file()
    assert zoo.warm(budget=budget, progress=False, verbose=False, runs=False)["runs"] == {}
