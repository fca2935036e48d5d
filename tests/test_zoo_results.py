"""Cached teachers (zoo) and run records (results)."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from kdteach import results, zoo
from kdteach.train.budgets import get_budget


@pytest.fixture
def unit_budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=1,
                                    teacher_epochs=1)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


def _no_training(*args, **kwargs):
    raise AssertionError("the cache should have been used instead of training")


# ---------------------------------------------------------------------------------------------- zoo

@pytest.mark.usefixtures("offline_data")
def test_teacher_is_trained_once_then_loaded(unit_budget, tmp_path, monkeypatch, capsys):
    first = zoo.teacher(budget=unit_budget, progress=False)
    out = capsys.readouterr().out
    assert "teacher tiny_teacher (cifar10, budget unit, seed 0): test accuracy" in out and "trained" in out
    assert 0.0 <= first.kd_test_acc <= 100.0 and first.kd_arch == "tiny_teacher" and not first.training
    path = zoo.cache_path("teacher", "tiny_teacher", unit_budget, 0)
    assert path.is_file() and path.parent == tmp_path / "cache" / "teachers"
    assert [r["method"] for r in results.load_records()] == ["teacher"]

    monkeypatch.setattr(zoo, "train_model", _no_training)
    second = zoo.teacher(budget=unit_budget)
    assert "[cached]" in capsys.readouterr().out
    assert second.kd_test_acc == first.kd_test_acc
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k

    # distill() loads the cached teacher by name; verbose=False keeps a loop over seeds quiet
    from kdteach.train import distill
    distill("kd", budget=unit_budget, progress=False, record=False, verbose=False)
    assert capsys.readouterr().out == ""
    distill("kd", budget=unit_budget, progress=False, record=False)
    assert "teacher tiny_teacher (cifar10, budget unit, seed 0)" in capsys.readouterr().out


@pytest.mark.usefixtures("offline_data")
def test_cache_key_follows_the_recipe(unit_budget):
    key = zoo.cache_key("teacher", "tiny_teacher", unit_budget, 0)
    assert key.startswith("tiny_teacher-cifar10-unit-s0-")
    assert zoo.cache_key("teacher", "tiny_teacher", unit_budget.replace(lr=0.2), 0) != key
    assert zoo.cache_key("teacher", "tiny_teacher", unit_budget.replace(teacher_epochs=2), 0) != key
    assert zoo.cache_key("teacher", "tiny_teacher", unit_budget, 1) != key
    # student-only fields do not retrain the teacher, but they do change the baseline student
    assert zoo.cache_key("teacher", "tiny_teacher", unit_budget.replace(epochs=7), 0) == key
    skey = zoo.cache_key("student", "tiny_student", unit_budget, 0)
    assert zoo.cache_key("student", "tiny_student", unit_budget.replace(epochs=7), 0) != skey


@pytest.mark.usefixtures("offline_data")
def test_student_baseline_and_waiting_for_the_lock(unit_budget, monkeypatch):
    model, record = zoo.student_baseline(budget=unit_budget, seed=1, progress=False, verbose=False)
    assert record["method"] == "student" and record["seed"] == 1 and model.kd_test_acc == record["last_acc"]
    path = zoo.cache_path("student", "tiny_student", unit_budget, 1)
    saved = path.read_bytes()
    path.unlink()
    # another process holds the lock and is "training": we must wait, then load its file
    monkeypatch.setattr(zoo, "train_model", _no_training)
    got = {}
    with zoo._file_lock(path, verbose=False):
        thread = threading.Thread(target=lambda: got.update(
            r=zoo.student_baseline(budget=unit_budget, seed=1, verbose=False)))
        thread.start()
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(saved)
        tmp.replace(path)
    thread.join(timeout=60)
    assert got["r"][1]["run_id"] == record["run_id"]


def test_zoo_errors(unit_budget):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        zoo.teacher("nope", budget=unit_budget)
    with pytest.raises(ValueError, match="unknown budget"):
        zoo.teacher(budget="nope")
    with pytest.raises(ValueError, match="dataset 'svhn'"):
        zoo.teacher(dataset="svhn", budget=unit_budget)


# ---------------------------------------------------------------------------------------------- results

def make_record(method="kd", seed=0, best=60.0, created="2026-01-01T00:00:00Z"):
    history = [{"epoch": 1, "stage": "main", "lr": 0.1, "train_acc": 40.0, "test_acc": best - 5.0, "seconds": 1.0,
                "loss": {"ce": 1.0, "total": 1.0}},
               {"epoch": 2, "stage": "main", "lr": 0.01, "train_acc": 50.0, "test_acc": best, "seconds": 1.0,
                "loss": {"ce": 0.8, "total": 0.8}}]
    return results.new_record(method=method, teacher="tiny_teacher", student="tiny_student", dataset="cifar10",
                              budget="ci", seed=seed, hparams={"t": 4.0}, recipe={"epochs": 2}, history=history,
                              wall_time=2.0, device="cpu", created=created)


def test_record_roundtrip(tmp_path):
    rec = make_record()
    assert set(results.REQUIRED_KEYS) <= set(rec)
    assert rec["run_id"].startswith("kd-tiny_student-tiny_teacher-cifar10-ci-s0-")
    assert (rec["best_acc"], rec["best_epoch"], rec["last_acc"]) == (60.0, 2, 60.0)
    path = results.save_record(rec)
    assert path.parent == tmp_path / "results" and path.name == rec["run_id"] + ".json"
    assert results.load_records() == [json.loads(path.read_text())] == [rec]
    assert not [p for p in path.parent.iterdir() if p.suffix != ".json"]
    assert path.stat().st_mode & 0o777 == results.FILE_MODE  # not mkstemp's private 0600


def test_corrupt_records_are_skipped_with_a_warning(tmp_path):
    results.save_record(make_record())
    folder = tmp_path / "results"
    (folder / "half.json").write_text('{"run_id": "x", "method": ')
    (folder / "foreign.json").write_text('{"hello": 1}')
    with pytest.warns(UserWarning) as caught:
        recs = results.load_records()
    assert len(recs) == 1
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "foreign.json" in messages[0] and "missing keys" in messages[0]
    assert "half.json" in messages[1] and "skipping unreadable run record" in messages[1]


def test_filters_and_comparison_table(tmp_path):
    for seed, best in enumerate((60.0, 62.0, 64.0)):
        results.save_record(make_record("kd", seed, best))
    for seed, best in enumerate((58.0, 59.0)):
        results.save_record(make_record("student", seed, best))
    assert len(results.load_records(method="kd")) == 3
    assert len(results.load_records(method=("kd", "student"), seed=0)) == 2
    rows = results.comparison_table(results.load_records())
    kd = next(r for r in rows if r["method"] == "kd")
    assert kd["mean"] == pytest.approx(62.0) and kd["std"] == pytest.approx(2.0) and kd["n"] == 3
    assert kd["seeds"] == [0, 1, 2] and (kd["min"], kd["max"]) == (60.0, 64.0)
    st = next(r for r in rows if r["method"] == "student")
    assert st["mean"] == pytest.approx(58.5) and st["std"] == pytest.approx(0.5 ** 0.5)
    # a re-run of the same seed counts once (the newest)
    rows2 = results.comparison_table([make_record("kd", 0, 50.0), make_record("kd", 0, 70.0, "2026-02-01T00:00:00Z")])
    assert rows2[0]["n"] == 1 and rows2[0]["mean"] == 70.0
    text = results.format_table(rows)
    assert "62.00 ± 2.00" in text and "kd" in text and "student" in text
    assert "setting" not in text and "run_ids" not in text   # one setting per method: no column
    assert results.format_table([]) == "(no runs)"
    with pytest.raises(ValueError, match="missing keys"):
        results.save_record({"run_id": "x"})


def test_records_with_different_hparams_are_never_pooled_or_replaced():
    """Regression (issue 9): an exercise's T = 20 run used to replace the default seed-0 run."""
    default = [make_record("kd", s, 60.0 + s) for s in range(2)]
    for r in default:
        r["hparams"] = {"temperature": 4.0, "kd_weight": 0.9}
    exercise = make_record("kd", 0, 30.0, "2026-12-01T00:00:00Z")    # newer than the default runs
    exercise["run_id"] += "-t20"
    exercise["hparams"] = {"kd_weight": 0.9, "temperature": 20.0}
    rows = results.comparison_table(default + [exercise])
    assert [(r["setting"], r["n"], r["mean"]) for r in rows] == [("temperature=20", 1, 30.0),
                                                                   ("temperature=4", 2, 60.5)]
    assert rows[1]["run_ids"] == [r["run_id"] for r in default]
    text = results.format_table(rows)
    assert "temperature=20" in text and "temperature=4" in text
    # the key ignores the order the hyper-parameters were given in
    same = dict(exercise, hparams={"temperature": 20.0, "kd_weight": 0.9})
    assert results.hparams_key(same) == results.hparams_key(exercise)
    assert results.hparams_key(default[0]) != results.hparams_key(exercise)
    # a hyper-parameter that only one setting has is shown as missing in the other
    extra = dict(exercise, run_id="x", hparams={"temperature": 4.0, "kd_weight": 0.9, "p": 2})
    labels = results.settings(default + [extra])
    assert labels["x"] == "p=2" and labels[default[0]["run_id"]] == "p=-"


