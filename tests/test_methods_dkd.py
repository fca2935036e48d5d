"""kdteach.methods.dkd: defaults from mdistiller, terms on a real batch, warm-up through the trainer, CLI."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach.losses import dkd_loss
from kdteach.methods import LossContext, get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.dkd import DKD
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def test_registered_with_mdistillers_defaults():
    assert "dkd" in list_methods()
    m = get_method("dkd")
    assert isinstance(m, DKD) and m.name == "dkd"
    # mdistiller/engine/cfg.py: CFG.DKD.CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, T 4.0 (WARMUP 20: the budget's ramp)
    assert dict(m.hparams) == {"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0}
    assert DKD.uses_warmup and m.needs_teacher and m.protocol == "offline"
    assert "Decoupled Knowledge Distillation" in m.paper
    # the budgets' warm-up is mdistiller's 20 of 240 epochs, scaled
    assert get_budget("paper").warmup_epochs == 20 and get_budget("paper").epochs == 240
    assert get_budget("gpu").warmup_epochs * 12 == get_budget("gpu").epochs
    assert get_budget("ci").warmup_epochs == round(20 * get_budget("ci").epochs / 240)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=0.0), ValueError, "'temperature' of method 'dkd' must be > 0"),
    (dict(beta=-1.0), ValueError, "'beta' of method 'dkd' must be >= 0"),
    (dict(alpha=-0.5), ValueError, "'alpha' of method 'dkd' must be >= 0"),
    (dict(ce_weight=-1.0), ValueError, "'ce_weight' of method 'dkd' must be >= 0"),
    (dict(gamma=1.0), ValueError, r"unknown hyper-parameter\(s\) \['gamma'\]"),
    (dict(beta="eight"), TypeError, "'beta' of method 'dkd' must be a finite number"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("dkd", **kwargs)


def test_terms_on_a_real_batch(batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method("dkd", beta=6.0)
    terms = batch_losses(method, student, teacher, x, y)
    assert list(terms) == ["ce", "tckd", "nckd"]
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    with torch.no_grad():
        zs, zt = student(x), teacher(x)
    assert (terms["tckd"] + terms["nckd"]).item() == pytest.approx(dkd_loss(zs, zt, y, 1.0, 6.0, 4.0).item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_weights_and_warmup_scale_the_terms(batch, pair):
    x, y = batch
    student, teacher = pair
    with torch.no_grad():
        zs, zt = student(x), teacher(x)

    def terms(warmup, **h):
        m = get_method("dkd", **h)
        ctx = LossContext(x=x, y=y, student_logits=zs, teacher_logits=zt, student_features={}, teacher_features={},
                          extras=torch.nn.ModuleDict(), warmup=warmup, hparams=m.hparams)
        return {k: v.item() for k, v in m.loss(ctx).items()}

    full, ramp = terms(1.0), terms(0.25)
    assert ramp["ce"] == pytest.approx(full["ce"], rel=1e-6)               # the warm-up leaves CE alone
    assert ramp["tckd"] == pytest.approx(0.25 * full["tckd"], rel=1e-5)
    assert ramp["nckd"] == pytest.approx(0.25 * full["nckd"], rel=1e-5)
    other = terms(1.0, alpha=2.0, beta=1.0, ce_weight=0.5)
    assert other["tckd"] == pytest.approx(2.0 * full["tckd"], rel=1e-5)
    assert other["nckd"] == pytest.approx(full["nckd"] / 8.0, rel=1e-5)
    assert other["ce"] == pytest.approx(0.5 * full["ce"], rel=1e-5)


def test_distillation_terms_vanish_for_a_teacher_copy(batch):
    x, y = batch
    t = T.build_model("tiny_teacher", 10, 1).eval()
    s = T.build_model("tiny_teacher", 10, 1).eval()
    terms = batch_losses(get_method("dkd"), s, t, x, y)
    assert terms["tckd"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["nckd"].item() == pytest.approx(0.0, abs=1e-6)


def test_a_few_steps_reduce_the_loss(batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method("dkd")
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    totals, nckd = [], []
    for _ in range(12):
        terms = batch_losses(method, student, teacher, x, y)
        total = sum(terms.values())
        totals.append(total.item())
        nckd.append(terms["nckd"].item())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert totals[-1] < 0.8 * totals[0]
    assert nckd[-1] < nckd[0]


class _Spy(DKD):
    """DKD recording the warm-up factor the trainer hands it, per epoch."""

    def __init__(self, **h):
        super().__init__(**h)
        self.seen: dict[int, set[float]] = {}

    def loss(self, ctx):
        self.seen.setdefault(ctx.epoch, set()).add(round(ctx.warmup, 6))
        return super().loss(ctx)


def test_trainer_ramps_the_dkd_terms_over_the_budgets_warmup_epochs():
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=3, warmup_epochs=2)
    spy = _Spy()
    teacher = T.build_model("tiny_teacher", 10, 0)
    run = T.distill(spy, budget=budget, teacher=teacher, seed=0, record=False, progress=False, device="cpu")
    assert spy.seen == {0: {0.5}, 1: {1.0}, 2: {1.0}}           # mdistiller's min(epoch / W, 1), 1-based
    assert [set(e["loss"]) for e in run.history] == [{"ce", "tckd", "nckd", "total"}] * 3


def test_kdteach_distill_method_dkd(distill_cli):
    rec, _ = distill_cli("dkd", "beta=2")
    assert rec["hparams"] == {"ce_weight": 1.0, "alpha": 1.0, "beta": 2.0, "temperature": 4.0}
    assert set(rec["history"][0]["loss"]) == {"ce", "tckd", "nckd", "total"}
