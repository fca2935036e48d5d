"""kdteach.widgets driven headlessly: set values, click, compare with numbers computed here."""

from __future__ import annotations

import base64
import json
import math
import statistics

import pytest
import torch

from kdteach import widgets as kw


def make_record(method, seed, best, last, wall, teacher="tiny_teacher", student="tiny_student", budget="ci"):
    history = [{"epoch": e, "stage": "main", "lr": 0.05, "train_acc": best - 5 + e, "test_acc": best - 4 + e,
                "seconds": 1.0, "loss": {"ce": 1.0, "total": 1.0}} for e in range(1, 5)]
    return {
        "kdteach_version": "0.1.0", "run_id": f"{method}-{student}-{teacher}-cifar10-{budget}-s{seed}-abc",
        "method": method, "teacher": teacher, "student": student, "dataset": "cifar10", "budget": budget,
        "seed": seed, "hparams": {}, "recipe": {}, "history": history, "best_acc": best, "best_epoch": 4,
        "last_acc": last, "wall_time": wall, "device": "cpu", "created": f"2026-11-23T17:00:0{seed}Z",
    }


BEST = {"kd": [61.0, 63.5, 62.2], "student": [58.0, 59.1, 57.4]}
LAST = {"kd": [60.2, 62.0, 61.9], "student": [57.5, 58.8, 57.0]}
WALL = {"kd": [12.0, 12.5, 13.1], "student": [8.0, 8.4, 8.1]}


@pytest.fixture
def records():
    out = []
    for method in ("kd", "student"):
        for seed in range(3):
            out.append(make_record(method, seed, BEST[method][seed], LAST[method][seed], WALL[method][seed],
                                   teacher="tiny_teacher" if method == "kd" else None))
    return out


def _png(output):
    return base64.b64decode(output["data"]["image/png"])


def test_dashboard_compare_best_acc(records):
    dash = kw.ComparisonDashboard(records)
    assert set(dash.methods.options) == {"kd", "student"}
    dash.methods.value = ("kd", "student")
    dash.metric.value = "best_acc"
    dash.button.click()
    table = {row["method"]: row for row in dash.last_table}
    assert set(table) == {"kd", "student"}
    for method in ("kd", "student"):
        assert table[method]["mean"] == pytest.approx(statistics.mean(BEST[method]))
        assert table[method]["std"] == pytest.approx(statistics.stdev(BEST[method]))
        assert table[method]["n"] == 3 and table[method]["seeds"] == [0, 1, 2]
    (ax_bars,) = dash.last_figure.axes
    (ax_curves,) = dash.last_curves.axes
    lengths = sorted(p.get_width() for p in ax_bars.patches)     # horizontal bars: labels level on the left
    assert lengths == pytest.approx(sorted(statistics.mean(v) for v in BEST.values()))
    assert [t.get_text() for t in ax_bars.get_yticklabels()] == ["kd", "student"]
    dots = sorted(x for line in ax_bars.get_lines() if line.get_marker() == "o" for x in line.get_xdata())
    assert dots == pytest.approx(sorted(BEST["kd"] + BEST["student"]))  # every run drawn on its bar
    assert len(ax_curves.get_lines()) == 6  # one test-accuracy curve per run
    assert ax_curves.get_lines()[0].get_ydata().tolist() == [h["test_acc"] for h in records[0]["history"]]
    figure_out, curves_out, table_out = dash.output.outputs
    assert _png(curves_out).startswith(b"\x89PNG")
    assert _png(figure_out).startswith(b"\x89PNG")
    assert "<table>" in table_out["data"]["text/html"] and f"{statistics.mean(BEST['kd']):.2f}" in table_out["data"]["text/html"]


def test_dashboard_metric_and_method_selection(records):
    dash = kw.ComparisonDashboard(records)
    dash.metric.value = "wall_time"
    dash.methods.value = ("student",)
    dash.button.click()
    assert [r["method"] for r in dash.last_table] == ["student"]
    assert dash.last_table[0]["mean"] == pytest.approx(statistics.mean(WALL["student"]))
    assert dash.last_table[0]["std"] == pytest.approx(statistics.stdev(WALL["student"]))
    assert len(dash.last_figure.axes[0].patches) == 1
    assert dash.last_figure.axes[0].get_xlabel() == "wall time (s)"   # horizontal bars: the value axis is x
    dash.metric.value = "last_acc"
    dash.methods.value = ("kd", "student")
    dash.button.click()
    assert [r["mean"] for r in dash.last_table] == pytest.approx([statistics.mean(LAST["kd"]), statistics.mean(LAST["student"])])


