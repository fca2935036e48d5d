"""kdteach.methods.tfkd: the authors' defaults, their weighting term by term, training steps, the
self-teacher chain, and ``kdteach distill`` for both names."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kdteach.train as T
from kdteach import cli, results, zoo
from kdteach.losses import kd_loss, tfkd_reg_loss
from kdteach.methods import LossContext, get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.tfkd import AUTHORS_CIFAR100, TfKDReg, TfKDSelf, class_rescaled
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture
def tmp_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    return tmp_path


def _authors_kldiv(log_input, target):
    """The authors' ``nn.KLDivLoss()`` (default reduction 'mean': over all B * K entries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return nn.KLDivLoss()(log_input, target)


def _ctx(method, x, y, zs, zt=None):
    return LossContext(x=x, y=y, student_logits=zs, teacher_logits=zt, student_features={}, teacher_features={},
                       extras=nn.ModuleDict(), hparams=method.hparams)


def test_registered_with_the_authors_resnet18_defaults():
    assert {"tfkd_self", "tfkd_reg"} <= set(list_methods())
    self_, reg = get_method("tfkd_self"), get_method("tfkd_reg")
    assert isinstance(self_, TfKDSelf) and isinstance(reg, TfKDReg)
    # experiments/kd_experiments/resnet18_distill/resnet18_self_teacher/params.json
    assert dict(self_.hparams) == {"alpha": 0.95, "temperature": 6.0, "multiplier": 50.0}
    # experiments/base_experiments/base_resnet18/params.json; correct_prob = 0.99 in loss_kd_regularization
    assert dict(reg.hparams) == {"alpha": 0.1, "temperature": 20.0, "multiplier": 100.0, "correct_prob": 0.99}
    assert self_.protocol == "sequence" and self_.needs_teacher
    assert reg.protocol == "offline" and not reg.needs_teacher
    assert self_.chain("tiny_teacher", "tiny_student") == ["tiny_student", "tiny_student"]
    assert "Label Smoothing Regularization" in self_.paper and reg.paper == self_.paper
    assert AUTHORS_CIFAR100["mobilenetv2"]["reg"] == {"alpha": 0.95, "temperature": 40.0, "multiplier": 1.0}


