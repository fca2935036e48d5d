"""SSKD (kdteach.losses.selfsup, kdteach.methods.sskd): rotated views, the contrastive similarity matrix,
the error-level ranking, the three losses against loops in float64, gradchecks, bad inputs, the two
stages, the CLI, CUDA."""

from __future__ import annotations

import math

import pytest
import torch

import kdteach.train as T
from kdteach.losses import (contrastive_similarity, error_rank_keep, rotation_views, sskd_head_loss, sskd_ss_loss,
                            sskd_tf_loss, view_targets)
from kdteach.methods import get_method, list_methods
from kdteach.methods.sskd import SSKD
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_rotation_views_are_image_major_quarter_turns():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.float32).view(2, 1, 2, 2)   # [[0, 1], [2, 3]] per image
    v = rotation_views(x)
    assert v.shape == (6, 1, 2, 2)
    assert v[0, 0].tolist() == [[1.0, 3.0], [0.0, 2.0]]                     # 90 degrees counter-clockwise
    assert v[1, 0].tolist() == [[3.0, 2.0], [1.0, 0.0]]                     # 180
    assert v[2, 0].tolist() == [[2.0, 0.0], [3.0, 1.0]]                     # 270
    assert torch.equal(v[3:], rotation_views(x[1:]))                        # image 1 follows image 0
    assert view_targets(2).tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="square"):
        rotation_views(torch.randn(1, 3, 4, 5))


def test_similarity_is_the_cosine_matrix():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(2, 5, generator=g)
    sim = contrastive_similarity(a, b)
    for j in range(6):
        for i in range(2):
            want = float(a[j] @ b[i] / (a[j].norm() * b[i].norm()))
            assert sim[j, i].item() == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="same embedding size"):
        contrastive_similarity(a, torch.randn(2, 4))


def test_error_rank_keep_keeps_correct_rows_and_the_least_wrong():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1]])
    target = torch.tensor([0, 0, 0, 1, 1])              # ranks: 0, 1, 2, 0, 1
    assert error_rank_keep(scores, target, 1.0).tolist() == [0, 1, 2, 3, 4]
    assert error_rank_keep(scores, target, 0.0).tolist() == [0, 3]
    assert error_rank_keep(scores, target, 0.75).tolist() == [0, 1, 3, 4]   # 3 wrong -> keep 2: ranks 1, 1
    with pytest.raises(ValueError, match="keep_ratio"):
        error_rank_keep(scores, target, 1.5)
    with pytest.raises(ValueError, match="target"):
        error_rank_keep(scores, target.float(), 0.5)


def kl_rows_by_loop(s, t, rows, temp):
    total = 0.0
    for r in rows:
        ps = [math.exp(v / temp) for v in s[r]]
        pt = [math.exp(v / temp) for v in t[r]]
        zs, zt = sum(ps), sum(pt)
        total += sum((q / zt) * (math.log(q / zt) - math.log(p / zs)) for p, q in zip(ps, pt))
    return total / len(rows) * temp ** 2


