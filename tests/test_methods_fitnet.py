"""kdteach.methods.fitnet: the paper's two stages (``fitnet``), the benchmark's one stage (``fitnet_1stage``),
the regressor built from declared stages for any zoo pair, the trainer's stage 1, the CLI, hint_residual."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach import analysis, cli
from kdteach.features import extract
from kdteach.losses import fitnet_loss, kd_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.fitnet import FitNet, FitNet1Stage, hint_regressor, hint_stages, regressor_spec
from kdteach.models import Stage, create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def test_registered_with_the_papers_stages_and_the_benchmarks_weights():
    assert {"fitnet", "fitnet_1stage"} <= set(list_methods())
    two, one = get_method("fitnet"), get_method("fitnet_1stage")
    assert isinstance(two, FitNet) and isinstance(one, FitNet1Stage)
    # stage 2 is the kd method's (benchmark KD command -r 0.1 -a 0.9, --kd_T 4); stage 1 back-propagates the
    # hint unweighted, as the benchmark's first stages do (helper/pretrain.py); --hint_layer 2
    assert dict(two.hparams) == {"ce_weight": 0.1, "kd_weight": 0.9, "temperature": 4.0, "hint_weight": 1.0,
                                 "hint_layer": 2, "init_epochs": None}
    assert {k: two.hparams[k] for k in ("ce_weight", "kd_weight", "temperature")} == dict(get_method("kd").hparams)
    # run_cifar_distill.sh: --distill hint -a 0 -b 100 (-r left at train_student.py's default 1)
    assert dict(one.hparams) == {"ce_weight": 1.0, "kd_weight": 0.0, "temperature": 4.0, "hint_weight": 100.0,
                                 "hint_layer": 2}
    assert "FitNets" in two.paper and "RepDistiller" in one.paper


def test_stages_two_for_the_paper_one_for_the_benchmark():
    budget = get_budget("paper")
    plan = get_method("fitnet").stages(budget)
    assert [(s.name, s.epochs, s.trainable, s.schedule, s.teacher) for s in plan] == [
        ("init", 30, "features", False, True), ("main", 240, "all", True, True)]
    assert [s.epochs for s in get_method("fitnet", init_epochs=2).stages(get_budget("ci"))] == [2, 20]
    assert [s.name for s in get_method("fitnet_1stage").stages(budget)] == ["main"]
    with pytest.raises(ValueError, match="needs at least one stage-1 epoch"):
        get_method("fitnet").stages(get_budget("ci").replace(init_epochs=0))


@pytest.mark.parametrize("name, kwargs, error, match", [
    ("fitnet", dict(init_epochs=0), ValueError, "'init_epochs' of method 'fitnet'"),
    ("fitnet", dict(init_epochs=1.5), ValueError, "'init_epochs' of method 'fitnet'"),
    ("fitnet", dict(hint_layer=-1), ValueError, "'hint_layer' of method 'fitnet' must be an int >= 0"),
    ("fitnet_1stage", dict(hint_layer=1.5), ValueError, "'hint_layer' of method 'fitnet_1stage'"),
    ("fitnet_1stage", dict(hint_weight=-1.0), ValueError, "'hint_weight' of method 'fitnet_1stage' must be >= 0"),
    ("fitnet_1stage", dict(temperature=0.0), ValueError, "'temperature'"),
    ("fitnet", dict(beta=1.0), ValueError, r"unknown hyper-parameter\(s\) \['beta'\]"),
])
def test_hparams_are_validated(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method(name, **kwargs)


def test_regressor_shape_rule_by_hand():
    s = lambda c, stride: Stage("g", c, stride, "m")     # noqa: E731
    same = regressor_spec(s(16, 2), s(24, 2))
    assert (same["kind"], same["kernel"], same["stride"], same["padding"]) == ("conv", 1, 1, 0)
    assert same["parameters"] == 16 * 24 + 24 + 2 * 24
    down = regressor_spec(s(8, 2), s(4, 4))              # student map twice as large: the benchmark's 3x3/2
    assert (down["kind"], down["kernel"], down["stride"], down["padding"], down["scale"]) == ("conv", 3, 2, 1, 0.5)
    up = regressor_spec(s(8, 4), s(4, 2))                # student map half as large: the benchmark's 4x4/2 transposed
    assert (up["kind"], up["kernel"], up["stride"], up["padding"], up["scale"]) == ("conv_transpose", 4, 2, 1, 2.0)
    up4 = regressor_spec(s(8, 8), s(4, 2))
    assert (up4["kernel"], up4["stride"], up4["padding"]) == (8, 4, 2)
    x = torch.randn(2, 8, 4, 4)
    assert hint_regressor(s(8, 8), s(4, 2))(x).shape == (2, 4, 16, 16)
    assert hint_regressor(s(8, 2), s(4, 8))(torch.randn(2, 8, 16, 16)).shape == (2, 4, 4, 4)
    with pytest.raises(ValueError, match=r"guided stage 'g' \(8 channels, stride 2\) .* stride 3.*not an integer"):
        regressor_spec(s(8, 2), s(4, 3))


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "shufflenetv2"), ("vgg13", "mobilenetv2"),
                                              ("wrn_40_2", "wrn_16_2"), ("resnet56", "vgg8"),
                                              ("shufflenetv1", "resnet8x4")])
@pytest.mark.parametrize("resolution", [32, 16])
def test_any_zoo_pair_gets_a_regressor_onto_the_hint(teacher, student, resolution):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    guided, hint = hint_stages(s, t, 2)
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        _, fs = extract(s, x, guided.name)
        _, ft = extract(t, x, hint.name)
        out = hint_regressor(guided, hint)(fs[guided.name])
    assert out.shape == ft[hint.name].shape
    get_method("fitnet").check_models(s, t)


def test_a_pair_that_cannot_work_names_both_models_stages():
    t, s = T.build_model("resnet32x4", 10, 0), T.build_model("vgg8", 10, 0)
    with pytest.raises(ValueError, match=r"hint_layer=4 .* student vgg8 \[block0 64ch /1, .*\] has 5 stages and the "
                                         r"teacher resnet32x4 \[stem 32ch /1, .*\] has 4"):
        get_method("fitnet", hint_layer=4).check_models(s, t)
    with pytest.raises(ValueError, match="the student resnet8 .* has 4"):
        get_method("fitnet_1stage", hint_layer=4).student_features(T.build_model("resnet8", 10, 0))


def test_stage_one_term_is_the_hint_through_the_regressor(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("fitnet")
    extras = method.build_extras(student, teacher, None)
    assert isinstance(extras["regressor"][0], torch.nn.Conv2d) and extras["regressor"][0].kernel_size == (1, 1)
    terms = batch_losses(method, student, teacher, x, y, stage="init", extras=extras)
    assert list(terms) == ["hint"] and torch.isfinite(terms["hint"]) and terms["hint"] > 0
    with torch.no_grad():
        _, fs = extract(student, x, "layer2")
        _, ft = extract(teacher, x, "layer2")
        want = fitnet_loss(extras["regressor"](fs["layer2"]), ft["layer2"])
    assert terms["hint"].item() == pytest.approx(want.item(), rel=1e-5)
    terms["hint"].backward()
    # stage 1 moves only the student up to the guided layer and the regressor
    for name, p in student.named_parameters():
        reaches = name.split(".")[0] in ("stem", "layer1", "layer2")
        assert (p.grad is not None) == reaches, name
    assert all(p.grad is not None for p in extras.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_stage_two_is_kd_and_the_single_stage_adds_the_hint_to_ce(batch, pair):
    (x, y), (student, teacher) = batch, pair
    with torch.no_grad():
        zs, zt = student(x), teacher(x)
    main = batch_losses(get_method("fitnet"), student, teacher, x, y, stage="main")
    assert list(main) == ["ce", "kd"]
    assert main["kd"].item() == pytest.approx(0.9 * kd_loss(zs, zt, 4.0).item(), rel=1e-5)
    assert main["ce"].item() == pytest.approx(0.1 * torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    one_m = get_method("fitnet_1stage")
    extras = one_m.build_extras(student, teacher, None)
    one = batch_losses(one_m, student, teacher, x, y, extras=extras)
    assert list(one) == ["ce", "hint"]
    assert one["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    stage1 = batch_losses(get_method("fitnet"), student, teacher, x, y, stage="init", extras=extras)
    assert one["hint"].item() == pytest.approx(100.0 * stage1["hint"].item(), rel=1e-5)   # weights 100 and 1
    with_kd = batch_losses(get_method("fitnet_1stage", kd_weight=0.5), student, teacher, x, y, extras=extras)
    assert list(with_kd) == ["ce", "kd", "hint"]
    assert with_kd["kd"].item() == pytest.approx(0.5 * kd_loss(zs, zt, 4.0).item(), rel=1e-5)


def test_trainer_runs_both_stages_and_stage_one_leaves_the_deeper_layers_alone():
    budget = get_budget("ci").replace(train_subset=256, test_subset=128, epochs=2, init_epochs=1)
    teacher = T.build_model("tiny_teacher", 10, 0)
    init_student = T.build_model("tiny_student", 10, 0)
    trainer = T.Trainer(get_method("fitnet"), T.build_model("tiny_student", 10, 0), teacher, budget, seed=0,
                        device="cpu", progress=False)
    history = trainer.fit(stop_after=1)
    assert [e["stage"] for e in history] == ["init"] and set(history[0]["loss"]) == {"hint", "total"}
    before = dict(init_student.named_parameters())
    for name, p in trainer.student.named_parameters():
        moved = not torch.equal(p.detach(), before[name].detach())
        assert moved == (name.split(".")[0] in ("stem", "layer1", "layer2")), name
    run = T.distill(get_method("fitnet"), budget=budget, teacher=teacher, seed=0, record=False, progress=False,
                    device="cpu")
    assert [e["stage"] for e in run.history] == ["init", "main", "main"]
    assert [set(e["loss"]) for e in run.history] == [{"hint", "total"}] + [{"ce", "kd", "total"}] * 2
    assert run.history[0]["lr"] == budget.lr and "regressor" in run.extras


def test_hint_residual_is_zero_for_the_teacher_and_lower_for_an_affine_copy(batch):
    x, _ = batch
    teacher = T.build_model("tiny_teacher", 10, 1).eval()
    assert analysis.hint_residual(teacher, teacher, x, "layer2", "layer2", batch_size=5) == pytest.approx(0.0, abs=1e-8)
    other = T.build_model("tiny_teacher", 10, 2).eval()
    r = analysis.hint_residual(other, teacher, x, "layer2", "layer2")
    assert 0.0 < r < 1.0
    # an independent least-squares fit (numpy) gives the same unexplained fraction
    import numpy as np
    with torch.no_grad():
        _, fs = extract(other, x, "layer2")
        _, ft = extract(teacher, x, "layer2")
    a = fs["layer2"].permute(0, 2, 3, 1).reshape(-1, 24).double().numpy()
    b = ft["layer2"].permute(0, 2, 3, 1).reshape(-1, 24).double().numpy()
    a1 = np.hstack([a, np.ones((len(a), 1))])
    w, *_ = np.linalg.lstsq(a1, b, rcond=None)
    want = ((b - a1 @ w) ** 2).sum() / ((b - b.mean(0)) ** 2).sum()
    assert r == pytest.approx(float(want), rel=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        analysis.hint_residual(other, teacher, x, "layer2", "layer2", batch_size=0)


def test_kdteach_distill_method_fitnet(distill_cli, capsys):
    rec, _ = distill_cli("fitnet", "hint_weight=10")               # --epochs 1: 1 stage-1 epoch, 1 of KD
    assert rec["hparams"]["hint_weight"] == 10.0
    assert [set(e["loss"]) for e in rec["history"]] == [{"hint", "total"}, {"ce", "kd", "total"}]
    assert cli.main(["methods"]) == 0
    assert "fitnet" in capsys.readouterr().out
