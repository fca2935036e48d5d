"""kdteach.methods.ofd: pre-ReLU features, margins from the teacher BN found by the traced rule, the
authors' 1x1 conv + BN connector, their weights (stage weights 2^(i-n+1), / 1000, CE), the trainer, the
CLI and analysis.ofd_distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kdteach.train as T
from kdteach import analysis, cli
from kdteach.features import extract
from kdteach.losses import ofd_loss, ofd_margin
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.ofd import OFD, bn_before_activation, ofd_connector, ofd_stage_pairs, teacher_margins
from kdteach.models import Stage, create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")

NAMES = ["layer1", "layer2", "layer3"]


def test_registered_with_the_authors_weights_and_preactivations():
    assert "ofd" in list_methods()
    m = get_method("ofd")
    assert isinstance(m, OFD) and m.preact is True and "Overhaul of Feature Distillation" in m.paper
    # train_with_distillation.py: loss_CE + loss_distill.sum() / batch_size / 1000
    assert dict(m.hparams) == {"ce_weight": 1.0, "ofd_weight": 1e-3}
    assert [(s.name, s.teacher) for s in m.stages(get_budget("ci"))] == [("main", True)]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ofd_weight=-1.0), ValueError, "'ofd_weight' of method 'ofd' must be >= 0"),
    (dict(ce_weight=-0.5), ValueError, "'ce_weight' of method 'ofd' must be >= 0"),
    (dict(ofd_weight="big"), TypeError, "'ofd_weight' of method 'ofd' must be a finite number"),
    (dict(margin=1.0), ValueError, r"unknown hyper-parameter\(s\) \['margin'\]"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("ofd", **kwargs)


def test_margin_bn_is_the_authors_for_wrn_and_the_residual_branch_for_resnets():
    wrn = create("wrn_16_2", 10)
    found = [bn_before_activation(wrn, n) for n in ("block1", "block2", "block3")]
    # the authors' get_bn_before_relu: block2.layer[0].bn1, block3.layer[0].bn1, bn1; exact pre-activations
    assert [f.name for f in found] == ["block2.layer.0.bn1", "block3.layer.0.bn1", "bn1"]
    assert all(f.exact for f in found) and found[2].bn is wrn.bn1
    tiny = create("tiny_teacher", 10)
    found = [bn_before_activation(tiny, n) for n in NAMES]
    assert [f.name for f in found] == ["layer1.0.bn2", "layer2.0.bn2", "layer3.1.bn2"]   # not downsample.1
    assert not any(f.exact for f in found)                                                 # + shortcut
    assert bn_before_activation(create("tiny_student", 10), "layer2").exact
    # the model's mode is left as it was
    tiny.train()
    bn_before_activation(tiny, "layer2")
    assert tiny.training


def test_teacher_margins_equal_ofd_margin_of_those_bns():
    t = create("tiny_teacher", 10)
    with torch.no_grad():
        t.layer2[0].bn2.weight.uniform_(0.2, 1.5)
        t.layer2[0].bn2.bias.uniform_(-1.0, 1.0)
    m = teacher_margins(t)
    assert list(m) == NAMES and m["layer2"].shape == (24,) and (m["layer2"] < 0).all()
    assert torch.equal(m["layer2"], ofd_margin(t.layer2[0].bn2.weight, t.layer2[0].bn2.bias))
    assert torch.allclose(m["layer1"], torch.full((16,), -math.sqrt(2 / math.pi)))        # γ = 1, β = 0 at init


def test_connector_is_1x1_conv_bn_even_for_equal_stages_else_strided():
    s = lambda c, stride: Stage("g", c, stride, "m")     # noqa: E731
    same = ofd_connector(s(16, 2), s(16, 2))
    assert [type(m).__name__ for m in same] == ["Conv2d", "BatchNorm2d"]
    assert same[0].kernel_size == (1, 1) and same[0].bias is None
    assert same[0].weight.std().item() == pytest.approx(math.sqrt(2 / 16), rel=0.3)       # the authors' init
    wide = ofd_connector(s(16, 2), s(64, 2))
    assert wide(torch.randn(2, 16, 4, 4)).shape == (2, 64, 4, 4)
    down = ofd_connector(s(8, 2), s(4, 4))
    assert down[0].stride == (2, 2) and down(torch.randn(2, 8, 8, 8)).shape == (2, 4, 4, 4)
    up = ofd_connector(s(8, 4), s(4, 2))
    assert isinstance(up[0], torch.nn.ConvTranspose2d) and up(torch.randn(2, 8, 4, 4)).shape == (2, 4, 8, 8)
    assert not any(isinstance(m, torch.nn.ReLU) for c in (same, down, up) for m in c)
    with pytest.raises(ValueError, match=r"method 'ofd' cannot connect the student's stage 'g' \(8 channels, "
                                         r"stride 2\).*stride 3.*not an integer"):
        ofd_connector(s(8, 2), s(4, 3))


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "resnet8x4"), ("wrn_40_2", "wrn_16_2"),
                                              ("resnet56", "resnet20"), ("vgg13", "mobilenetv2")])
def test_zoo_pairs_get_connectors_and_margins(teacher, student):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    m = get_method("ofd")
    m.check_models(s, t)
    extras = m.build_extras(s, t, None).eval()
    pairs = ofd_stage_pairs(s, t)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        _, fs = extract(s, x, [p[0].name for p in pairs], preact=True)
        _, ft = extract(t, x, [p[1].name for p in pairs], preact=True)
        for i, (c, (ss, ts)) in enumerate(zip(extras["connector"], pairs)):
            assert c(fs[ss.name]).shape == ft[ts.name].shape
            assert extras["margin"](i).shape == (ts.channels,)


def test_a_pair_that_cannot_work_is_a_clear_error():
    t, s = T.build_model("resnet32x4", 10, 0), T.build_model("vgg8", 10, 0)
    with pytest.raises(ValueError, match=r"method 'ofd' pairs the stages after the stem one to one, but the "
                                         r"student vgg8 \[block0 64ch /1, .*\] has 4 of them and the teacher "
                                         r"resnet32x4 \[stem 32ch /1, .*\] has 3"):
        get_method("ofd").check_models(s, t)
    # a teacher whose stages have no batch norm before their activation: no margin
    with pytest.raises(ValueError, match=r"method 'ofd' needs the batch norm before the activation of the "
                                         r"teacher's stage 'layer1'.*teacher shufflenetv2 \["):
        get_method("ofd").check_models(T.build_model("resnet8", 10, 0), T.build_model("shufflenetv2", 10, 0))


def test_loss_terms_are_the_authors_formula(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("ofd")
    extras = method.build_extras(student, teacher, None)
    assert sorted(extras) == ["connector", "margin"]
    assert sum(p.numel() for p in extras["margin"].parameters()) == 0            # margins are buffers
    terms = batch_losses(method, student, teacher, x, y, extras=extras)
    assert list(terms) == ["ce", "ofd"] and terms["ofd"] > 0
    with torch.no_grad():
        zs, fs = extract(student, x, NAMES, preact=True)
        _, ft = extract(teacher, x, NAMES, preact=True)
        margins = teacher_margins(teacher)
        want = 0.0
        for i, n in enumerate(NAMES):                 # distiller.py: / 2 ** (feat_num - i - 1); loop: / B / 1000
            s = extras["connector"][i](fs[n]).double().numpy()
            t = ft[n].double().numpy()
            target = np.maximum(t, margins[n].double().numpy().reshape(1, -1, 1, 1))
            ell = (s - target) ** 2 * ((s > target) | (target > 0))
            want += ell.sum() / 2 ** (3 - i - 1)
    assert terms["ofd"].item() == pytest.approx(want / len(x) / 1000, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    terms["ofd"].backward()
    assert all(p.grad is not None for p in extras["connector"].parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_a_few_steps_reduce_the_ofd_term(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("ofd", ce_weight=0.0)
    extras = method.build_extras(student, teacher, None)
    opt = torch.optim.SGD(list(student.parameters()) + list(extras.parameters()), lr=0.05, momentum=0.9)
    values = []
    for _ in range(8):
        opt.zero_grad()
        term = batch_losses(method, student, teacher, x, y, extras=extras)["ofd"]
        term.backward()
        opt.step()
        values.append(term.item())
    assert values[-1] < 0.7 * values[0], values


def test_trainer_runs_and_keeps_the_margins_fixed():
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=1)
    teacher = T.build_model("tiny_teacher", 10, 0)
    run = T.distill(get_method("ofd"), budget=budget, teacher=teacher, seed=0, record=False, progress=False,
                    device="cpu")
    assert [set(e["loss"]) for e in run.history] == [{"ce", "ofd", "total"}]
    margins = teacher_margins(teacher)
    for i, n in enumerate(NAMES):
        assert torch.equal(run.extras["margin"](i).cpu(), margins[n])


def test_ofd_distance_by_hand_and_with_the_fitted_read_out(batch, pair):
    (x, _), (student, teacher) = batch, pair
    student.eval()
    m = teacher_margins(teacher)["layer2"]
    conn = ofd_connector(student.stage("layer2"), teacher.stage("layer2")).eval()
    got = analysis.ofd_distance(student, teacher, x, "layer2", "layer2", m, connector=conn, batch_size=5)
    with torch.no_grad():
        _, fs = extract(student, x, "layer2", preact=True)
        _, ft = extract(teacher, x, "layer2", preact=True)
        assert got == pytest.approx(ofd_loss(conn(fs["layer2"]), ft["layer2"], m).item(), rel=1e-5)
    fitted = analysis.ofd_distance(student, teacher, x, "layer2", "layer2", m)
    assert 0 < fitted
    # the teacher through the identity costs exactly 0 (above the margin s = t = target; below it s < target < 0,
    # skipped); the fitted affine read-out of the teacher from itself cannot bend at the margin but beats the student's
    same = analysis.ofd_distance(teacher, teacher, x, "layer2", "layer2", m, connector=torch.nn.Identity())
    assert same == 0.0
    assert analysis.ofd_distance(teacher, teacher, x, "layer2", "layer2", m) < fitted
    with pytest.raises(ValueError, match=r"student's stage 'layer3' gives pre-activations of shape \(16, 32, 4, 4\) "
                                         r"and the teacher's stage 'layer2' \(16, 24, 8, 8\)"):
        analysis.ofd_distance(student, teacher, x, "layer3", "layer2", m)
    with pytest.raises(ValueError, match="batch_size"):
        analysis.ofd_distance(student, teacher, x, "layer2", "layer2", m, batch_size=0)


def test_kdteach_distill_method_ofd(distill_cli, capsys):
    rec, _ = distill_cli("ofd", "ofd_weight=0.002")
    assert rec["hparams"]["ofd_weight"] == 0.002
    assert [set(e["loss"]) for e in rec["history"]] == [{"ce", "ofd", "total"}]
    assert cli.main(["methods"]) == 0
    assert "Overhaul of Feature Distillation" in capsys.readouterr().out
