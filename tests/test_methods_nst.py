"""kdteach.methods.nst: the benchmark's weights and stages, the loss terms, any pair with matching stage
counts, a clear error otherwise, the CLI."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach import cli
from kdteach.features import extract
from kdteach.losses import nst_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.nst import NST
from kdteach.models import create
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def test_registered_with_the_benchmarks_weight_and_kernel():
    assert "nst" in list_methods()
    m = get_method("nst")
    assert isinstance(m, NST) and "Neuron Selectivity Transfer" in m.paper and "1707.01219" in m.paper
    # run_cifar_distill.sh: --distill nst -a 0 -b 50 (-r at train_student.py's default 1); NSTLoss: (x.y)^2 only
    assert dict(m.hparams) == {"ce_weight": 1.0, "beta": 50.0, "kernel": "poly"}
    assert [s.name for s in m.stages(get_budget("ci"))] == ["main"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(kernel="rbf"), ValueError, r"'kernel' of method 'nst' must be one of \('linear', 'poly', 'gaussian'\)"),
    (dict(beta=-1.0), ValueError, "'beta' of method 'nst' must be >= 0"),
    (dict(p=2.0), ValueError, r"unknown hyper-parameter\(s\) \['p'\]"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("nst", **kwargs)


def test_stages_after_the_stem_and_their_terms(batch, pair):
    (x, y), (student, teacher) = batch, pair
    assert get_method("nst").student_features(student) == ["layer1", "layer2", "layer3"]   # feat[1:-1]
    with torch.no_grad():
        zs, fs = extract(student, x, ["layer1", "layer2", "layer3"])
        _, ft = extract(teacher, x, ["layer1", "layer2", "layer3"])
    for kernel in ("poly", "linear", "gaussian"):
        terms = batch_losses(get_method("nst", kernel=kernel), student, teacher, x, y)
        assert list(terms) == ["ce", "nst"]
        want = 50.0 * sum(nst_loss(fs[k], ft[k], kernel).item() for k in fs)
        assert terms["nst"].item() == pytest.approx(want, rel=1e-5) and want > 0
        assert terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    terms["nst"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.layer1.parameters())


@pytest.mark.parametrize("teacher, student", [("resnet32x4", "shufflenetv2"), ("wrn_40_2", "wrn_16_2"),
                                              ("resnet56", "resnet20")])
def test_pairs_with_other_widths_and_map_sizes_work(teacher, student):
    t, s = create(teacher, 10).eval(), create(student, 10).eval()
    method = get_method("nst")
    method.check_models(s, t)
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    terms = batch_losses(method, s, t, x, y)
    assert torch.isfinite(terms["nst"]) and terms["nst"] > 0


def test_a_pair_with_other_stage_counts_names_both_models():
    t, s = T.build_model("resnet32x4", 10, 0), T.build_model("vgg8", 10, 0)
    with pytest.raises(ValueError, match=r"method 'nst' pairs student and teacher stages one to one, but the student "
                                         r"\w+ has 4 .* the teacher \w+ has 3"):
        get_method("nst").check_models(s, t)


def test_kdteach_distill_method_nst(distill_cli, capsys):
    rec, _ = distill_cli("nst", "kernel=gaussian")
    assert rec["hparams"] == {"ce_weight": 1.0, "beta": 50.0, "kernel": "gaussian"}
    assert [set(e["loss"]) for e in rec["history"]] == [{"ce", "nst", "total"}]
    assert cli.main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "nst" in listing and "Neuron Selectivity" in listing
