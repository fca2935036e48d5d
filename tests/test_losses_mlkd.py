"""kdteach.losses.mlkd_batch_loss / mlkd_class_loss (MLKD's batch and class levels).

Golden values: a case worked out by hand, and numpy loops over matrix entries that never call the
functions under test (nor torch's matrix products).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import mlkd_batch_loss, mlkd_class_loss

LOSSES = [mlkd_batch_loss, mlkd_class_loss]


def logits(b, k, seed, scale=3.0, dtype=torch.float32):
    return scale * torch.randn(b, k, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def np_softmax(z, t):
    out = np.zeros_like(z, dtype=np.float64)
    for i in range(z.shape[0]):
        e = [math.exp(v / t) for v in z[i]]
        out[i] = [v / sum(e) for v in e]
    return out


def np_batch(zs, zt, t):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    b, k = ps.shape
    total = 0.0
    for i in range(b):
        for j in range(b):
            g_t = sum(pt[i, c] * pt[j, c] for c in range(k))
            g_s = sum(ps[i, c] * ps[j, c] for c in range(k))
            total += (g_t - g_s) ** 2
    return total / b


def np_class(zs, zt, t):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    b, k = ps.shape
    total = 0.0
    for a in range(k):
        for c in range(k):
            m_t = sum(pt[i, a] * pt[i, c] for i in range(b))
            m_s = sum(ps[i, a] * ps[i, c] for i in range(b))
            total += (m_t - m_s) ** 2
    return total / k


def test_hand_worked_case():
    # teacher: uniform over 2 classes; student at T = 1: (3/4, 1/4) and (1/4, 3/4)
    zt = torch.zeros(2, 2)
    zs = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    # P_t P_t^T = all 1/2; P_s P_s^T = [[5/8, 3/8], [3/8, 5/8]]: four squared differences of 1/64, / B = 2
    assert mlkd_batch_loss(zs, zt, temperature=1.0).item() == pytest.approx(4 / 64 / 2, rel=1e-6)
    # P_t^T P_t = all 1/2; P_s^T P_s = [[5/8, 3/8], [3/8, 5/8]] as well: / K = 2
    assert mlkd_class_loss(zs, zt, temperature=1.0).item() == pytest.approx(4 / 64 / 2, rel=1e-6)


@pytest.mark.parametrize("b, k, t", [(4, 10, 4.0), (7, 3, 1.0), (5, 100, 2.5)])
def test_golden_values_against_entry_loops(b, k, t):
    zs, zt = logits(b, k, 1), logits(b, k, 2)
    assert mlkd_batch_loss(zs, zt, t).item() == pytest.approx(np_batch(zs.numpy(), zt.numpy(), t), rel=1e-4)
    assert mlkd_class_loss(zs, zt, t).item() == pytest.approx(np_class(zs.numpy(), zt.numpy(), t), rel=1e-4)


def test_defaults_zero_for_equal_predictions_and_the_teacher_is_detached():
    zs, zt = logits(6, 10, 3), logits(6, 10, 4)
    for loss in LOSSES:
        assert loss(zs, zt).item() == pytest.approx(loss(zs, zt, 4.0).item())     # default T = 4
        assert loss(zt, zt, 2.0).item() == pytest.approx(0.0, abs=1e-12)
        assert loss(zs + 5.0, zs, 2.0).item() == pytest.approx(0.0, abs=1e-10)   # softmax ignores a shift
        assert loss(zs, zt, 2.0).item() > 0
        s, t = zs.clone().requires_grad_(True), zt.clone().requires_grad_(True)
        loss(s, t, 2.0).backward()
        assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_no_temperature_squared_factor():
    # matching logits z/T at temperature 1 gives the same value: no T^2 in front (the authors' cc/bc losses)
    zs, zt = logits(5, 8, 5), logits(5, 8, 6)
    for loss in LOSSES:
        assert loss(zs, zt, 3.0).item() == pytest.approx(loss(zs / 3.0, zt / 3.0, 1.0).item(), rel=1e-5)


def test_duplicating_the_batch_scales_the_losses():
    # duplicating the batch doubles the class matrices' entries (x4 squared) and B x B blocks (sum x4, / 2B)
    zs, zt = logits(4, 10, 7), logits(4, 10, 8)
    zs2, zt2 = torch.cat([zs, zs]), torch.cat([zt, zt])
    assert mlkd_class_loss(zs2, zt2, 2.0).item() == pytest.approx(4 * mlkd_class_loss(zs, zt, 2.0).item(), rel=1e-5)
    assert mlkd_batch_loss(zs2, zt2, 2.0).item() == pytest.approx(2 * mlkd_batch_loss(zs, zt, 2.0).item(), rel=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradcheck_float64(loss):
    zs = logits(4, 5, 9, dtype=torch.float64).requires_grad_(True)
    zt = logits(4, 5, 10, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: loss(s, zt, 2.0), (zs,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", LOSSES)
def test_low_precision_reduces_in_float32(loss):
    zs, zt = logits(6, 10, 11), logits(6, 10, 12)
    low = loss(zs.bfloat16(), zt.bfloat16(), 4.0)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(loss(zs, zt, 4.0).item(), rel=0.1, abs=1e-6)
    assert loss(zs.double(), zt, 4.0).dtype == torch.float64


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("args, error, match", [
    ((torch.randn(4, 10), torch.randn(4, 9)), ValueError,
     r"student_logits and teacher_logits must have the same shape, got \(4, 10\) and \(4, 9\)"),
    ((torch.randn(4, 10), torch.randn(3, 10)), ValueError, "must have the same shape"),
    ((torch.randn(4, 10, 1), torch.randn(4, 10)), ValueError, r"student_logits must have shape \(B, K\)"),
    ((torch.randn(4, 10), torch.randn(10)), ValueError, r"teacher_logits must have shape \(B, K\)"),
    ((torch.randn(4, 10), torch.randn(4, 10), 0.0), ValueError, "temperature must be a finite number > 0, got 0.0"),
    ((torch.randn(4, 10), torch.randn(4, 10), -2.0), ValueError, "temperature must be a finite number > 0"),
    ((torch.randn(4, 10), torch.randn(4, 10), True), TypeError, "temperature must be a positive number"),
    ((torch.ones(4, 10, dtype=torch.long), torch.randn(4, 10)), TypeError, "student_logits must be a floating-point"),
    (([[0.0, 1.0]], torch.randn(1, 2)), TypeError, "student_logits must be a torch.Tensor"),
    ((torch.randn(0, 10), torch.randn(0, 10)), ValueError, "student_logits must not be empty"),
])
def test_bad_input(loss, args, error, match):
    with pytest.raises(error, match=match):
        loss(*args)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    zs, zt = logits(16, 100, 13), logits(16, 100, 14)
    for loss in LOSSES:
        cpu = loss(zs, zt, 4.0).item()
        gpu = loss(zs.to(dev), zt.to(dev), 4.0)
        assert gpu.device.type == "cuda" and gpu.item() == pytest.approx(cpu, rel=1e-4, abs=1e-8)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = loss(zs.to(dev, torch.bfloat16), zt.to(dev, torch.bfloat16), 4.0)
        assert low.dtype == torch.float32 and torch.isfinite(low)
        assert low.item() == pytest.approx(cpu, rel=0.1, abs=1e-6)
