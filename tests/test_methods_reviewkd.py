"""kdteach.methods.reviewkd: mdistiller's weights and warm-up, the review path deep to shallow with ABF
modules built from any zoo pair's declared stages, HCL against the teacher's pre-ReLU stages and pooled
feature, a clear error for an impossible pair, a few steps, the CLI."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import kdteach.train as T
from kdteach import cli
from kdteach.features import extract
from kdteach.losses import hcl_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.reviewkd import ABF, ReviewKD, build_abfs, review_path, review_stage_pairs
from kdteach.models import create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")

NAMES = ["layer1", "layer2", "layer3", "pool"]


def test_registered_with_mdistillers_weights_warmup_and_features(pair):
    student, _ = pair
    assert "reviewkd" in list_methods()
    m = get_method("reviewkd")
    assert isinstance(m, ReviewKD) and "Knowledge Review" in m.paper and "2104.09044" in m.paper
    # cfg.py: CE_WEIGHT 1.0, WARMUP_EPOCHS 20; configs/cifar100/reviewkd.yaml: REVIEWKD_WEIGHT 5.0
    assert dict(m.hparams) == {"ce_weight": 1.0, "reviewkd_weight": 5.0, "review_batch": None}
    assert m.uses_warmup and m.preact
    assert m.student_features(student) == NAMES
    assert get_budget("paper").warmup_epochs == 20 and get_budget("ci").warmup_epochs == 2
    assert [s.name for s in m.stages(get_budget("ci"))] == ["main"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(reviewkd_weight=-1.0), ValueError, "'reviewkd_weight' of method 'reviewkd' must be >= 0"),
    (dict(ce_weight="one"), TypeError, "'ce_weight' of method 'reviewkd' must be a finite number"),
    (dict(review_batch=0), ValueError, "'review_batch' of method 'reviewkd' must be None"),
    (dict(review_batch=2.5), ValueError, "'review_batch' of method 'reviewkd' must be None"),
    (dict(warmup=20), ValueError, r"unknown hyper-parameter\(s\) \['warmup'\]"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("reviewkd", **kwargs)


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "resnet8x4"), ("wrn_40_2", "wrn_16_2"),
                                              ("resnet32x4", "shufflenetv2"), ("vgg13", "vgg8"),
                                              ("vgg13", "mobilenetv2"), ("tiny_teacher", "tiny_student")])
def test_abf_shapes_follow_the_declared_stages_of_zoo_pairs(teacher, student):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    get_method("reviewkd").check_models(s, t)
    abfs = build_abfs(s, t).eval()
    pairs = review_stage_pairs(s, t)
    mid = min(512, s.feature_dim)
    assert len(abfs) == len(pairs) + 1
    for abf, (ss, ts) in zip(abfs, pairs):
        assert (abf.conv1[0].in_channels, abf.conv1[0].out_channels) == (ss.channels, mid)
        assert abf.conv2[0].out_channels == ts.channels and abf.conv2[0].kernel_size == (3, 3)
        assert abf.att_conv[0].in_channels == 2 * mid and abf.att_conv[0].out_channels == 2
    assert abfs[-1].att_conv is None and abfs[-1].conv2[0].out_channels == t.feature_dim
    x = torch.randn(2, 3, 16, 16)
    names = [p.name for p, _ in pairs] + ["pool"]
    with torch.no_grad():
        _, fs = extract(s, x, names, preact=True)
        _, ft = extract(t, x, [p.name for _, p in pairs] + ["pool"], preact=True)
        sizes = [tuple(f.shape[-2:]) if f.dim() == 4 else (1, 1) for f in ft.values()]
        out = review_path(abfs, list(fs.values()), sizes)
    for o, (ss, ts) in zip(out.outputs, pairs):
        assert o.shape == (2, ts.channels, 16 // ts.stride, 16 // ts.stride)
    assert out.outputs[-1].shape == (2, t.feature_dim, 1, 1)
    for a, (ss, _) in zip(out.attentions, pairs):
        assert a.shape == (2, 2, 16 // ss.stride, 16 // ss.stride) and 0 <= a.min() and a.max() <= 1
    assert out.attentions[-1] is None


def test_a_pair_with_other_stage_counts_names_both_models_stages():
    t, s = T.build_model("resnet32x4", 10, 0), T.build_model("vgg8", 10, 0)
    with pytest.raises(ValueError, match=r"method 'reviewkd' reviews the stages after the stem one to one .* student "
                                         r"vgg8 \[block0 64ch /1, .*\] has 4 of them and the teacher resnet32x4 "
                                         r"\[stem 32ch /1, .*\] has 3"):
        get_method("reviewkd").check_models(s, t)


def test_abf_fuses_by_its_two_attention_maps_by_hand():
    torch.manual_seed(0)
    abf = ABF(3, 4, 5, fuse=True).eval()
    x, residual = torch.randn(2, 3, 4, 4), torch.randn(2, 4, 2, 2)
    out, fused, att = abf(x, residual, (4, 4))
    with torch.no_grad():
        xm = abf.conv1(x)
        up = residual.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)         # nearest x2
        a = torch.sigmoid(F.conv2d(torch.cat([xm, up], 1), abf.att_conv[0].weight, abf.att_conv[0].bias))
        want = a[:, :1] * xm + a[:, 1:] * up
    assert torch.allclose(att, a, atol=1e-6) and torch.allclose(fused, want, atol=1e-6)
    assert torch.allclose(out, abf.conv2(want), atol=1e-6)
    out2, fused2, _ = abf(x, residual, (2, 2))                                       # resized to the teacher's size
    assert fused2.shape == (2, 4, 2, 2) and torch.allclose(fused2, want[:, :, ::2, ::2], atol=1e-6)
    with pytest.raises(ValueError, match="residual"):
        abf(x)


def test_loss_terms_are_ce_plus_weighted_hcl_on_the_review_path(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("reviewkd")
    extras = method.build_extras(student, teacher, None)
    terms = batch_losses(method, student, teacher, x, y, extras=extras)
    assert list(terms) == ["ce", "reviewkd"]
    with torch.no_grad():
        zs, fs = extract(student, x, NAMES, preact=True)
        _, ft = extract(teacher, x, NAMES, preact=True)
        targets = [ft[n] for n in NAMES[:-1]] + [ft["pool"][:, :, None, None]]
        out = review_path(extras["abf"], [fs[n] for n in NAMES], [tuple(t.shape[-2:]) for t in targets])
        want = 5.0 * hcl_loss(out.outputs, targets).item()
    assert terms["reviewkd"].item() == pytest.approx(want, rel=1e-5) and want > 0
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(zs, y).item(), rel=1e-5)
    terms["reviewkd"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in extras.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.layer1.parameters())


def test_review_batch_is_the_term_on_the_first_images(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("reviewkd")
    extras = method.build_extras(student, teacher, None).eval()      # eval: BN statistics do not depend on B
    student.eval()
    part = batch_losses(get_method("reviewkd", review_batch=4), student, teacher, x, y, extras=extras)
    first = batch_losses(method, student, teacher, x[:4], y[:4], extras=extras)
    assert part["reviewkd"].item() == pytest.approx(first["reviewkd"].item(), rel=1e-5)
    whole = batch_losses(method, student, teacher, x, y, extras=extras)
    assert part["ce"].item() == pytest.approx(whole["ce"].item(), rel=1e-6)


def test_warmup_factor_scales_only_the_distillation_term(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("reviewkd")
    extras = method.build_extras(student, teacher, None)
    captured = {}
    orig = ReviewKD.loss

    def spy(self, ctx):
        captured["ctx"] = ctx
        return orig(self, ctx)

    ReviewKD.loss = spy
    try:
        full = batch_losses(method, student, teacher, x, y, extras=extras)
    finally:
        ReviewKD.loss = orig
    half = method.loss(dataclasses.replace(captured["ctx"], warmup=0.5))
    assert half["reviewkd"].item() == pytest.approx(0.5 * full["reviewkd"].item(), rel=1e-5)
    assert half["ce"].item() == pytest.approx(full["ce"].item(), rel=1e-6)


def test_a_few_steps_reduce_the_reviewkd_term(batch, pair):
    (x, y), (student, teacher) = batch, pair
    method = get_method("reviewkd", ce_weight=0.0)
    extras = method.build_extras(student, teacher, None)
    opt = torch.optim.SGD(list(student.parameters()) + list(extras.parameters()), lr=0.05, momentum=0.9)
    values = []
    for _ in range(8):
        opt.zero_grad()
        term = batch_losses(method, student, teacher, x, y, extras=extras)["reviewkd"]
        term.backward()
        opt.step()
        values.append(term.item())
    assert values[-1] < 0.7 * values[0], values


def test_trainer_ramps_the_term_over_the_budgets_warmup_epochs():
    budget = get_budget("ci").replace(train_subset=128, test_subset=64, epochs=1)
    teacher = T.build_model("tiny_teacher", 10, 0)
    run = T.distill(get_method("reviewkd"), budget=budget, teacher=teacher, seed=0, record=False, progress=False,
                    device="cpu")
    assert [set(e["loss"]) for e in run.history] == [{"ce", "reviewkd", "total"}]
    assert len(run.extras["abf"]) == 4


def test_kdteach_distill_method_reviewkd(distill_cli, capsys):
    rec, _ = distill_cli("reviewkd", "reviewkd_weight=1")
    assert rec["hparams"] == {"ce_weight": 1.0, "reviewkd_weight": 1.0, "review_batch": None}
    assert [set(e["loss"]) for e in rec["history"]] == [{"ce", "reviewkd", "total"}]
    assert cli.main(["methods"]) == 0
    assert "Knowledge Review" in capsys.readouterr().out
