"""The dot method and the trainer's optimiser extension point (Method.optimizer / Method.backward):
one trainer step equals DOT's update by hand, Δ = 0 is KD, bit-exact resume with both momentum buffers
in the checkpoint, the NaN stop names the term, the schedule reaches the custom optimiser, extras are
optimised, bad hyper-parameters and bad optimisers are refused, and ``kdteach distill --method dot``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import kdteach.train as T
from kdteach import cli, results, zoo
from kdteach.losses import kd_loss
from kdteach.methods import get_method
from kdteach.methods.base import LossContext, batch_losses
from kdteach.methods.dot import DOT
from kdteach.optim import DistillationOrientedSGD
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture
def tiny_budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=2,
                                    teacher_epochs=1, init_epochs=1)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))


def make_trainer(budget, method=None, checkpoint=None, student_seed=0, **hp):
    return T.Trainer(method or get_method("dot", **hp), T.build_model("tiny_student", 10, student_seed),
                     T.build_model("tiny_teacher", 10, 123), budget, seed=0, progress=False, checkpoint=checkpoint,
                     device="cpu")


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


def test_defaults_and_registry():
    m = get_method("dot")
    assert dict(m.hparams) == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0, "delta": 0.075}
    assert m.name == "dot" and "Zhao" in m.paper and m.task_terms == ("ce",)


def test_terms_are_kds():
    torch.manual_seed(0)
    s, t = T.build_model("tiny_student", 10, 0), T.build_model("tiny_teacher", 10, 1)
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 10, (6,))
    terms = batch_losses(get_method("dot"), s, t, x, y)
    assert list(terms) == ["ce", "kd"]
    with torch.no_grad():
        zs, zt = s(x), t(x)
    assert terms["ce"].item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.9 * kd_loss(zs, zt, 4.0).item(), rel=1e-5)


def test_one_trainer_step_is_dots_update_by_hand(tiny_budget):
    """The trainer's step (zero_grad, Method.backward, step) on one batch equals the update written
    out from the two separate gradients (torch.autograd.grad of each term)."""
    budget = tiny_budget.replace(train_subset=64, epochs=1)
    tr = make_trainer(budget)
    before = [p.detach().clone() for p in tr.student.parameters()]
    x, y = next(iter(tr.train_loader))               # the batch fit() sees first (loader epoch 0)
    tr.student.train()
    s_copy = T.build_model("tiny_student", 10, 0)
    s_copy.load_state_dict(tr.student.state_dict())
    s_copy.train()
    terms = batch_losses(tr.method, s_copy, tr.teacher, x, y)
    params = list(s_copy.parameters())
    g_task = torch.autograd.grad(terms["ce"], params, retain_graph=True)
    g_kd = torch.autograd.grad(terms["kd"], params)
    tr.fit()
    lr, wd = tr.history[0]["lr"], budget.weight_decay
    assert len(tr.train_loader) == 1                  # one step
    for p0, gt, gk, p1 in zip(before, g_task, g_kd, tr.student.parameters()):
        want = p0 - lr * (gt + wd * p0) - lr * gk      # first step: each buffer is its first gradient
        assert torch.allclose(p1.detach(), want, atol=1e-5)


def test_delta_zero_trains_like_kd(tiny_budget):
    budget = tiny_budget.replace(epochs=1)
    dot0 = make_trainer(budget, delta=0.0)
    kd = make_trainer(budget, method=get_method("kd"))
    h_dot, h_kd = dot0.fit(), kd.fit()
    assert h_dot[0]["loss"]["kd"] == pytest.approx(h_kd[0]["loss"]["kd"], rel=1e-4)
    for a, b in zip(dot0.student.parameters(), kd.student.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    other = make_trainer(budget)                          # delta = 0.075 moves elsewhere
    other.fit()
    assert not torch.allclose(other.student.fc.weight, kd.student.fc.weight, atol=1e-4)


def test_trainer_uses_the_method_optimizer_with_the_schedule(tiny_budget):
    tr = make_trainer(tiny_budget)
    history = tr.fit(stop_after=1)
    opt = tr.optimizer
    assert isinstance(opt, DistillationOrientedSGD)
    g = opt.param_groups[0]
    assert (g["momentum"], g["delta"], g["weight_decay"]) == (0.9, 0.075, tiny_budget.weight_decay)
    assert g["lr"] == history[0]["lr"] == tiny_budget.lr            # cosine: epoch 0 at the base lr
    tr.fit()
    assert tr.history[1]["lr"] == pytest.approx(tiny_budget.lr_at(1, 2, tiny_budget.lr))
    assert tr.history[1]["lr"] < tr.history[0]["lr"]
    assert set(tr.history[0]["loss"]) == {"ce", "kd", "total"}


def test_a_few_epochs_reduce_the_distillation_term_and_the_total(tiny_budget):
    history = make_trainer(tiny_budget.replace(epochs=3, lr=0.05)).fit()
    for term in ("kd", "total"):
        assert history[-1]["loss"][term] < history[0]["loss"][term], term


@pytest.mark.parametrize("stop", [1, 2])
def test_resume_is_bitwise_exact_with_both_buffers_checkpointed(tiny_budget, tmp_path, stop):
    budget = tiny_budget.replace(epochs=3)
    full = make_trainer(budget, checkpoint=tmp_path / "full.pt")
    full_history = full.fit()
    part = make_trainer(budget, checkpoint=tmp_path / "part.pt")
    part.fit(stop_after=stop)
    state = torch.load(tmp_path / "part.pt", weights_only=True)["optimizer"]
    assert state["param_groups"][0]["delta"] == 0.075
    assert all({"task_momentum_buffer", "distillation_momentum_buffer"} <= set(s) for s in state["state"].values())
    resumed = make_trainer(budget, checkpoint=tmp_path / "part.pt", student_seed=99)
    assert strip_times(resumed.fit()) == strip_times(full_history)
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        assert torch.equal(a, b), k


def test_nan_stops_with_the_term_named(tiny_budget, tmp_path, monkeypatch):
    real = DOT.loss

    def poisoned(self, ctx):
        terms = real(self, ctx)
        if ctx.epoch == 1 and ctx.step == 2:
            terms["kd"] = terms["kd"] * float("nan")
        return terms

    monkeypatch.setattr(DOT, "loss", poisoned)
    tr = make_trainer(tiny_budget, checkpoint=tmp_path / "run.pt")
    with pytest.raises(T.NonFiniteLossError, match=r"'kd' of method 'dot' is nan at epoch 2 .*step 3/4.*after epoch 1"):
        tr.fit()
    assert all(torch.isfinite(p).all() for p in tr.student.parameters())


class DOTWithScale(DOT):
    """DOT with an extra module only the distillation term reaches (a learnable logit map)."""

    name = "dot_scale"

    def build_extras(self, student, teacher, budget):
        lin = nn.Linear(10, 10)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(10))
            lin.bias.zero_()
        return nn.ModuleDict({"map": lin})

    def loss(self, ctx: LossContext):
        h = ctx.hparams
        mapped = ctx.extras["map"](ctx.student_logits)
        return {"ce": h["ce_weight"] * nn.functional.cross_entropy(ctx.student_logits.float(), ctx.y),
                "kd": h["kd_weight"] * kd_loss(mapped, ctx.teacher_logits, h["temperature"])}


def test_extras_are_optimised_with_their_own_gradient(tiny_budget):
    tr = make_trainer(tiny_budget, method=DOTWithScale())                  # 2 epochs; stop after 1
    w0 = tr.extras["map"].weight.detach().clone()
    tr.fit(stop_after=1)
    held = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in tr.extras.parameters()} <= held
    assert not torch.equal(w0, tr.extras["map"].weight)
    st = tr.optimizer.state[tr.extras["map"].weight]       # only the distillation term reaches it
    assert "distillation_momentum_buffer" in st and "task_momentum_buffer" not in st


def test_bad_hyper_parameters_and_budgets(tiny_budget):
    with pytest.raises(ValueError, match=r"'delta' of method 'dot' must lie in \(-1, 1\)"):
        get_method("dot", delta=1.5)
    with pytest.raises(TypeError, match="'delta' of method 'dot' must be a finite number"):
        get_method("dot", delta="big")
    with pytest.raises(ValueError, match="temperature"):
        get_method("dot", temperature=0.0)
    tr = make_trainer(tiny_budget, delta=0.2)              # 0.9 + 0.2 >= 1 under this budget
    with pytest.raises(ValueError, match=r"momentum \+ delta must both lie in \[0, 1\).*delta=0.2"):
        tr.fit()


def test_the_trainer_refuses_a_bad_optimizer(tiny_budget, monkeypatch):
    monkeypatch.setattr(DOT, "optimizer", lambda self, params, budget, lr: "sgd")
    with pytest.raises(TypeError, match="DOT.optimizer must return a torch.optim.Optimizer, got str"):
        make_trainer(tiny_budget).fit()
    monkeypatch.setattr(DOT, "optimizer", lambda self, params, budget, lr: torch.optim.SGD(params[:-1], lr=lr))
    with pytest.raises(ValueError, match=r"must optimise exactly the \d+ trainable parameters"):
        make_trainer(tiny_budget).fit()
    monkeypatch.setattr(DOT, "optimizer", lambda self, params, budget, lr: torch.optim.SGD(params, lr=lr))
    with pytest.raises(TypeError, match="back-propagates into a DistillationOrientedSGD, got SGD"):
        make_trainer(tiny_budget).fit()


def test_distill_dot_from_the_command_line(tmp_path, capsys):
    budget = get_budget("ci")
    teacher = T.build_model("tiny_teacher", 10, 0)
    record = results.new_record(method="teacher", teacher=None, student="tiny_teacher", dataset="cifar10",
                                budget="ci", seed=0, hparams={}, recipe=budget.teacher_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache("teacher", teacher, budget, 0, record)
    assert cli.main(["distill", "--method", "dot", "--budget", "ci", "--epochs", "1", "--quiet",
                     "--set", "delta=0.05"]) == 0
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    mine = [r for r in recs if r["method"] == "dot"]
    assert len(mine) == 1 and mine[0]["run_id"] in capsys.readouterr().out
    assert mine[0]["hparams"]["delta"] == 0.05 and mine[0]["budget"] == "ci-1ep"
    assert set(mine[0]["history"][0]["loss"]) == {"ce", "kd", "total"}
    assert all(math.isfinite(v) for v in mine[0]["history"][0]["loss"].values())


@pytest.mark.cuda
def test_cuda_bf16_training_and_resume(tiny_budget, tmp_path):
    """DOT on CUDA: bf16 autocast forward, two float32 backward passes (no GradScaler: bf16 needs
    none), resume ends where an uninterrupted run does (within cuDNN's non-determinism)."""
    budget = tiny_budget.replace(epochs=2)

    def trainer(path, student_seed=0):
        return T.Trainer(get_method("dot"), T.build_model("tiny_student", 10, student_seed),
                         T.build_model("tiny_teacher", 10, 123), budget, progress=False, checkpoint=path,
                         device="cuda")

    full = trainer(tmp_path / "full.pt")
    history = full.fit()
    assert all(math.isfinite(v) for e in history for v in e["loss"].values())
    assert full.record()["device"].startswith("cuda")
    part = trainer(tmp_path / "part.pt")
    part.fit(stop_after=1)
    resumed = trainer(tmp_path / "part.pt", student_seed=99)
    resumed.fit()
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-2, atol=1e-3), k
