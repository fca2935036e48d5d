"""Soft targets of Tang et al. (2020) and the KD loss against a given distribution, plus the
understanding_kd measurements: golden values computed independently (NumPy loops), float64
gradcheck, bad input (messages checked) and CUDA (skipped without a GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdteach.analysis import class_probability_matrix, class_relation_distance, class_relations, kd_gradient_norms
from kdteach.losses import (kd_loss, matched_epsilon, permute_nontarget, smoothed_targets, soft_target_loss,
                            softened_probs)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ZS = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 0.2], [2.5, 0.1, 0.1, 1.0]])
Q = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.5, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]])
Y = torch.tensor([0, 1, 3])


def np_soft_target_loss(zs, q, t):
    """T² · mean_i Σ_c q log(q / p_s), with p_s = softmax(zs / t) written as exp / sum, term by term."""
    total = 0.0
    for row, target in zip(zs, q):
        norm = sum(math.exp(v / t) for v in row)
        total += sum(qc * (math.log(qc) - (v / t - math.log(norm))) for v, qc in zip(row, target) if qc > 0)
    return t * t * total / len(zs)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# smoothed_targets, matched_epsilon
# ------------------------------------------------------------------------------------------------

def test_smoothed_targets_golden():
    got = smoothed_targets(torch.tensor([2, 0]), 4, 0.2)
    want = [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]]          # 1 - 0.2 + 0.2/4 and 0.2/4
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got.dtype == torch.float32
    assert torch.equal(smoothed_targets(torch.tensor([1]), 3, 0.0), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(smoothed_targets(torch.tensor([1, 2]), 5, 1.0, dtype=torch.float64),
                          torch.full((2, 5), 0.2, dtype=torch.float64))


def test_matched_epsilon_gives_the_mean_target_probability():
    p = torch.tensor(Q)
    y = torch.tensor([0, 1, 2])
    mean_conf = (0.7 + 0.5 + 0.25) / 3
    eps = matched_epsilon(p, y)
    assert eps == pytest.approx((1 - mean_conf) * 4 / 3, rel=1e-12)
    q = smoothed_targets(y, 4, eps, dtype=torch.float64)
    assert q[0, 0].item() == pytest.approx(mean_conf, rel=1e-12)
    assert matched_epsilon(torch.full((2, 4), 0.25), torch.tensor([0, 3])) == pytest.approx(1.0)
    assert matched_epsilon(torch.eye(4)[[1, 2]], torch.tensor([1, 2])) == pytest.approx(0.0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: smoothed_targets(torch.tensor([0, 4]), 4, 0.1), ValueError, r"target must hold class indices in \[0, 4\), got values in \[0, 4\]"),
    (lambda: smoothed_targets(torch.tensor([0.0, 1.0]), 4, 0.1), TypeError, "target must be an integer tensor"),
    (lambda: smoothed_targets(torch.tensor([[0, 1]]), 4, 0.1), ValueError, r"target must have shape \(B,\) with B >= 1.*\(1, 2\)"),
    (lambda: smoothed_targets([0, 1], 4, 0.1), TypeError, "target must be a torch.Tensor"),
    (lambda: smoothed_targets(torch.tensor([0]), 1, 0.1), ValueError, "num_classes must be an integer >= 2, got 1"),
    (lambda: smoothed_targets(torch.tensor([0]), 4, 1.5), ValueError, r"epsilon must be a number in \[0, 1\], got 1.5"),
    (lambda: smoothed_targets(torch.tensor([0]), 4, 0.1, dtype=torch.int64), TypeError, "dtype must be a floating-point"),
    (lambda: matched_epsilon(torch.tensor(Q) * 2, torch.tensor([0, 1, 2])), ValueError, "probs must hold one probability distribution per row"),
    (lambda: matched_epsilon(torch.tensor(Q), torch.tensor([0, 1])), ValueError, r"target must have shape \(3,\)"),
])
def test_target_builders_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------------------------------
# permute_nontarget
# ------------------------------------------------------------------------------------------------

def test_permute_keeps_the_target_and_the_values_and_moves_the_rest():
    p = softened_probs(torch.randn(64, 10, generator=gen(1), dtype=torch.float64), 2.0)
    y = torch.randint(0, 10, (64,), generator=gen(2))
    q = permute_nontarget(p, y, gen(3))
    rows = torch.arange(64)
    assert torch.equal(q[rows, y], p[rows, y])                                   # target kept exactly
    assert torch.equal(q.sort(dim=1).values, p.sort(dim=1).values)               # same multiset per row
    moved = (q != p).any(dim=1).float().mean()
    assert moved > 0.9                                                           # almost every row shuffled
    assert torch.equal(q, permute_nontarget(p, y, gen(3)))                       # seeded: reproducible
    assert not torch.equal(q, permute_nontarget(p, y, gen(4)))


def test_permute_golden_against_an_explicit_loop():
    """Independent reference: the same random keys, sorted by hand, define each row's permutation."""
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.05, 0.15, 0.5, 0.3]])
    y = torch.tensor([2, 0, 3])
    keys = torch.rand(3, 4, generator=gen(7))
    want = p.clone()
    for i in range(3):
        others = [j for j in range(4) if j != int(y[i])]                        # ascending
        shuffled = sorted(others, key=lambda j: float(keys[i, j]))              # ordered by their keys
        for src, dst in zip(others, shuffled):
            want[i, dst] = p[i, src]
    assert torch.equal(permute_nontarget(p, y, gen(7)), want)


