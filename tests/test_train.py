"""Budgets and the trainer: defaults, schedules, learning, exact resume, atomic checkpoints, NaN stops."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest
import torch

import kdteach.train as T
from kdteach.methods import get_method
from kdteach.methods.base import LossContext, Method, cross_entropy
from kdteach.train import trainer as trainer_mod
from kdteach.train.budgets import BUDGETS, Budget, get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture
def tiny_budget() -> Budget:
    """A few hundred 16x16 images, a few steps per epoch: seconds on 2 cores."""
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=3,
                                    teacher_epochs=1, init_epochs=1)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))


def make_trainer(method, budget, checkpoint=None, seed=0, student_seed=0, **hp):
    student = T.build_model("tiny_student", 10, student_seed)
    teacher = T.build_model("tiny_teacher", 10, 123)
    return T.Trainer(get_method(method, **hp), student, teacher, budget, seed=seed, progress=False,
                     checkpoint=checkpoint, device="cpu")


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


# ---------------------------------------------------------------------------------------------- budgets

def test_budget_names_and_default(monkeypatch):
    assert set(BUDGETS) == {"ci", "quick", "gpu", "paper"}
    monkeypatch.setenv("KDTEACH_BUDGET", "ci")
    assert get_budget().name == "ci"
    assert get_budget(None) is BUDGETS["ci"]
    assert get_budget("PAPER").name == "paper"


def test_unknown_budget_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown budget 'huge'.*ci, quick, gpu, paper"):
        get_budget("huge")


def test_paper_budget_is_the_crd_recipe():
    b = get_budget("paper")
    assert (b.dataset, b.epochs, b.batch_size, b.lr, b.momentum, b.weight_decay) == ("cifar100", 240, 64, 0.05, 0.9,
                                                                                     5e-4)
    assert b.schedule == "step" and b.milestones == (150, 180, 210) and b.lr_decay == 0.1
    assert (b.teacher, b.student, b.augment, b.resolution, b.init_epochs) == ("resnet32x4", "resnet8x4", True, 32, 30)
    assert b.lr_for("mobilenetv2") == 0.01 and b.lr_for("shufflenetv1") == 0.01 and b.lr_for("resnet8x4") == 0.05
    # the benchmark's adjust_learning_rate: 1-based epoch e decays when e > milestone
    lrs = [b.lr_at(e, 240, 0.05) for e in (0, 149, 150, 179, 180, 210, 239)]
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005, 0.00005, 0.00005])


def test_ci_budget_and_scaling():
    b = get_budget("ci")
    assert (b.dataset, b.resolution, b.batch_size, b.teacher, b.student) == ("cifar10", 16, 128, "tiny_teacher",
                                                                             "tiny_student")
    assert b.seeds == (0, 1) and "seeds" not in b.recipe()
    assert b.replace(seeds=(5,)).student_recipe() == b.student_recipe()
    assert b.lr_at(0, 10, 0.1) == pytest.approx(0.1)
    assert b.lr_at(5, 10, 0.1) == pytest.approx(0.05)
    p = get_budget("paper").with_epochs(24)
    assert p.milestones == (15, 18, 21) and p.init_epochs == 3 and p.epochs == 24 and p.name == "paper"
    q = get_budget("ci").override_epochs(4)
    assert (q.name, q.epochs) == ("ci-4ep", 4) and get_budget("ci").with_epochs(20) is get_budget("ci")
    assert get_budget("ci").override_epochs(20) is get_budget("ci") is get_budget("ci").override_epochs(None)
    with pytest.raises(ValueError, match="epochs"):
        get_budget("ci").override_epochs(0)
    with pytest.raises(ValueError, match="epochs"):
        get_budget("ci").with_epochs(0)


def test_budget_validation():
    with pytest.raises(ValueError, match="schedule"):
        get_budget("ci").replace(schedule="linear")
    with pytest.raises(ValueError, match="epochs"):
        get_budget("ci").replace(epochs=0)


# ---------------------------------------------------------------------------------------------- trainer

def test_training_reduces_the_loss(tiny_budget):
    tr = make_trainer("student", tiny_budget.replace(lr=0.05))
    history = tr.fit()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    losses = [h["loss"]["total"] for h in history]
    assert losses[-1] < losses[0]
    for h in history:
        assert set(h) == {"epoch", "stage", "lr", "train_acc", "test_acc", "seconds", "loss"}
        assert 0.0 <= h["test_acc"] <= 100.0 and h["stage"] == "main"
    rec = tr.record()
    assert rec["method"] == "student" and rec["teacher"] is None and rec["student"] == "tiny_student"
    assert rec["best_acc"] == max(h["test_acc"] for h in history) and rec["last_acc"] == history[-1]["test_acc"]


def test_teacher_is_frozen_and_kd_terms_recorded(tiny_budget):
    tr = make_trainer("kd", tiny_budget.replace(epochs=1))
    before = {k: v.clone() for k, v in tr.teacher.state_dict().items()}
    history = tr.fit()
    assert set(history[0]["loss"]) == {"ce", "kd", "total"}
    ce, kd, total = (history[0]["loss"][k] for k in ("ce", "kd", "total"))
    assert total == pytest.approx(ce + kd, rel=1e-5)
    assert not tr.teacher.training and not any(p.requires_grad for p in tr.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in tr.teacher.state_dict().items())


@pytest.mark.parametrize("method,stop", [("kd", 2), ("fsp", 1), ("fsp", 2)])
def test_resume_is_bitwise_exact(tiny_budget, tmp_path, method, stop):
    budget = tiny_budget.replace(epochs=2, init_epochs=2)
    full = make_trainer(method, budget, tmp_path / "full.pt")
    full_history = full.fit()
    part = make_trainer(method, budget, tmp_path / "part.pt")
    part.fit(stop_after=stop)
    assert len(part.history) == stop
    # a new process: other initial weights, restored from the checkpoint
    resumed = make_trainer(method, budget, tmp_path / "part.pt", student_seed=99)
    resumed_history = resumed.fit()
    assert strip_times(resumed_history) == strip_times(full_history)
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        assert torch.equal(a, b), k
    if method == "fsp":
        assert [h["stage"] for h in full_history] == ["init", "init", "main", "main"]


def test_checkpoint_from_another_run_is_refused(tiny_budget, tmp_path):
    make_trainer("kd", tiny_budget.replace(epochs=1), tmp_path / "c.pt").fit()
    other = make_trainer("kd", tiny_budget.replace(epochs=1), tmp_path / "c.pt", temperature=2.0)
    with pytest.raises(ValueError, match="different run.*hparams"):
        other.fit()


def test_checkpoint_write_is_atomic(tiny_budget, tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    tr = make_trainer("kd", tiny_budget.replace(epochs=1), path)
    tr.fit()
    good = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(trainer_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tr.save_checkpoint()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]
    monkeypatch.undo()
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1


class NaNAfter(Method):
    """CE plus a term that turns NaN at epoch 2, step 3 (to test the NaN stop)."""

    name = "nan_after"
    defaults = MappingProxyType({})
    needs_teacher = False

    def loss(self, ctx: LossContext) -> dict[str, torch.Tensor]:
        bad = torch.tensor(math.nan if (ctx.epoch, ctx.step) == (1, 2) else 0.0)
        return {"ce": cross_entropy(ctx), "boom": bad}


def test_nan_stops_with_term_epoch_step_and_keeps_checkpoint(tiny_budget, tmp_path):
    path = tmp_path / "ck.pt"
    student = T.build_model("tiny_student", 10, 0)
    tr = T.Trainer(NaNAfter(), student, None, tiny_budget, progress=False, checkpoint=path, device="cpu")
    with pytest.raises(T.NonFiniteLossError, match=r"'boom'.*epoch 2 .*step 3/4.*checkpoint") as info:
        tr.fit()
    assert "after epoch 1" in str(info.value)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["student"].values() if v.is_floating_point())
    # the student in memory was not stepped with the NaN loss either
    assert all(torch.isfinite(p).all() for p in student.parameters())


def test_clear_errors(tiny_budget):
    s10, t100 = T.build_model("tiny_student", 10), T.build_model("tiny_teacher", 100)
    with pytest.raises(ValueError, match="100 classes.*10"):
        T.Trainer(get_method("kd"), s10, t100, tiny_budget, progress=False)
    with pytest.raises(ValueError, match="needs a teacher"):
        T.Trainer(get_method("kd"), s10, None, tiny_budget, progress=False)
    with pytest.raises(ValueError, match="unknown method 'nope'.*kd"):
        T.distill("nope", budget=tiny_budget)
    with pytest.raises(ValueError, match="unknown model 'resnet9000'"):
        T.distill("student", budget=tiny_budget, student="resnet9000")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        T.distill("student", budget=tiny_budget, epochs=0)
    with pytest.raises(ValueError, match="unknown budget"):
        T.distill("student", budget="nope")
    with pytest.raises(ValueError, match="10 classes but the student tiny_student predicts 100"):
        T.Trainer(get_method("student"), T.build_model("tiny_student", 100), None, tiny_budget, progress=False)

    class NeedsMissing(Method):
        name = "needs_missing"
        def student_features(self, student):
            return ["layer9"]

    with pytest.raises(ValueError, match=r"needs student features \['layer9'\].*stem"):
        T.Trainer(NeedsMissing(), s10, T.build_model("tiny_teacher", 10), tiny_budget, progress=False)


def test_distill_records_the_run(tiny_budget, tmp_path):
    teacher = T.build_model("tiny_teacher", 10, 5)
    result = T.distill("kd", budget=tiny_budget, teacher=teacher, epochs=1, progress=False, seed=3)
    rec = result.record
    assert rec["method"] == "kd" and rec["teacher"] == "tiny_teacher" and rec["seed"] == 3
    assert rec["hparams"] == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0}
    # another schedule than the budget's gets its own budget name: never pooled with the full runs
    assert rec["recipe"]["epochs"] == 1 and rec["budget"] == "unit-1ep"
    files = list((tmp_path / "results").glob("*.json"))
    assert [f.stem for f in files] == [rec["run_id"]]
    assert result.history == rec["history"] and not result.student.training


def test_train_model_teacher_role_uses_teacher_epochs(tiny_budget):
    result = T.train_model(budget=tiny_budget.replace(teacher_epochs=2), role="teacher", progress=False,
                           record=False)
    assert result.record["method"] == "teacher" and result.record["student"] == "tiny_teacher"
    assert len(result.history) == 2


# ---------------------------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.usefixtures("offline_data")
@pytest.mark.parametrize("method", ["kd", "at", "fsp", "kdsvd"])
def test_cuda_training_and_resume(tiny_budget, tmp_path, method):
    """Every reference method trains on CUDA (bf16 autocast, channels_last, data on the device), the
    record names the device, and a resumed run ends where an uninterrupted one does. cuDNN may pick
    non-deterministic backward kernels, so weights are compared with a tolerance on the GPU (on the
    CPU the same test is bitwise, above)."""
    budget = tiny_budget.replace(epochs=2, init_epochs=1)

    def trainer(path, student_seed=0):
        return T.Trainer(get_method(method), T.build_model("tiny_student", 10, student_seed),
                         T.build_model("tiny_teacher", 10, 123), budget, progress=False, checkpoint=path,
                         device="cuda")

    full = trainer(tmp_path / "full.pt")
    history = full.fit()
    assert next(full.student.parameters()).device.type == "cuda"
    assert all(math.isfinite(v) for e in history for v in e["loss"].values())
    assert full.record()["device"].startswith("cuda")
    part = trainer(tmp_path / "part.pt")
    part.fit(stop_after=1)
    resumed = trainer(tmp_path / "part.pt", student_seed=99)
    resumed.fit()
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-2, atol=1e-3), k
