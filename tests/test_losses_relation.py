"""RKD (rkd_loss and its potentials) and CRD (crd_scores, crd_nce_loss): golden values computed
independently (explicit loops in float64), invariances, gradchecks, bad inputs, CUDA."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from kdteach.losses import (CRD_EPS, crd_nce_loss, crd_scores, pairwise_distances, rkd_angle_potential,
                            rkd_distance_potential, rkd_loss, rkd_terms)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def rkd_by_loops(s: torch.Tensor, t: torch.Tensor, wd: float, wa: float) -> float:
    """RKD written from the paper's definitions, one pair / triple at a time, in float64 Python."""
    s, t = s.double().flatten(1).tolist(), t.double().flatten(1).tolist()
    b = len(s)

    def dist(e, i, j):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(e[i], e[j])))

    def cos_at(e, v, j, k):                      # angle at vertex v between v->j and v->k
        a = [x - y for x, y in zip(e[j], e[v])]
        c = [x - y for x, y in zip(e[k], e[v])]
        na, nc = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in c))
        if na == 0 or nc == 0:
            return 0.0
        return sum(x * y for x, y in zip(a, c)) / (na * nc)

    pairs = [(i, j) for i in range(b) for j in range(b) if i != j]
    mu_s = sum(dist(s, i, j) for i, j in pairs) / len(pairs)
    mu_t = sum(dist(t, i, j) for i, j in pairs) / len(pairs)
    l_d = sum(huber(dist(s, i, j) / mu_s - dist(t, i, j) / mu_t) for i, j in pairs) / (b * b)
    triples = list(itertools.product(range(b), repeat=3))
    l_a = sum(huber(cos_at(s, v, j, k) - cos_at(t, v, j, k)) for v, j, k in triples) / b ** 3
    return wd * l_d + wa * l_a


def test_rkd_golden_against_loops():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 9, generator=g) * 3
    assert rkd_loss(s, t).item() == pytest.approx(rkd_by_loops(s, t, 25.0, 50.0), rel=1e-5)
    assert rkd_loss(s, t, 1.0, 0.0).item() == pytest.approx(rkd_by_loops(s, t, 1.0, 0.0), rel=1e-5)
    f_s, f_t = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, 3, 2, 2, generator=g)
    assert rkd_loss(f_s, f_t).item() == pytest.approx(rkd_by_loops(f_s, f_t, 25.0, 50.0), rel=1e-5)


def test_potentials_on_a_right_triangle():
    e = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    d = pairwise_distances(e)
    assert torch.allclose(d, torch.tensor([[0.0, 3, 4], [3, 0, 5], [4, 5, 0]]))
    assert torch.allclose(rkd_distance_potential(e), d / 4.0)                 # mean of 3, 4, 5 (twice)
    a = rkd_angle_potential(e)
    assert a.shape == (3, 3, 3)
    assert a[0, 1, 2].item() == pytest.approx(0.0, abs=1e-6)                 # the right angle at vertex 0
    assert a[1, 0, 2].item() == pytest.approx(3 / 5, rel=1e-6)
    assert a[0, 0, 1].item() == 0.0 and a[2, 1, 1].item() == pytest.approx(1.0)


def test_rkd_is_invariant_to_scale_translation_and_rotation():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(8, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    for moved in (3.0 * t, t + 5.0, t @ q, 0.1 * (t @ q) - 2.0):
        assert rkd_loss(moved, t).item() < 1e-12
    assert rkd_loss(torch.randn(8, 4, generator=g, dtype=torch.float64), t).item() > 0.1


def test_rkd_terms_and_detached_teacher():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(5, 3, generator=g, requires_grad=True)
    t = torch.randn(5, 3, generator=g, requires_grad=True)
    d, a = rkd_terms(s, t)
    assert (25 * d + 50 * a).item() == pytest.approx(rkd_loss(s, t).item(), rel=1e-6)
    rkd_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_rkd_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 6, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: rkd_loss(x, t), (s,))


