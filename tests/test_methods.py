"""Methods: registry, benchmark weights, loss terms on a real batch, FSP's two stages."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach.methods import METHODS, get_method, list_methods
from kdteach.methods.base import StagePlan, batch_losses
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")

EXPECTED_TERMS = {"student": {"ce"}, "kd": {"ce", "kd"}, "at": {"ce", "at"}, "kdsvd": {"ce", "kdsvd"},
                  "fsp": {"ce"}}


def test_registry():
    assert list_methods() == list(METHODS)
    assert {"student", "kd", "at", "fsp", "kdsvd"} <= set(list_methods())
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: student, kd"):
        get_method("nope")
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['temp'\].*temperature"):
        get_method("kd", temp=3)
    with pytest.raises(TypeError, match="temperature"):
        get_method("kd", temperature="hot")
    with pytest.raises(ValueError, match="temperature"):
        get_method("kd", temperature=0)
    assert get_method("kd", temperature=8).hparams["temperature"] == 8


def test_benchmark_weights():
    assert dict(get_method("kd").hparams) == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0}
    assert get_method("at").hparams["beta"] == 1000.0 and get_method("at").hparams["p"] == 2
    assert get_method("kdsvd").hparams["beta"] == 1.0 and get_method("kdsvd").hparams["k"] == 1
    for name, cls in METHODS.items():
        assert cls.paper, name


@pytest.mark.parametrize("name", sorted(EXPECTED_TERMS))
def test_loss_terms_on_a_real_batch(name, batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method(name)
    terms = batch_losses(method, student, teacher, x, y)
    assert set(terms) == EXPECTED_TERMS[name]
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_distillation_terms_vanish_for_a_teacher_copy(batch):
    """A student identical to its teacher has zero AT and KD terms (sanity of the wiring)."""
    x, y = batch
    t = T.build_model("tiny_teacher", 10, 1).eval()
    s = T.build_model("tiny_teacher", 10, 1).eval()
    for name, term in (("kd", "kd"), ("at", "at")):
        assert batch_losses(get_method(name), s, t, x, y)[term].item() == pytest.approx(0.0, abs=1e-6)


def test_kd_weights_are_applied(batch, pair):
    x, y = batch
    student, teacher = pair
    a = batch_losses(get_method("kd"), student, teacher, x, y)
    b = batch_losses(get_method("kd", ce_weight=1.0, kd_weight=2.0), student, teacher, x, y)
    assert b["ce"].item() == pytest.approx(a["ce"].item() / 0.1, rel=1e-5)
    assert b["kd"].item() == pytest.approx(a["kd"].item() * 2.0 / 0.9, rel=1e-5)


def test_fsp_has_two_stages(batch, pair):
    x, y = batch
    student, teacher = pair
    fsp = get_method("fsp")
    budget = get_budget("paper")
    stages = fsp.stages(budget)
    assert [s.name for s in stages] == ["init", "main"]
    assert stages[0] == StagePlan("init", 30, trainable="features", schedule=False, teacher=True)
    assert stages[1].epochs == 240 and not stages[1].teacher
    assert [s.epochs for s in get_method("fsp", init_epochs=5).stages(budget)] == [5, 240]
    init_terms = batch_losses(fsp, student, teacher, x, y, stage="init")
    assert set(init_terms) == {"fsp"} and torch.isfinite(init_terms["fsp"]) and init_terms["fsp"] > 0
    init_terms["fsp"].backward()
    assert student.fc.weight.grad is None  # the init stage trains the feature layers only
    with pytest.raises(ValueError, match="init_epochs"):
        get_method("fsp", init_epochs=0)


def test_feature_methods_check_the_pair():
    student, teacher = T.build_model("tiny_student", 10), T.build_model("resnet20", 10)
    with pytest.raises(ValueError, match="equal channels"):
        get_method("fsp").check_models(student, teacher)
    with pytest.raises(ValueError, match="equal channels"):
        get_method("kdsvd").check_models(student, teacher)
    get_method("at").check_models(student, teacher)  # AT works across widths
