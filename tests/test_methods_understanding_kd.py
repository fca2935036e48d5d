"""kd_ls and kd_permuted (Tang et al. 2020): hyper-parameters, the terms on a real batch, training
steps reduce the loss, seeded permutations (independent of the global RNG, bit-exact resume), and
``kdteach distill --method ...``."""

from __future__ import annotations

import json

import pytest
import torch

import kdteach.train as T
from kdteach import cli, results, zoo
from kdteach.losses import kd_loss, permute_nontarget, smoothed_targets, soft_target_loss, softened_probs
from kdteach.methods import get_method
from kdteach.methods.base import LossContext, batch_losses
from kdteach.methods.understanding_kd import step_generator
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")


@pytest.fixture
def tiny_budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=2,
                                    teacher_epochs=1)


def ctx_for(method, z_s, z_t, y, epoch=0, step=0):
    return LossContext(x=torch.zeros(len(y), 3, 2, 2), y=y, student_logits=z_s, teacher_logits=z_t,
                       student_features={}, teacher_features={}, extras=torch.nn.ModuleDict(), epoch=epoch,
                       step=step, hparams=method.hparams)


def test_defaults_and_hyper_parameters():
    kd = dict(get_method("kd").hparams)
    assert dict(get_method("kd_ls").hparams) == {**kd, "epsilon": 0.1}
    assert dict(get_method("kd_permuted").hparams) == {**kd, "perm_seed": 0}
    assert get_method("kd_ls").needs_teacher is False and get_method("kd_permuted").needs_teacher is True
    with pytest.raises(ValueError, match=r"'epsilon' of method 'kd_ls' must be in \[0, 1\], got 1.5"):
        get_method("kd_ls", epsilon=1.5)
    with pytest.raises(ValueError, match="'temperature' of method 'kd_permuted' must be > 0"):
        get_method("kd_permuted", temperature=0.0)
    with pytest.raises(ValueError, match="'perm_seed' of method 'kd_permuted' must be an integer >= 0, got -1"):
        get_method("kd_permuted", perm_seed=-1)
    with pytest.raises(ValueError, match="'perm_seed' of method 'kd_permuted' must be an integer >= 0, got 1.5"):
        get_method("kd_permuted", perm_seed=1.5)
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['epsilon'\]"):
        get_method("kd_permuted", epsilon=0.2)
    with pytest.raises(ValueError, match="'kd_weight' of method 'kd_ls' must be >= 0"):
        get_method("kd_ls", kd_weight=-1.0)


def test_terms_are_kd_against_the_replaced_targets():
    g = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(8, 10, generator=g), 3 * torch.randn(8, 10, generator=g)
    y = torch.arange(8)
    ls = get_method("kd_ls", epsilon=0.4)
    terms = ls.loss(ctx_for(ls, z_s, None, y))
    assert set(terms) == {"ce", "kd"}
    assert terms["ce"].item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(z_s, y).item(), rel=1e-6)
    assert terms["kd"].item() == pytest.approx(0.9 * soft_target_loss(z_s, smoothed_targets(y, 10, 0.4), 4.0).item(),
                                               rel=1e-6)
    perm = get_method("kd_permuted")
    t1 = perm.loss(ctx_for(perm, z_s, z_t, y, epoch=2, step=5))
    want = permute_nontarget(softened_probs(z_t, 4.0), y, step_generator(0, 2, 5))
    assert t1["kd"].item() == pytest.approx(0.9 * soft_target_loss(z_s, want, 4.0).item(), rel=1e-6)
    assert t1["kd"].item() != pytest.approx(0.9 * kd_loss(z_s, z_t, 4.0).item(), rel=1e-3)   # not plain KD
    # the permutation depends on (perm_seed, epoch, step), never on the global random state
    torch.manual_seed(123)
    again = perm.loss(ctx_for(perm, z_s, z_t, y, epoch=2, step=5))["kd"]
    assert torch.equal(again, t1["kd"])
    other_step = perm.loss(ctx_for(perm, z_s, z_t, y, epoch=2, step=6))["kd"]
    other_seed = get_method("kd_permuted", perm_seed=1)
    assert not torch.equal(other_step, t1["kd"])
    assert not torch.equal(other_seed.loss(ctx_for(other_seed, z_s, z_t, y, epoch=2, step=5))["kd"], t1["kd"])
    with pytest.raises(ValueError, match="needs the teacher's logits"):
        perm.loss(ctx_for(perm, z_s, None, y))


@pytest.mark.parametrize("name", ["kd_ls", "kd_permuted"])
def test_a_few_steps_reduce_the_loss_on_a_real_batch(name, batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method(name)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    totals = []
    for _ in range(5):
        terms = batch_losses(method, student, teacher, x, y)
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert set(terms) == {"ce", "kd"} and all(torch.isfinite(v) for v in terms.values())
    assert totals[-1] < totals[0]
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("name", ["kd_permuted", "kd_ls"])
def test_resume_is_bitwise_exact(name, tiny_budget, tmp_path):
    teacher = T.build_model("tiny_teacher", 10, 1).eval()

    def trainer(checkpoint, student_seed=0):
        return T.Trainer(get_method(name), T.build_model("tiny_student", 10, student_seed),
                         teacher if name == "kd_permuted" else None, tiny_budget, seed=0, progress=False,
                         checkpoint=checkpoint, device="cpu")

    full = trainer(tmp_path / "full.pt")
    full_history = full.fit()
    part = trainer(tmp_path / "part.pt")
    part.fit(stop_after=1)
    torch.manual_seed(999)                           # a new process: other global RNG state, other weights
    resumed = trainer(tmp_path / "part.pt", student_seed=99)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert strip(resumed.fit()) == strip(full_history)
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name, extra", [("kd_permuted", []), ("kd_ls", ["--set", "epsilon=0.8"])])
def test_distill_from_the_command_line(name, extra, tmp_path, capsys, monkeypatch):
    from kdteach.train import budgets

    # the command's plumbing, on a 256-image "ci" so the test stays fast
    budget = budgets.BUDGETS["ci"].replace(train_subset=256, test_subset=128, batch_size=64)
    monkeypatch.setitem(budgets.BUDGETS, "ci", budget)
    teacher = T.build_model("tiny_teacher", 10, 0)      # untrained weights are enough for the plumbing
    record = results.new_record(method="teacher", teacher=None, student="tiny_teacher", dataset="cifar10",
                                budget="ci", seed=0, hparams={}, recipe=budget.teacher_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache("teacher", teacher, budget, 0, record)
    assert cli.main(["distill", "--method", name, "--budget", "ci", "--epochs", "1", "--quiet", *extra]) == 0
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert len(recs) == 1 and recs[0]["method"] == name and recs[0]["run_id"] in capsys.readouterr().out
    assert recs[0]["teacher"] == ("tiny_teacher" if name == "kd_permuted" else None)
    assert set(recs[0]["history"][0]["loss"]) >= {"ce", "kd"}
    if name == "kd_ls":
        assert recs[0]["hparams"]["epsilon"] == 0.8
