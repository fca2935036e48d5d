"""kdteach.methods.sp: the benchmark's weight and feature (feat[-2]), the loss terms, any pair, the CLI."""

from __future__ import annotations

import pytest
import torch

from kdteach import cli
from kdteach.features import extract
from kdteach.losses import sp_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.sp import SP
from kdteach.models import create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def test_registered_with_the_benchmarks_weight():
    assert "sp" in list_methods()
    m = get_method("sp")
    assert isinstance(m, SP) and "Similarity-Preserving" in m.paper and "1907.09682" in m.paper
    # run_cifar_distill.sh: --distill similarity -a 0 -b 3000 (-r at train_student.py's default 1)
    assert dict(m.hparams) == {"ce_weight": 1.0, "beta": 3000.0}
    assert [s.name for s in m.stages(get_budget("ci"))] == ["main"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=-1.0), "'beta' of method 'sp' must be >= 0"),
    (dict(margin=1.0), r"unknown hyper-parameter\(s\) \['margin'\]"),
])
def test_hparams_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_method("sp", **kwargs)


def test_deepest_stage_and_its_terms(batch, pair):
    (x, y), (student, teacher) = batch, pair
    m = get_method("sp")
    assert m.student_features(student) == ["layer3"] and m.teacher_features(teacher) == ["layer3"]   # feat[-2]
    with torch.no_grad():
        zs, fs = extract(student, x, ["layer3"])
        _, ft = extract(teacher, x, ["layer3"])
    terms = batch_losses(m, student, teacher, x, y)
    assert list(terms) == ["ce", "sp"]
    want = 3000.0 * sp_loss(fs["layer3"], ft["layer3"]).item()
    assert terms["sp"].item() == pytest.approx(want, rel=1e-5) and want > 0
    assert terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    terms["sp"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.layer1.parameters())


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "shufflenetv2"), ("wrn_40_2", "wrn_16_2"),
                                              ("resnet32x4", "vgg8")])
def test_any_pair_works_without_a_connector(teacher, student):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    method = get_method("sp")
    method.check_models(s, t)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    terms = batch_losses(method, s, t, x, y)
    assert torch.isfinite(terms["sp"]) and terms["sp"] > 0


def test_a_few_steps_reduce_the_sp_term(batch, pair):
    (x, y), (student, teacher) = batch, pair
    m = get_method("sp", ce_weight=0.0)
    opt = torch.optim.SGD(student.parameters(), lr=0.05)
    first = None
    for _ in range(8):
        terms = batch_losses(m, student, teacher, x, y)
        first = terms["sp"].item() if first is None else first
        opt.zero_grad()
        terms["sp"].backward()
        opt.step()
    assert batch_losses(m, student, teacher, x, y)["sp"].item() < first


def test_the_loss_shrinks_with_the_batch_size():
    # two-cluster features: the same spread of similarities at B = 64 and 128; the mean over B² of unit rows
    g = torch.Generator().manual_seed(0)

    def feats(b):
        c = torch.arange(b) % 2
        return (torch.randn(b, 20, generator=g) + 3 * c[:, None]), (torch.randn(b, 30, generator=g) - 3 * c[:, None])

    r = [sum(sp_loss(*feats(b)).item() for _ in range(20)) for b in (64, 128)]
    assert 0.35 < r[1] / r[0] < 0.7


def test_kdteach_distill_method_sp(distill_cli, capsys):
    rec, _ = distill_cli("sp", "beta=1000")
    assert rec["hparams"] == {"ce_weight": 1.0, "beta": 1000.0}
    assert [set(e["loss"]) for e in rec["history"]] == [{"ce", "sp", "total"}]
    assert cli.main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "sp" in listing and "Similarity-Preserving" in listing