def test_rkd_half_inputs_reduce_in_float32():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    got = rkd_loss(s.bfloat16(), t.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(rkd_loss(s.bfloat16().float(), t.bfloat16().float()).item(), rel=1e-5)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((torch.randn(4, 3), torch.randn(5, 3)), {}, ValueError, "same batch size"),
    ((torch.randn(1, 3), torch.randn(1, 3)), {}, ValueError, "student_embedding must hold at least 2"),
    ((torch.randn(4, 3, 2), torch.randn(4, 3)), {}, ValueError, "student_embedding"),
    ((torch.randn(4, 3), torch.arange(12).view(4, 3)), {}, TypeError, "teacher_embedding"),
    ((torch.randn(4, 3), torch.randn(4, 3)), {"angle_weight": -1.0}, ValueError, "angle_weight"),
])
def test_rkd_bad_inputs_name_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        rkd_loss(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ CRD

def nce_by_loops(scores: torch.Tensor, num_data: int) -> float:
    """ContrastLoss from Eq. 18's posterior form, one score at a time in float64."""
    rows = scores.double().tolist()
    n_neg = len(rows[0]) - 1
    noise = n_neg / num_data
    total = 0.0
    for row in rows:
        total += math.log(row[0] / (row[0] + noise + CRD_EPS))
        total += sum(math.log(noise / (h + noise + CRD_EPS)) for h in row[1:])
    return -total / len(rows)


def test_nce_golden_against_loops_and_by_hand():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 7, generator=g) * 0.01
    assert crd_nce_loss(scores, 50).item() == pytest.approx(nce_by_loops(scores, 50), rel=1e-6)
    # one example, one negative, N * Pn = 1/2: -[log(1/(1 + 1/2)) + log((1/2)/(0 + 1/2))] = log(3/2)
    one = torch.tensor([[1.0, 0.0]])
    assert crd_nce_loss(one, 2).item() == pytest.approx(math.log(1.5), rel=1e-5)


def test_nce_rewards_a_high_positive_and_low_negatives():
    good = torch.tensor([[1.0, 1e-6, 1e-6, 1e-6]])
    bad = torch.tensor([[1e-6, 1.0, 1.0, 1.0]])
    assert crd_nce_loss(good, 100).item() < crd_nce_loss(bad, 100).item()


def test_nce_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    scores = (torch.rand(3, 6, generator=g, dtype=torch.float64) + 0.01).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: crd_nce_loss(x, 40), (scores,))


def test_scores_are_the_gathered_dot_products():
    g = torch.Generator().manual_seed(2)
    v = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(10, 4, generator=g), dim=1)
    idx = torch.tensor([[0, 5, 5, 9], [1, 2, 3, 4], [2, 0, 7, 8]])
    got = crd_scores(v, bank, idx, 0.5)
    for b in range(3):
        for k in range(4):
            want = math.exp(float(v[b] @ bank[idx[b, k]]) / 0.5)
            assert got[b, k].item() == pytest.approx(want, rel=1e-5)


def test_scores_keep_their_own_copy_of_the_bank_and_gradcheck():
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(6, 3, generator=g, dtype=torch.float64)
    idx = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert torch.autograd.gradcheck(lambda x: crd_scores(x, bank, idx, 2.0), (v,))
    out = crd_scores(v, bank, idx, 2.0).sum()
    bank.mul_(0)                                                   # an in-place bank update before backward
    out.backward()
    assert v.grad.abs().sum() > 0


@pytest.mark.parametrize("call,error,match", [
    (lambda: crd_nce_loss(torch.rand(4), 10), ValueError, "scores"),
    (lambda: crd_nce_loss(torch.rand(4, 1), 10), ValueError, "at least one negative"),
    (lambda: crd_nce_loss(torch.rand(4, 3), 0), ValueError, "num_data"),
    (lambda: crd_nce_loss(torch.rand(4, 3), 2.5), TypeError, "num_data"),
    (lambda: crd_scores(torch.rand(2, 3), torch.rand(5, 4), torch.zeros(2, 3, dtype=torch.long)), ValueError, "bank"),
    (lambda: crd_scores(torch.rand(2, 3), torch.rand(5, 3), torch.zeros(2, 3)), ValueError, "index"),
    (lambda: crd_scores(torch.rand(2, 3), torch.rand(5, 3), torch.zeros(2, 3, dtype=torch.long), 0.0),
     ValueError, "temperature"),
])
def test_crd_bad_inputs_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(16, 8, generator=g), torch.randn(16, 12, generator=g)
    assert rkd_loss(s.to(dev), t.to(dev)).item() == pytest.approx(rkd_loss(s, t).item(), rel=1e-4)
    v = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(40, 8, generator=g), dim=1)
    idx = torch.randint(0, 40, (16, 9), generator=g)
    want = crd_nce_loss(crd_scores(v, bank, idx) / 100.0, 40)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = crd_nce_loss(crd_scores(v.to(dev), bank.to(dev), idx.to(dev)) / 100.0, 40)
        r = rkd_loss(s.to(dev), t.to(dev))
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), rel=1e-4)
    assert r.dtype == torch.float32