# ---------------------------------------------------------------------------------------------- experiment

@pytest.mark.usefixtures("offline_data")
def test_run_experiment_uses_the_caches_and_matches_schedules(unit_budget, monkeypatch, capsys):
    from kdteach.train import run_experiment

    budget = unit_budget.replace(seeds=(0, 1))
    exp = run_experiment("kd", budget=budget)
    assert exp.method == "kd" and exp.seeds == (0, 1) and exp.budget is budget
    assert [r["method"] for r in exp.records] == ["teacher", "student", "student", "kd", "kd"]
    assert [r["seed"] for r in exp.records] == [0, 0, 1, 0, 1]
    assert {r["budget"] for r in exp.records} == {"unit"}
    rows = {row["method"]: row for row in exp.table("best_acc")}
    assert rows["kd"]["n"] == 2 and rows["student"]["n"] == 2 and rows["teacher"]["n"] == 1
    diffs = exp.differences()
    assert diffs[1] == pytest.approx(exp.runs[1].record["last_acc"] - exp.baselines[1][1]["last_acc"])
    assert capsys.readouterr().out == ""                              # quiet by default

    # a second experiment reuses the cached teacher and baselines: only the method trains
    trained = []
    real = zoo.train_model
    monkeypatch.setattr(zoo, "train_model", lambda *a, **k: trained.append(k.get("role")) or real(*a, **k))
    again = run_experiment("kd", budget=budget, seeds=[1])
    assert again.baselines[1][1]["run_id"] == exp.baselines[1][1]["run_id"] and trained == []

    # an epochs override trains both students on that schedule, under their own budget name
    ep = run_experiment("kd", budget=budget.replace(epochs=2), seeds=[0], epochs=1)
    assert trained == ["student"]                                     # the baseline of the new schedule only
    assert ep.budget.name == "unit-1ep" and ep.teacher_budget.name == "unit"
    assert [len(r["history"]) for r in ep.records[1:]] == [1, 1]
    assert {r["budget"] for r in ep.records[1:]} == {"unit-1ep"} and ep.records[0]["budget"] == "unit"
    with pytest.raises(ValueError, match="seeds"):
        run_experiment("kd", budget=budget, seeds=[])

    # the result card: mechanism first, the teacher once, per-seed last-epoch accuracy and difference
    from kdteach.train import Mechanism, binomial_se

    mech = Mechanism("KL to the teacher", alone={0: 0.5, 1: 0.4}, method={0: 0.2, 1: 0.3})
    card = exp.card(mech)
    text = str(card)
    assert card.check() is card
    assert text.splitlines()[1].startswith("Mechanism: KL to the teacher: closer to the teacher")
    assert "for 2 of 2 seeds" in text and text.count("Teacher:") == 1 and "best" not in text
    assert [r["difference"] for r in card.rows] == pytest.approx([diffs[0], diffs[1]])
    assert f"{exp.runs[1].record['last_acc']:.2f}" in text and f"{diffs[1]:+.2f}" in text
    assert card.teacher_acc == exp.teacher.kd_record["last_acc"]
    n_test = budget.test_subset
    mean_alone = (exp.baselines[0][1]["last_acc"] + exp.baselines[1][1]["last_acc"]) / 2
    assert card.n_test == n_test and card.se == pytest.approx(binomial_se(mean_alone, n_test))
    assert "<table>" in card._repr_html_() and "KL to the teacher" in card._repr_html_()
    with pytest.raises(AssertionError, match=r"seeds \[1\]"):
        exp.card(Mechanism("KL", alone={0: 0.5, 1: 0.4}, method={0: 0.2, 1: 0.45})).check()
    assert exp.card(Mechanism("agreement", alone={0: 0.5, 1: 0.4}, method={0: 0.6, 1: 0.41},
                              lower_is_better=False)).check()
    peer = str(exp.card(Mechanism("KL", alone={0: 0.5, 1: 0.4}, method={0: 0.2, 1: 0.3}, target="its peer",
                                  reference="deep supervision")))
    assert "closer to its peer (lower is closer)" in peer and "deep supervision" in peer.splitlines()[2]
    with pytest.raises(ValueError, match="each seed"):
        exp.card(Mechanism("KL", alone={0: 0.5}, method={0: 0.2}))
    with pytest.raises(ValueError, match="Mechanism"):
        exp.card({0: 0.5})
    # a non-default setting is named on the card
    ex = run_experiment("kd", budget=budget, seeds=[0], hparams={"temperature": 8.0})
    assert ex.setting == "temperature=8" and "kd (temperature=8)" in str(ex.card(
        Mechanism("KL", alone={0: 1.0}, method={0: 0.5})))


def test_binomial_se_and_mechanism_errors():
    from kdteach.train import Mechanism, binomial_se

    assert binomial_se(50.0, 100) == pytest.approx(5.0)
    assert binomial_se(100.0, 10) == 0.0
    for bad in ((101.0, 10), (50.0, 0), (50.0, 1.5)):
        with pytest.raises(ValueError):
            binomial_se(*bad)
    with pytest.raises(ValueError, match="same seeds"):
        Mechanism("m", alone={0: 1.0}, method={1: 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        Mechanism("m", alone={0: float("nan")}, method={0: 1.0})
    with pytest.raises(ValueError, match="non-empty"):
        Mechanism("", alone={0: 1.0}, method={0: 1.0})


def test_area_rescaled():
    from kdteach.methods import area_rescaled

    assert area_rescaled(1000.0, 16) == pytest.approx(250.0)
    assert area_rescaled(1000.0, 32) == pytest.approx(1000.0)
    assert area_rescaled(2.0, 64, reference=32) == pytest.approx(8.0)
    for bad in ((0.0, 16), (1.0, -16), (1.0, True)):
        with pytest.raises(ValueError):
            area_rescaled(*bad)