def test_permutation_is_uniform_over_the_non_target_classes():
    """Each non-target value lands on each non-target class about equally often."""
    k, n = 4, 6000
    p = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).expand(n, k)
    y = torch.zeros(n, dtype=torch.long)
    q = permute_nontarget(p, y, gen(0))
    freq = (q[:, 1:] == 0.3).float().mean(dim=0)                # where the value 0.3 went
    assert torch.allclose(freq, torch.full((3,), 1 / 3), atol=0.03)


def test_permute_commutes_with_softmax_and_is_differentiable():
    z = torch.randn(5, 6, generator=gen(1), dtype=torch.float64)
    y = torch.tensor([0, 5, 2, 2, 3])
    assert torch.allclose(softened_probs(permute_nontarget(z, y, gen(2)), 3.0),
                          permute_nontarget(softened_probs(z, 3.0), y, gen(2)), atol=1e-14)
    p = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: permute_nontarget(a, y, gen(9)), (p,))


@pytest.mark.parametrize("call, error, match", [
    (lambda: permute_nontarget(torch.rand(3, 4), torch.tensor([0, 1])), ValueError, r"target must have shape \(3,\)"),
    (lambda: permute_nontarget(torch.rand(3, 4), torch.tensor([0, 1, 7])), ValueError, r"class indices in \[0, 4\)"),
    (lambda: permute_nontarget(torch.rand(4), torch.tensor([0])), ValueError, r"probs must have shape \(B, K\)"),
    (lambda: permute_nontarget(torch.rand(2, 1), torch.tensor([0, 0])), ValueError, "num_classes must be an integer >= 2"),
    (lambda: permute_nontarget(torch.rand(2, 3), torch.tensor([0, 1]), generator=0), TypeError, "generator must be a CPU torch.Generator"),
    (lambda: permute_nontarget(torch.rand(2, 3).long(), torch.tensor([0, 1])), TypeError, "probs must be a floating-point tensor"),
])
def test_permute_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------------------------------
# soft_target_loss
# ------------------------------------------------------------------------------------------------