def test_ss_and_tf_losses_against_loops():
    g = torch.Generator().manual_seed(1)
    s, t = torch.rand(6, 2, generator=g) * 2 - 1, torch.rand(6, 2, generator=g) * 2 - 1
    rows = error_rank_keep(t, view_targets(2), 0.75).tolist()
    assert sskd_ss_loss(s, t).item() == pytest.approx(kl_rows_by_loop(s.tolist(), t.tolist(), rows, 0.5), rel=1e-5)
    zs, zt = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    rows = error_rank_keep(zt, y, 1.0).tolist()
    assert rows == list(range(6))
    assert sskd_tf_loss(zs, zt, y).item() == pytest.approx(kl_rows_by_loop(zs.tolist(), zt.tolist(), rows, 4.0),
                                                           rel=1e-5)
    # the head loss: cross-entropy of the cosines against each row's own image
    sim = torch.rand(6, 2, generator=g)
    want = -sum(math.log(math.exp(sim[j, j // 3]) / sum(math.exp(v) for v in sim[j].tolist())) for j in range(6)) / 6
    assert sskd_head_loss(sim).item() == pytest.approx(float(want), rel=1e-5)


def test_losses_gradcheck_and_detach_the_teacher():
    g = torch.Generator().manual_seed(2)
    s = (torch.rand(6, 2, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    t = torch.rand(6, 2, generator=g, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda x: sskd_ss_loss(x, t), (s,))
    zs = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.autograd.gradcheck(lambda x: sskd_tf_loss(x, zt.detach(), y), (zs,))
    sskd_tf_loss(zs, zt, y).backward()
    assert zt.grad is None and zs.grad.abs().sum() > 0


@pytest.mark.parametrize("call,match", [
    (lambda: sskd_ss_loss(torch.rand(6, 2), torch.rand(6, 3)), "same shape"),
    (lambda: sskd_ss_loss(torch.rand(5, 2), torch.rand(5, 2)), r"\(k·B, B\)"),
    (lambda: sskd_ss_loss(torch.rand(6, 2), torch.rand(6, 2), temperature=0.0), "temperature"),
    (lambda: sskd_tf_loss(torch.rand(6, 4), torch.rand(6, 4), torch.zeros(5, dtype=torch.long)), "target"),
    (lambda: sskd_head_loss(torch.rand(5, 2)), "whole number"),
])
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registered_with_the_authors_defaults_and_two_stages():
    assert "sskd" in list_methods()
    m = get_method("sskd")
    assert isinstance(m, SSKD) and "2006.07114" in m.paper
    assert {k: m.hparams[k] for k in ("ce_weight", "kd_weight", "tf_weight", "ss_weight", "kd_T", "tf_T", "ss_T",
                                      "ratio_tf", "ratio_ss")} == {
        "ce_weight": 0.1, "kd_weight": 0.9, "tf_weight": 2.7, "ss_weight": 10.0, "kd_T": 4.0, "tf_T": 4.0,
        "ss_T": 0.5, "ratio_tf": 1.0, "ratio_ss": 0.75}
    plan = m.stages(get_budget("ci"))
    assert [(p.name, p.epochs, p.schedule) for p in plan] == [("head", 5, False), ("main", 20, True)]
    for bad, match in ((dict(ss_batch=1), "ss_batch"), (dict(ratio_ss=2.0), "ratio_ss"), (dict(head_epochs=0), "head_epochs")):
        with pytest.raises(ValueError, match=match):
            get_method("sskd", **bad)


def test_head_stage_trains_only_the_teacher_head_then_main_trains_the_student(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    budget = get_budget("ci").replace(name="unit", train_subset=256, test_subset=64, batch_size=64, epochs=2)
    student, teacher = T.build_model("tiny_student", 10, 0), T.build_model("tiny_teacher", 10, 1)
    tr = T.Trainer(get_method("sskd", head_epochs=2, ss_batch=8), student, teacher, budget, seed=0, progress=False,
                   device="cpu")
    weights = {k: v.clone() for k, v in student.state_dict().items() if k.endswith("weight")}
    t_head = {k: v.clone() for k, v in tr.extras["t_head"].state_dict().items()}
    tr.fit(stop_after=2)
    assert all(torch.equal(weights[k], v) for k, v in student.state_dict().items() if k in weights)
    assert not all(torch.equal(t_head[k], v) for k, v in tr.extras["t_head"].state_dict().items())
    head_after = {k: v.clone() for k, v in tr.extras["t_head"].state_dict().items()}
    history = tr.fit()
    assert [h["stage"] for h in history] == ["head", "head", "main", "main"]
    assert set(history[-1]["loss"]) == {"ce", "kd", "tf", "ss", "total"}
    assert all(torch.equal(head_after[k], v) for k, v in tr.extras["t_head"].state_dict().items())   # frozen in main
    assert not all(torch.equal(weights[k], v) for k, v in student.state_dict().items() if k in weights)


def test_kdteach_distill_method_sskd(distill_cli):
    rec, _ = distill_cli("sskd", "ss_batch=8", "head_epochs=1")
    assert [h["stage"] for h in rec["history"]] == ["head", "main"]


@pytest.mark.cuda
@cuda
def test_cuda_losses_match_cpu():
    g = torch.Generator().manual_seed(3)
    s, t = torch.rand(12, 4, generator=g), torch.rand(12, 4, generator=g)
    dev = torch.device("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = sskd_ss_loss(s.to(dev), t.to(dev))
    assert got.dtype == torch.float32 and got.item() == pytest.approx(sskd_ss_loss(s, t).item(), rel=1e-4)
    assert rotation_views(torch.randn(2, 3, 4, 4, device=dev)).device.type == "cuda"