def test_dashboard_filters_keep_teacherless_baseline(records):
    other = [make_record("kd", s, 70.0 + s, 69.0, 20.0, student="resnet8") for s in range(2)]
    dash = kw.ComparisonDashboard(records + other)
    assert dash.student.options == (kw.ALL, "resnet8", "tiny_student")
    dash.button.click()  # both students selected: grouped by method and student, never pooled
    labels = [r["label"] for r in dash.last_table]
    assert labels == ["kd / resnet8", "kd / tiny_student", "student / tiny_student"]
    dash.student.value = "tiny_student"
    dash.teacher.value = "tiny_teacher"
    dash.button.click()
    # the student-alone runs have no teacher: the teacher filter does not drop them
    assert [(r["method"], r["n"]) for r in dash.last_table] == [("kd", 3), ("student", 3)]
    assert dash.last_table[0]["mean"] == pytest.approx(statistics.mean(LAST["kd"]))  # default: last epoch


def test_dashboard_empty_selection(records):
    dash = kw.ComparisonDashboard(records)
    dash.methods.value = ()
    dash.button.click()
    assert dash.last_table == [] and dash.last_figure is None and dash.last_curves is None
    assert "No runs match" in dash.output.outputs[0]["data"]["text/plain"]


def test_dashboard_reads_records_from_folder(records, tmp_path):
    from kdteach.results import save_record

    for r in records:
        save_record(r, tmp_path)
    dash = kw.ComparisonDashboard(folder=tmp_path)
    assert len(dash.records) == 6
    assert dash.metric.value == "last_acc"   # the course's one accuracy metric is the default
    assert {r["method"]: round(r["mean"], 6) for r in dash.last_table} == {
        m: round(statistics.mean(v), 6) for m, v in LAST.items()}


def test_exercise_run_with_other_hparams_never_replaces_the_default(records):
    """Regression (issue 9): a newer T = 20 run of seed 0 used to replace the default KD seed-0 run."""
    for r in records:
        r["hparams"] = {"temperature": 4.0, "kd_weight": 0.9} if r["method"] == "kd" else {}
    exercise = make_record("kd", 0, 40.0, 39.0, 12.0)
    exercise.update(run_id="kd-exercise-s0", hparams={"temperature": 20.0, "kd_weight": 0.9},
                    created="2026-12-01T00:00:00Z")   # newest of all
    dash = kw.ComparisonDashboard(records + [exercise])
    table = {r["label"]: r for r in dash.last_table}
    assert set(table) == {"kd / temperature=4", "kd / temperature=20", "student"}
    assert table["kd / temperature=4"]["n"] == 3
    assert table["kd / temperature=4"]["mean"] == pytest.approx(statistics.mean(LAST["kd"]))
    assert (table["kd / temperature=20"]["n"], table["kd / temperature=20"]["mean"]) == (1, 39.0)
    (ax_bars,) = dash.last_figure.axes
    assert len(ax_bars.patches) == 3
    assert any("temperature=20" in label.get_text() for label in ax_bars.get_yticklabels())
    assert "temperature=20" in dash.output.outputs[-1]["data"]["text/plain"]   # the table names the setting
    # the curves are labelled by setting too
    (ax_curves,) = dash.last_curves.axes
    assert "kd / temperature=20 s0" in [line.get_label() for line in ax_curves.get_lines()]


def test_results_dashboard_filters_on_one_budget(records, tmp_path):
    from kdteach.results import save_record
    from kdteach.train import get_budget

    for r in records:
        save_record(r, tmp_path)
    save_record(make_record("kd", 0, 10.0, 10.0, 1.0, budget="ci-4ep"), tmp_path)
    dash = kw.results_dashboard("ci", folder=tmp_path)
    assert {r["budget"] for r in dash.records} == {"ci"} and len(dash.records) == 6
    dash4 = kw.results_dashboard(get_budget("ci").override_epochs(4), folder=tmp_path)
    assert [r["budget"] for r in dash4.records] == ["ci-4ep"]


def test_dashboard_does_not_print(records, capsys):
    dash = kw.ComparisonDashboard(records)
    dash.button.click()
    kw.KDTemperatureExplorer(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 1, 2]), list("abcd"))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    for out in dash.output.outputs:
        assert " at 0x" not in out["data"]["text/plain"] and "<Figure" not in out["data"]["text/plain"]