class TestSoftTargetLoss:
    def test_golden(self):
        for t in (1.0, 4.0):
            want = np_soft_target_loss(ZS, Q, t)                # row 1 has a zero target entry
            got = soft_target_loss(torch.tensor(ZS, dtype=torch.float32), torch.tensor(Q, dtype=torch.float32), t)
            assert got.item() == pytest.approx(want, rel=1e-5)

    def test_equals_kd_loss_for_the_softened_teacher(self):
        zs = torch.randn(6, 10, generator=gen(1), dtype=torch.float64)
        zt = 3 * torch.randn(6, 10, generator=gen(2), dtype=torch.float64)
        for t in (1.0, 4.0, 20.0):
            assert soft_target_loss(zs, softened_probs(zt, t), t).item() == pytest.approx(kd_loss(zs, zt, t).item(),
                                                                                           rel=1e-12)

    def test_label_smoothing_identity(self):
        """At T = 1 the KL to a smoothed label is the label-smoothed cross-entropy minus its entropy."""
        zs = torch.randn(5, 4, generator=gen(3), dtype=torch.float64)
        y = torch.tensor([0, 1, 2, 3, 1])
        eps = 0.3
        q = smoothed_targets(y, 4, eps, dtype=torch.float64)
        entropy = -(q * q.log()).sum(dim=1).mean()
        ls_ce = F.cross_entropy(zs, y, label_smoothing=eps)
        assert soft_target_loss(zs, q, 1.0).item() == pytest.approx((ls_ce - entropy).item(), rel=1e-10)

    def test_gradient_identity_and_gradcheck(self):
        t, b = 3.0, 3
        zs = torch.tensor(ZS, requires_grad=True)
        q = torch.tensor(Q)
        soft_target_loss(zs, q, t).backward()
        want = t * (torch.softmax(zs.detach() / t, 1) - q) / b
        assert torch.allclose(zs.grad, want, atol=1e-12)
        z = torch.tensor(ZS, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a: soft_target_loss(a, q, 2.5), (z,))

    def test_target_is_detached(self):
        zs = torch.tensor(ZS, requires_grad=True)
        q = torch.tensor(Q, requires_grad=True)
        soft_target_loss(zs, q).backward()
        assert zs.grad is not None and q.grad is None

    def test_bf16_reduces_in_float32(self):
        zs = torch.tensor(ZS, dtype=torch.bfloat16)
        got = soft_target_loss(zs, torch.tensor(Q, dtype=torch.bfloat16))
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(np_soft_target_loss(zs.double().numpy(), Q, 4.0), rel=2e-2)

    @pytest.mark.parametrize("call, error, match", [
        (lambda: soft_target_loss(torch.zeros(3, 4), torch.full((3, 5), 0.2)), ValueError,
         r"student_logits and target_probs must have the same shape, got \(3, 4\) and \(3, 5\)"),
        (lambda: soft_target_loss(torch.zeros(3, 4), torch.full((3, 4), 0.5)), ValueError,
         r"target_probs must hold one probability distribution per row.*row sums in \[2, 2\]"),
        (lambda: soft_target_loss(torch.zeros(2, 2), torch.tensor([[1.5, -0.5], [0.5, 0.5]])), ValueError,
         r"target_probs must hold one probability distribution per row.*minimum entry -0.5"),
        (lambda: soft_target_loss(torch.zeros(4), torch.zeros(4)), ValueError, r"student_logits must have shape \(B, K\)"),
        (lambda: soft_target_loss(torch.zeros(2, 2), torch.full((2, 2), 0.5), temperature=0), ValueError,
         "temperature must be a finite number > 0, got 0"),
        (lambda: soft_target_loss(torch.zeros(2, 2), [[0.5, 0.5]] * 2), TypeError, "target_probs must be a torch.Tensor"),
    ])
    def test_bad_inputs(self, call, error, match):
        with pytest.raises(error, match=match):
            call()


# ------------------------------------------------------------------------------------------------
# measurements (kdteach.analysis)
# ------------------------------------------------------------------------------------------------

def test_class_probability_matrix_golden():
    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.4, 0.5, 0.1], [0.1, 0.1, 0.8]])
    y = torch.tensor([0, 2, 0, 2])
    m = class_probability_matrix(p, y)
    want = np.array([[0.5, 0.4, 0.1], [0.0, 0.0, 0.0], [0.15, 0.15, 0.7]])     # class 1 absent: a zero row
    np.testing.assert_allclose(m.numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"labels must be a \(4,\) integer tensor"):
        class_probability_matrix(p, y[:3])
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        class_probability_matrix(p, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="num_classes must equal probs.shape"):
        class_probability_matrix(p, y, num_classes=4)