@pytest.mark.parametrize("name, kwargs, error, match", [
    ("tfkd_self", dict(alpha=1.5), ValueError, r"'alpha' of method 'tfkd_self' must lie in \[0, 1\]"),
    ("tfkd_reg", dict(alpha=-0.1), ValueError, r"'alpha' of method 'tfkd_reg' must be >= 0"),
    ("tfkd_self", dict(temperature=0.0), ValueError, "'temperature' of method 'tfkd_self' must be > 0"),
    ("tfkd_reg", dict(multiplier=-1.0), ValueError, "'multiplier' of method 'tfkd_reg' must be >= 0"),
    ("tfkd_reg", dict(correct_prob=0.0), ValueError, r"'correct_prob' of method 'tfkd_reg' must be a probability"),
    ("tfkd_reg", dict(correct_prob=1.2), ValueError, r"'correct_prob' of method 'tfkd_reg' must be a probability"),
    ("tfkd_self", dict(correct_prob=0.9), ValueError, r"unknown hyper-parameter\(s\) \['correct_prob'\]"),
    ("tfkd_reg", dict(temperature="hot"), TypeError, "'temperature' of method 'tfkd_reg' must be a finite number"),
])
def test_hparams_are_validated(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method(name, **kwargs)


def test_class_rescaled():
    assert class_rescaled(100.0, 10) == pytest.approx(10.0)
    assert class_rescaled(50, 100) == pytest.approx(50.0)
    assert class_rescaled(1.0, 200) == pytest.approx(2.0)
    for bad, match in (((-1.0, 10), "multiplier"), ((10.0, 1), "num_classes"), ((10.0, 10, 0), "reference"),
                       ((True, 10), "multiplier")):
        with pytest.raises(ValueError, match=match):
            class_rescaled(*bad)


def test_self_terms_are_the_authors_loss_kd_self(batch):
    x, y = batch
    zs, zt = 2 * torch.randn(16, 10, generator=torch.Generator().manual_seed(0)), 3 * torch.randn(16, 10)
    m = get_method("tfkd_self", alpha=0.9, temperature=4.0, multiplier=20.0)
    terms = m.loss(_ctx(m, x, y, zs, zt))
    assert list(terms) == ["ce", "kd"]
    # my_loss_function.loss_kd_self: (1 - a) CE + a * KLDivLoss()(log_softmax(z_s/T), softmax(z_t/T)) * T^2 * mult
    a, t, mult = 0.9, 4.0, 20.0
    theirs_kd = a * _authors_kldiv(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1)) * t * t * mult
    assert terms["kd"].item() == pytest.approx(theirs_kd.item(), rel=1e-5)
    assert terms["kd"].item() == pytest.approx(a * mult / 10 * kd_loss(zs, zt, t).item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx((1 - a) * F.cross_entropy(zs, y).item(), rel=1e-6)


def test_reg_terms_are_the_authors_loss_kd_regularization(batch):
    x, y = batch
    zs = 2 * torch.randn(16, 10, generator=torch.Generator().manual_seed(1))
    m = get_method("tfkd_reg", alpha=0.3, temperature=20.0, multiplier=100.0, correct_prob=0.99)
    terms = m.loss(_ctx(m, x, y, zs))
    assert list(terms) == ["ce", "reg"]
    teacher_soft = torch.full((16, 10), (1 - 0.99) / 9)             # the authors' loop, written out again
    for i in range(16):
        teacher_soft[i, y[i]] = 0.99
    theirs_reg = 0.3 * _authors_kldiv(F.log_softmax(zs, 1), F.softmax(teacher_soft / 20.0, 1)) * 100.0
    assert terms["reg"].item() == pytest.approx(theirs_reg.item(), rel=1e-5)
    assert terms["reg"].item() == pytest.approx(0.3 * 100 / 10 * tfkd_reg_loss(zs, y, 0.99, 20.0).item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(0.7 * F.cross_entropy(zs, y).item(), rel=1e-6)
    # the class-rescaled multiplier keeps the CIFAR-100 weight alpha * multiplier / 100 at K = 10
    m10 = get_method("tfkd_reg", alpha=0.3, multiplier=class_rescaled(100.0, 10))
    reg10 = m10.loss(_ctx(m10, x, y, zs))["reg"].item()
    assert reg10 == pytest.approx(0.3 * tfkd_reg_loss(zs, y, 0.99, 20.0).item(), rel=1e-5)


@pytest.mark.parametrize("name, hparams", [("tfkd_self", {}), ("tfkd_reg", {}),
                                           ("tfkd_self", {"alpha": 1.0}), ("tfkd_reg", {"alpha": 1.0})])
def test_a_few_steps_reduce_the_loss(batch, name, hparams):
    # with the defaults the KL term may grow while the cross-entropy falls (a regulariser against
    # confidence); with alpha = 1 the KL term is all there is, and it must fall
    x, y = batch
    student = T.build_model("tiny_student", 10, 0)
    teacher = T.build_model("tiny_student", 10, 1).eval()
    method = get_method(name, **hparams)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    totals, kl = [], []
    for _ in range(12):
        terms = batch_losses(method, student, teacher if method.needs_teacher else None, x, y)
        total = sum(terms.values())
        totals.append(total.item())
        kl.append(terms["kd" if name == "tfkd_self" else "reg"].item())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert totals[-1] < 0.8 * totals[0], name
    if hparams:
        assert kl[-1] < 0.8 * kl[0], name
    if name == "tfkd_self":
        assert all(p.grad is None for p in teacher.parameters())


def test_reg_trains_through_the_trainer_without_a_teacher():
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=2)
    run = T.distill("tfkd_reg", budget=budget, seed=0, record=False, progress=False, device="cpu")
    assert run.record["teacher"] is None and run.record["method"] == "tfkd_reg"
    assert [set(e["loss"]) for e in run.history] == [{"ce", "reg", "total"}] * 2


def _save_untrained(role, arch, budget, seed=0):
    model = T.build_model(arch, 10, seed)      # untrained weights are enough for the plumbing
    record = results.new_record(method=role, teacher=None, student=arch, dataset="cifar10", budget="ci", seed=seed,
                                hparams={}, recipe=budget.teacher_recipe() if role == "teacher" else budget.student_recipe(),
                                history=[{"epoch": 1, "test_acc": 10.0}], wall_time=0.0, device="cpu")
    zoo.save_to_cache(role, model, budget, seed, record)


def test_self_distils_the_given_pretrained_copy_as_link_0(tmp_env):
    budget = get_budget("ci")
    _save_untrained("student", "tiny_student", budget)
    copy, rec0 = zoo.student_baseline(budget=budget, seed=0, verbose=False)
    run = T.distill("tfkd_self", budget=budget, teacher=copy, seed=0, epochs=1, progress=False)
    rec = run.record
    assert (rec["method"], rec["teacher"], rec["student"], rec["budget"]) == ("tfkd_self", "tiny_student",
                                                                              "tiny_student", "ci-1ep")
    assert rec["chain"]["archs"] == ["tiny_student", "tiny_student"]
    assert set(rec["history"][0]["loss"]) == {"ce", "kd", "total"}
    with pytest.raises(ValueError, match="teacher_model must be a trained tiny_student"):
        T.distill("tfkd_self", budget=budget, teacher=T.build_model("tiny_student", 10, 0), seed=0, epochs=1,
                  progress=False)


@pytest.mark.parametrize("name", ["tfkd_reg", "tfkd_self"])
def test_kdteach_distill_method(tmp_env, capsys, name):
    budget = get_budget("ci")
    # tfkd_self's link 0 from the command line: the zoo's model of the student's own architecture
    _save_untrained("teacher", "tiny_student", budget)
    assert cli.main(["distill", "--method", name, "--budget", "ci", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    recs = [json.loads(p.read_text()) for p in (tmp_env / "results").glob("*.json")]
    mine = [r for r in recs if r["method"] == name]
    assert len(mine) == 1 and mine[0]["run_id"] in out
    rec = mine[0]
    assert (rec["student"], rec["budget"]) == ("tiny_student", "ci-1ep")
    assert rec["teacher"] == (None if name == "tfkd_reg" else "tiny_student")
    assert rec["hparams"] == dict(get_method(name).hparams)
    assert cli.main(["methods"]) == 0
    assert name in capsys.readouterr().out