def test_select_records_and_summarise(records):
    assert len(kw.select_records(records, "kd")) == 3
    assert len(kw.select_records(records, None, seed=(0, 2))) == 4
    assert kw.select_records(records, [], budget=kw.ALL) == []
    assert len(kw.select_records(records, None, teacher="tiny_teacher")) == 6  # baseline kept
    assert kw.select_records(records, None, budget="gpu") == []
    with pytest.raises(TypeError, match="unknown filter"):
        kw.select_records(records, None, studnet="x")
    with pytest.raises(TypeError, match="records"):
        kw.select_records({"method": "kd"}, None)
    rows = kw.summarise(records, "last_acc")
    assert [(r["method"], r["n"]) for r in rows] == [("kd", 3), ("student", 3)]
    assert rows[1]["std"] == pytest.approx(statistics.stdev(LAST["student"]))
    with pytest.raises(ValueError, match="metric"):
        kw.summarise(records, "accuracy")
    with pytest.raises(ValueError, match="empty"):
        kw.comparison_figure([], "best_acc")


# ---- KD temperature explorer -----------------------------------------------------------------------------

@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(8, 5, generator=g)
    teacher = 3 * torch.randn(8, 5, generator=g)
    labels = torch.randint(0, 5, (8,), generator=g)
    return student, teacher, labels


def _reference(student, teacher, labels, t, ce_weight, kd_weight):
    """Hinton et al.'s loss written out independently of kdteach: ce_weight·CE + kd_weight·T²·KL."""
    p_t = torch.softmax(teacher / t, dim=1)
    log_p_s = torch.log_softmax(student / t, dim=1)
    kd = t * t * (p_t * (torch.log(p_t) - log_p_s)).sum(dim=1).mean()
    ce = -torch.log_softmax(student, dim=1)[torch.arange(len(labels)), labels].mean()
    entropy = -(p_t * torch.log(p_t)).sum(dim=1).mean()
    return float(ce), float(kd), float(entropy), float(ce_weight * ce + kd_weight * kd)


@pytest.mark.parametrize("t, ce_weight, kd_weight", [(4.0, 0.1, 0.9), (2.0, 0.5, 0.2), (8.0, 0.0, 1.0)])
def test_kd_explorer_state_matches_reference(logits, t, ce_weight, kd_weight):
    student, teacher, labels = logits
    state = kw.kd_explorer_state(student, teacher, labels, temperature=t, ce_weight=ce_weight, kd_weight=kd_weight)
    ce, kd, entropy, total = _reference(student, teacher, labels, t, ce_weight, kd_weight)
    assert (state["temperature"], state["ce_weight"], state["kd_weight"]) == (t, ce_weight, kd_weight)
    assert state["ce"] == pytest.approx(ce, rel=1e-5)
    assert state["kd"] == pytest.approx(kd, rel=1e-5)
    assert state["teacher_entropy"] == pytest.approx(entropy, rel=1e-5)
    assert state["weighted_ce"] == pytest.approx(ce_weight * ce, rel=1e-5, abs=1e-12)
    assert state["weighted_kd"] == pytest.approx(kd_weight * kd, rel=1e-5, abs=1e-12)
    assert state["total"] == pytest.approx(total, rel=1e-5)
    assert state["teacher_probs"].shape == (8, 5)
    assert torch.allclose(state["teacher_probs"].sum(dim=1), torch.ones(8))


def test_kd_explorer_weights_are_the_methods_not_one_alpha(logits):
    """The weights are independent (total = ce_weight·CE + kd_weight·KD, as kdteach.methods.kd weights its
    terms), not (1 - alpha)·CE + alpha·KD: 0.5 / 0.2 is not a convex combination."""
    from kdteach.losses import kd_loss
    from kdteach.methods import get_method

    student, teacher, labels = logits
    state = kw.kd_explorer_state(student, teacher, labels, 4.0, ce_weight=0.5, kd_weight=0.2)
    ce = torch.nn.functional.cross_entropy(student, labels).item()
    kd = kd_loss(student, teacher, 4.0).item()
    assert state["total"] == pytest.approx(0.5 * ce + 0.2 * kd, rel=1e-5)
    assert state["total"] != pytest.approx(0.8 * ce + 0.2 * kd, rel=1e-3)
    method = get_method("kd", ce_weight=0.5, kd_weight=0.2)
    terms = method.loss(_ctx(student, teacher, labels, method.hparams))
    assert state["weighted_ce"] == pytest.approx(terms["ce"].item(), rel=1e-5)
    assert state["weighted_kd"] == pytest.approx(terms["kd"].item(), rel=1e-5)