def test_class_relation_distance_golden():
    a = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]], dtype=torch.float64)
    b = torch.tensor([[0.2, 0.4, 0.4], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8]], dtype=torch.float64)
    # relation rows (off-diagonal, renormalised): a -> [.75,.25], [.25,.75], [.5,.5]; b -> [.5,.5], [.5,.5], [.5,.5]
    want = (0.25 + 0.25 + 0.0) / 3
    assert class_relation_distance(a, b) == pytest.approx(want, rel=1e-12)
    assert class_relation_distance(a, a * 3) == pytest.approx(0.0, abs=1e-15)    # scale-free
    r = class_relations(a)
    np.testing.assert_allclose(r.numpy(), [[0, 0.75, 0.25], [0.25, 0, 0.75], [0.5, 0.5, 0]], rtol=1e-12)
    with pytest.raises(ValueError, match="must be non-negative"):
        class_relations(-a)
    with pytest.raises(ValueError, match=r"must be a square \(K, K\) matrix with K >= 3"):
        class_relation_distance(torch.eye(2), torch.eye(2))
    with pytest.raises(ValueError, match="positive off-diagonal mass in every row"):
        class_relation_distance(torch.eye(3), b)
    with pytest.raises(ValueError, match="must have the same shape"):
        class_relation_distance(a, torch.full((4, 4), 0.25))


def test_kd_gradient_norms_match_autograd():
    zs = torch.randn(7, 5, generator=gen(1), dtype=torch.float64)
    zt = 2 * torch.randn(7, 5, generator=gen(2), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    t = 4.0
    a = zs.clone().requires_grad_(True)
    (kd_loss(a, zt, t) * 7).backward()               # the batch mean times B: the per-image gradients, stacked
    b = zs.clone().requires_grad_(True)
    F.cross_entropy(b, y, reduction="sum").backward()
    out = kd_gradient_norms(zs, zt, y, t)
    assert torch.allclose(out["kd"].double(), a.grad.norm(dim=1), rtol=1e-5)
    assert torch.allclose(out["ce"].double(), b.grad.norm(dim=1), rtol=1e-5)
    assert torch.allclose(out["kd_target"].double(), a.grad[torch.arange(7), y], rtol=1e-5, atol=1e-7)
    assert torch.allclose(out["ce_target"].double(), b.grad[torch.arange(7), y], rtol=1e-5, atol=1e-7)
    assert torch.allclose(out["teacher_confidence"].double(), torch.softmax(zt, 1)[torch.arange(7), y], rtol=1e-6)
    # another target: the gradient follows it, the confidence stays the teacher's
    q = smoothed_targets(y, 5, 0.5, dtype=torch.float64)
    c = zs.clone().requires_grad_(True)
    (soft_target_loss(c, q, t) * 7).backward()
    other = kd_gradient_norms(zs, zt, y, t, target_probs=q)
    assert torch.allclose(other["kd"].double(), c.grad.norm(dim=1), rtol=1e-5)
    assert torch.equal(other["teacher_confidence"], out["teacher_confidence"])
    with pytest.raises(ValueError, match="student_logits and teacher_logits must have the same shape"):
        kd_gradient_norms(zs, zt[:, :4], y, t)
    with pytest.raises(ValueError, match=r"labels must be a \(7,\) integer tensor"):
        kd_gradient_norms(zs, zt, y[:3], t)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        kd_gradient_norms(zs, zt, y, -1.0)


# ------------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    zs = torch.randn(16, 10, generator=gen(1))
    zt = 3 * torch.randn(16, 10, generator=gen(2))
    y = torch.randint(0, 10, (16,), generator=gen(3))
    p = softened_probs(zt, 4.0)
    q_cpu = permute_nontarget(p, y, gen(4))
    q_gpu = permute_nontarget(p.to(dev), y.to(dev), gen(4))
    assert q_gpu.device.type == "cuda" and torch.allclose(q_gpu.cpu(), q_cpu)    # same permutations on both
    s_cpu = smoothed_targets(y, 10, 0.2)
    s_gpu = smoothed_targets(y.to(dev), 10, 0.2)
    assert s_gpu.device.type == "cuda" and torch.allclose(s_gpu.cpu(), s_cpu)
    ref = soft_target_loss(zs, q_cpu)
    got = soft_target_loss(zs.to(dev), q_gpu)
    assert got.device.type == "cuda" and got.item() == pytest.approx(ref.item(), rel=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        lin = torch.nn.Linear(10, 10).to(dev)
        torch.nn.init.eye_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        low = soft_target_loss(lin(zs.to(dev)), q_gpu.bfloat16())
    assert low.dtype == torch.float32 and low.item() == pytest.approx(ref.item(), rel=0.1)
    norms = kd_gradient_norms(zs.to(dev), zt.to(dev), y.to(dev), 4.0)
    assert torch.allclose(norms["kd"], kd_gradient_norms(zs, zt, y, 4.0)["kd"], rtol=1e-4)
