"""kdteach.methods.ab: the two stages (boundary transfer on pre-activations through the connectors, then CE),
the benchmark's weights, connectors from declared stages for any zoo pair, the trainer, the CLI and
analysis.activation_agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kdteach.train as T
from kdteach import analysis, cli
from kdteach.features import extract
from kdteach.losses import ab_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.ab import AB, ab_connector, ab_stage_pairs, stage_weights
from kdteach.methods.base import batch_losses
from kdteach.models import Stage, create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def test_registered_with_the_benchmarks_weights_and_preactivations():
    assert "ab" in list_methods()
    m = get_method("ab")
    assert isinstance(m, AB) and m.preact is True and "Activation Boundaries" in m.paper and "1811.03233" in m.paper
    # ABLoss: / 1000 * 3, margin 1.0; run_cifar_distill.sh --distill abound -a 0 -b 1 (-r default 1)
    assert dict(m.hparams) == {"ce_weight": 1.0, "ab_weight": 0.003, "margin": 1.0, "init_epochs": None}
    assert stage_weights(3) == [0.25, 0.5, 1.0] and stage_weights(1) == [1.0]


def test_stages_boundary_transfer_then_ce_without_teacher():
    plan = get_method("ab").stages(get_budget("paper"))
    assert [(s.name, s.epochs, s.trainable, s.schedule, s.teacher) for s in plan] == [
        ("init", 30, "features", False, True), ("main", 240, "all", True, False)]
    assert [s.epochs for s in get_method("ab").stages(get_budget("ci"))] == [3, 20]
    assert [s.epochs for s in get_method("ab", init_epochs=2).stages(get_budget("ci"))] == [2, 20]
    # scaled to a shortened budget the way fitnet's and fsp's first stages are
    short = get_budget("ci").with_epochs(1)
    assert [s.epochs for s in get_method("ab").stages(short)] == [s.epochs for s in get_method("fitnet").stages(short)]
    with pytest.raises(ValueError, match="method 'ab' needs at least one stage-1 epoch"):
        get_method("ab").stages(get_budget("ci").replace(init_epochs=0))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(init_epochs=0), ValueError, "'init_epochs' of method 'ab'"),
    (dict(init_epochs=1.5), ValueError, "'init_epochs' of method 'ab'"),
    (dict(margin=0.0), ValueError, "'margin' of method 'ab' must be > 0"),
    (dict(ab_weight=-1.0), ValueError, "'ab_weight' of method 'ab' must be >= 0"),
    (dict(beta=1.0), ValueError, r"unknown hyper-parameter\(s\) \['beta'\]"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("ab", **kwargs)


def test_connector_is_identity_for_equal_stages_else_conv_bn_without_relu():
    s = lambda c, stride: Stage("g", c, stride, "m")     # noqa: E731
    assert isinstance(ab_connector(s(16, 2), s(16, 2)), torch.nn.Identity)
    same = ab_connector(s(16, 2), s(24, 2))
    assert [type(m).__name__ for m in same] == ["Conv2d", "BatchNorm2d"] and same[0].kernel_size == (1, 1)
    down = ab_connector(s(8, 2), s(4, 4))
    assert down[0].kernel_size == (3, 3) and down[0].stride == (2, 2)
    up = ab_connector(s(8, 4), s(4, 2))
    assert isinstance(up[0], torch.nn.ConvTranspose2d) and up(torch.randn(2, 8, 4, 4)).shape == (2, 4, 8, 8)
    # no ReLU: a pre-activation target can be negative
    assert not any(isinstance(m, torch.nn.ReLU) for m in same)
    with pytest.raises(ValueError, match=r"method 'ab' cannot connect the student's stage 'g' \(8 channels, stride 2\)"
                                         r".*stride 3.*not an integer"):
        ab_connector(s(8, 2), s(4, 3))


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "resnet8x4"), ("vgg13", "mobilenetv2"),
                                              ("wrn_40_2", "wrn_16_2"), ("resnet56", "resnet20"),
                                              ("resnet32x4", "shufflenetv2")])
def test_zoo_pairs_get_connectors_onto_the_teachers_preactivations(teacher, student):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    m = get_method("ab")
    try:
        pairs = ab_stage_pairs(s, t)
    except ValueError as err:                    # different stage counts: the error names both models
        assert "pairs the stages after the stem one to one" in str(err)
        with pytest.raises(ValueError, match="one to one"):
            m.check_models(s, t)
        return
    m.check_models(s, t)
    connectors = m.build_extras(s, t, None)["connector"].eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        _, fs = extract(s, x, [p[0].name for p in pairs], preact=True)
        _, ft = extract(t, x, [p[1].name for p in pairs], preact=True)
        for c, (ss, ts) in zip(connectors, pairs):
            assert c(fs[ss.name]).shape == ft[ts.name].shape


def test_a_pair_with_different_stage_counts_is_a_clear_error():
    t, s = T.build_model("resnet32x4", 10, 0), T.build_model("vgg8", 10, 0)
    with pytest.raises(ValueError, match=r"method 'ab' pairs the stages after the stem one to one, but the "
                                         r"student vgg8 \[block0 64ch /1, .*\] has 4 of them and the teacher "
                                         r"resnet32x4 \[stem 32ch /1, .*\] has 3"):
        get_method("ab").check_models(s, t)


def test_stage_one_term_is_the_weighted_boundary_loss_on_preactivations(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("ab")
    extras = method.build_extras(student, teacher, None)
    assert all(isinstance(c, torch.nn.Identity) for c in extras["connector"])   # tiny pair: equal stages
    terms = batch_losses(method, student, teacher, x, y, stage="init", extras=extras)
    assert list(terms) == ["ab"] and torch.isfinite(terms["ab"]) and terms["ab"] > 0
    names = ["layer1", "layer2", "layer3"]
    with torch.no_grad():
        _, fs = extract(student, x, names, preact=True)
        _, ft = extract(teacher, x, names, preact=True)
        _, post = extract(teacher, x, names)
    assert (ft["layer2"] < 0).any() and (post["layer2"] >= 0).all()          # really before the ReLU
    # the benchmark's formula in numpy: Σ_i 2^(i-n+1) Σ ℓ_i / B, times 3/1000
    want = 0.0
    for w, n in zip([0.25, 0.5, 1.0], names):
        a, b = fs[n].double().numpy(), ft[n].double().numpy()
        ell = (a + 1) ** 2 * ((a > -1) & (b <= 0)) + (a - 1) ** 2 * ((a <= 1) & (b > 0))
        want += w * ell.sum() / len(a)
    assert terms["ab"].item() == pytest.approx(0.003 * want, rel=1e-5)
    assert terms["ab"].item() == pytest.approx(0.003 * sum(
        w * ab_loss(fs[n], ft[n]).item() for w, n in zip(stage_weights(3), names)), rel=1e-5)
    terms["ab"].backward()
    assert all(p.grad is None for p in student.fc.parameters())
    assert all(p.grad is not None for n, p in student.named_parameters() if n.startswith("layer3"))
    assert all(p.grad is None for p in teacher.parameters())


def test_stage_one_trains_the_connectors_of_a_pair_with_different_widths(batch):
    x, y = batch
    student, teacher = T.build_model("tiny_student", 10, 0), T.build_model("resnet8", 10, 0).eval()
    method = get_method("ab")
    extras = method.build_extras(student, teacher, None)
    assert not all(isinstance(c, torch.nn.Identity) for c in extras["connector"])
    terms = batch_losses(method, student, teacher, x, y, stage="init", extras=extras)
    terms["ab"].backward()
    assert all(p.grad is not None for p in extras.parameters())


def test_stage_two_is_cross_entropy_only(batch, pair):
    (x, y), (student, _) = batch, pair
    with torch.no_grad():
        zs = student(x)
    main = batch_losses(get_method("ab"), student, None, x, y, stage="main",
                        extras=torch.nn.ModuleDict())
    assert list(main) == ["ce"]
    assert main["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)


def test_trainer_runs_both_stages():
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=2, init_epochs=1)
    teacher = T.build_model("tiny_teacher", 10, 0)
    run = T.distill(get_method("ab"), budget=budget, teacher=teacher, seed=0, record=False, progress=False,
                    device="cpu")
    assert [e["stage"] for e in run.history] == ["init", "main", "main"]
    assert [set(e["loss"]) for e in run.history] == [{"ab", "total"}] + [{"ce", "total"}] * 2
    assert run.history[0]["lr"] == budget.lr and "connector" in run.extras


def test_stage_one_raises_the_activation_agreement_of_every_stage():
    """The mechanism: one stage-1 epoch moves the student's boundaries towards the teacher's."""
    from kdteach.data import example_batch

    x, _ = example_batch(64, "cifar10", resolution=16)
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=1, init_epochs=1)
    teacher = T.build_model("tiny_teacher", 10, 0)
    names = ["layer1", "layer2", "layer3"]
    before = [float(analysis.activation_agreement(T.build_model("tiny_student", 10, 0), teacher, x, n, n).mean())
              for n in names]
    trainer = T.Trainer(get_method("ab"), T.build_model("tiny_student", 10, 0), teacher, budget, seed=0,
                        device="cpu", progress=False)
    assert [e["stage"] for e in trainer.fit(stop_after=1)] == ["init"]
    after = [float(analysis.activation_agreement(trainer.student, teacher, x, n, n).mean()) for n in names]
    assert all(a > b + 0.02 for a, b in zip(after, before)), (before, after)


def test_activation_agreement_map_by_hand(batch):
    x, _ = batch
    teacher = T.build_model("tiny_teacher", 10, 1).eval()
    same = analysis.activation_agreement(teacher, teacher, x, "layer2", "layer2", batch_size=5)
    assert same.shape == (8, 8) and torch.equal(same, torch.ones(8, 8))
    other = T.build_model("tiny_student", 10, 2).eval()
    got = analysis.activation_agreement(other, teacher, x, "layer2", "layer2", batch_size=7)
    with torch.no_grad():
        _, fs = extract(other, x, "layer2", preact=True)
        _, ft = extract(teacher, x, "layer2", preact=True)
    a, b = fs["layer2"].numpy() > 0, ft["layer2"].numpy() > 0
    want = (a == b).mean(axis=(0, 1))
    assert np.allclose(got.numpy(), want, atol=1e-6)
    assert 0.0 < float(got.mean()) < 1.0
    # through a connector (an AB run's extra): a negating connector turns agreement into its complement
    # wherever no pre-activation is exactly 0
    class Negate(torch.nn.Module):
        def forward(self, z):
            return -z

    assert (fs["layer2"] != 0).all()
    flip = analysis.activation_agreement(other, teacher, x, "layer2", "layer2", connector=Negate())
    assert torch.allclose(flip, 1 - got, atol=1e-6)
    with pytest.raises(ValueError, match=r"student's stage 'layer3' gives pre-activations of shape \(16, 32, 4, 4\) "
                                         r"and the teacher's stage 'layer2' \(16, 24, 8, 8\)"):
        analysis.activation_agreement(other, teacher, x, "layer3", "layer2")
    with pytest.raises(ValueError, match="batch_size"):
        analysis.activation_agreement(other, teacher, x, "layer2", "layer2", batch_size=0)


def test_kdteach_distill_method_ab(distill_cli, capsys):
    rec, _ = distill_cli("ab", "margin=0.5")
    assert rec["hparams"]["margin"] == 0.5
    assert [set(e["loss"]) for e in rec["history"]] == [{"ab", "total"}, {"ce", "total"}]
    assert cli.main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "ab" in listing.split() or any(line.split()[:1] == ["ab"] for line in listing.splitlines())
    assert "Activation Boundaries" in listing