def _ctx(student, teacher, labels, hparams):
    from kdteach.methods.base import LossContext

    return LossContext(x=torch.zeros(len(labels), 3, 4, 4), y=labels, student_logits=student,
                       teacher_logits=teacher, student_features={}, teacher_features={},
                       extras=torch.nn.ModuleDict(), hparams=hparams)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(ce_weight=-0.1), ValueError, "ce_weight must be a finite number >= 0, got -0.1"),
    (dict(kd_weight=float("nan")), ValueError, "kd_weight must be a finite number >= 0"),
    (dict(kd_weight="0.9"), ValueError, "kd_weight"),
    (dict(labels=torch.tensor([0, 9, 0, 0, 0, 0, 0, 0])), ValueError, "labels must lie in"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), ValueError, "labels must be a"),
    (dict(teacher=torch.randn(8, 4)), ValueError, "same shape"),
    (dict(student=torch.randn(8)), ValueError, r"student_logits must have shape \(B, C\).*got \(8,\)"),
    (dict(student=torch.zeros(8, 5, dtype=torch.long)), ValueError, "student_logits must be a floating-point"),
])
def test_kd_explorer_state_bad_input(logits, kwargs, error, match):
    student, teacher, labels = logits
    args = dict(student=student, teacher=teacher, labels=labels, temperature=4.0, ce_weight=0.1,
                kd_weight=0.9) | kwargs
    with pytest.raises(error, match=match):
        kw.kd_explorer_state(args["student"], args["teacher"], args["labels"], args["temperature"],
                             args["ce_weight"], args["kd_weight"])


def test_explorer_starts_at_the_methods_defaults(logits):
    from kdteach.methods import get_method

    student, teacher, labels = logits
    ex = kw.KDTemperatureExplorer(student, teacher, labels, [f"class{i}" for i in range(5)])
    defaults = get_method("kd").hparams
    assert (ex.temperature.value, ex.ce_weight.value, ex.kd_weight.value) == \
        (defaults["temperature"], defaults["ce_weight"], defaults["kd_weight"])
    assert "ce_weight" in ex.ce_weight.description and "kd_weight" in ex.kd_weight.description
    assert ex.state["total"] == pytest.approx(_reference(student, teacher, labels, 4.0, 0.1, 0.9)[3], rel=1e-5)


def test_explorer_sliders_update_state(logits):
    student, teacher, labels = logits
    ex = kw.KDTemperatureExplorer(student, teacher, labels, [f"class{i}" for i in range(5)])
    ex.temperature.value = 1.0
    ex.ce_weight.value = 0.5
    ex.kd_weight.value = 0.5
    cold = ex.state
    ex.temperature.value = 8.0
    hot = ex.state
    assert hot is not cold and hot["temperature"] == 8.0
    assert hot["teacher_entropy"] > cold["teacher_entropy"]  # softer targets at higher T
    assert hot["teacher_entropy"] <= math.log(5) + 1e-6
    ce, kd, _, total = _reference(student, teacher, labels, 8.0, 0.5, 0.5)
    assert hot["total"] == pytest.approx(total, rel=1e-5)
    ex.kd_weight.value = 0.0  # only the weighted cross-entropy left
    assert ex.state["total"] == pytest.approx(0.5 * ce, rel=1e-5) and ex.state["weighted_kd"] == 0.0
    ex.ce_weight.value = 1.0
    assert ex.state["total"] == pytest.approx(ce, rel=1e-5)
    ex.sample.value = 3
    ax_p, ax_l = ex.last_figure.axes
    teacher_bars = ax_p.patches[:5]
    expected = torch.softmax(teacher[3] / 8.0, dim=0)
    assert [b.get_height() for b in teacher_bars] == pytest.approx(expected.tolist(), rel=1e-5)
    assert [t.get_text() for t in ax_p.get_xticklabels()] == [f"class{i}" for i in range(5)]
    assert [b.get_height() for b in ax_l.patches] == pytest.approx([ce, 0.0, ce], rel=1e-5)
    ex.ce_weight.value, ex.kd_weight.value = 0.0, 1.0  # only KD: the bars show T²·KL
    assert [b.get_height() for b in ex.last_figure.axes[1].patches] == pytest.approx([0.0, kd, kd], rel=1e-5)
    assert _png(ex.output.outputs[0]).startswith(b"\x89PNG")


def test_explorer_bad_class_names(logits):
    student, teacher, labels = logits
    with pytest.raises(ValueError, match="class_names"):
        kw.KDTemperatureExplorer(student, teacher, labels, ["a", "b"])


def test_outputs_are_json_serialisable(records):
    """The Output widget's content must be plain data (it is synced to the browser as JSON)."""
    dash = kw.ComparisonDashboard(records)
    restored = json.loads(json.dumps(dash.output.outputs))
    assert [o["output_type"] for o in restored] == ["display_data"] * 3
    assert [sorted(o["data"]) for o in restored] == [["image/png", "text/plain"]] * 2 + [["text/html", "text/plain"]]
