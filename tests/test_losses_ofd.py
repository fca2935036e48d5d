"""Tests of kdteach.losses.ofd_margin and ofd_loss: OFD's margin from BN statistics and partial L2.

Golden values are computed independently of the functions under test: the margin as the expected
value of the negative part of N(β, γ²) by numerical integration of x·pdf(x) over x < 0 in numpy
float64 (no closed form, no scipy), with the authors' fallback test Φ(−β/|γ|) ≤ 0.001 evaluated
with ``math.erfc``; the loss with an explicit Python loop over the entries in the paper's form
(0 where S ≤ T ≤ 0 after the margin ReLU, else the squared difference).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import ofd_loss, ofd_margin

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32, scale=1.5):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def margin_by_integration(gamma: float, beta: float) -> float:
    """E[x | x < 0] for x ~ N(β, γ²) by the trapezoid rule on a fine grid; −3|γ| if Φ(−β/|γ|) <= 0.001."""
    s = abs(gamma)
    if 0.5 * math.erfc(beta / s / math.sqrt(2.0)) <= 1e-3:
        return -3.0 * s
    x = np.linspace(min(beta, 0.0) - 12 * s, 0.0, 400_001)
    pdf = np.exp(-0.5 * ((x - beta) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    return float(np.trapezoid(x * pdf, x) / np.trapezoid(pdf, x))


def loss_by_loop(s: np.ndarray, t: np.ndarray, margin: np.ndarray) -> float:
    total = 0.0
    for idx in np.ndindex(*s.shape):
        tt = max(float(t[idx]), float(margin[idx[1]]))
        ss = float(s[idx])
        if not (ss <= tt <= 0):
            total += (ss - tt) ** 2
    return total / s.shape[0]


def test_margin_of_a_centred_channel_is_minus_sqrt_2_over_pi():
    got = ofd_margin(torch.tensor([1.0, 2.0, -1.0]), torch.zeros(3))
    want = -math.sqrt(2 / math.pi) * torch.tensor([1.0, 2.0, 1.0])         # half-normal mean; |γ| used
    assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("gamma, beta", [(1.0, 0.0), (0.7, 0.4), (0.3, -0.5), (1.5, 2.0), (0.2, 0.55),
                                         (0.5, -2.0), (-0.8, 1.0), (1.0, 2.9)])
def test_margin_matches_numerical_integration(gamma, beta):
    got = ofd_margin(torch.tensor([gamma], dtype=torch.float64), torch.tensor([beta], dtype=torch.float64))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(margin_by_integration(gamma, beta), rel=1e-6, abs=1e-9)
    assert got.item() < 0


def test_margin_fallback_when_the_negative_tail_is_empty():
    # β/|γ| = 4: Φ(−4) ≈ 3e-5 <= 0.001 -> −3|γ|; β/|γ| = 3: Φ(−3) ≈ 1.3e-3 > 0.001 -> the expectation
    got = ofd_margin(torch.tensor([0.5, -0.5, 1.0]), torch.tensor([2.0, 2.0, 3.0]))
    assert got[:2].tolist() == pytest.approx([-1.5, -1.5])
    assert got[2].item() == pytest.approx(margin_by_integration(1.0, 3.0), rel=1e-6)
    # a zero γ: the constant response itself when negative, 0 (the fallback's limit) otherwise
    assert ofd_margin(torch.zeros(2), torch.tensor([-0.3, 0.4])).tolist() == pytest.approx([-0.3, 0.0])


def test_margin_from_a_batchnorm_module_and_half_precision():
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 0.1]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 1.0, 0.05]))
    m = ofd_margin(bn.weight, bn.bias)
    assert m.shape == (4,) and not m.requires_grad and m.dtype == torch.float32
    want = [margin_by_integration(g, b) for g, b in zip(bn.weight.tolist(), bn.bias.tolist())]
    assert m.tolist() == pytest.approx(want, rel=1e-5)
    assert ofd_margin(bn.weight.detach().half(), bn.bias.detach().half()).dtype == torch.float32


def test_loss_by_hand_on_a_tiny_example():
    s = torch.tensor([[[[2.0, -3.0]], [[0.0, -1.0]]]])     # (1, 2, 1, 2)
    t = torch.tensor([[[[1.0, -2.0]], [[-5.0, 0.5]]]])
    margin = torch.tensor([-1.0, -0.5])
    # channel 0: target (1, max(-2, -1) = -1): (2 - 1)² = 1; s = -3 <= -1 <= 0 skipped
    # channel 1: target (-0.5, 0.5): s = 0 > -0.5 -> 0.25; target 0.5 > 0 -> (-1 - 0.5)² = 2.25
    assert ofd_loss(s, t, margin).item() == pytest.approx(1.0 + 0.25 + 2.25)


@pytest.mark.parametrize("shape", [(3, 4, 5, 5), (4, 6)])
def test_loss_matches_an_explicit_loop(shape):
    s, t = rand(*shape, seed=1), rand(*shape, seed=2)
    margin = -torch.rand(shape[1], generator=torch.Generator().manual_seed(3))
    got = ofd_loss(s, t, margin).item()
    assert got == pytest.approx(loss_by_loop(s.double().numpy(), t.double().numpy(), margin.double().numpy()),
                                rel=1e-6)


def test_student_below_a_negative_target_costs_nothing_unlike_plain_l2():
    t = -torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(4)) - 0.1       # teacher all negative
    margin = torch.full((3,), -0.5)
    s = torch.minimum(t, margin.view(1, 3, 1, 1)) - 2.0                                 # far below every target
    assert ofd_loss(s, t, margin).item() == 0.0
    assert torch.nn.functional.mse_loss(s, t).item() > 1.0
    assert ofd_loss(-s, t, margin).item() > 0


def test_sum_over_entries_divided_by_batch():
    s, t = rand(2, 3, 4, 4, seed=5), rand(2, 3, 4, 4, seed=6)
    margin = torch.tensor([-0.2, -0.7, -1.0])
    up = torch.nn.functional.interpolate
    assert ofd_loss(up(s, scale_factor=2), up(t, scale_factor=2), margin).item() == pytest.approx(
        4 * ofd_loss(s, t, margin).item(), rel=1e-6)
    assert ofd_loss(torch.cat([s, s]), torch.cat([t, t]), margin).item() == pytest.approx(
        ofd_loss(s, t, margin).item(), rel=1e-6)


def test_teacher_and_margin_are_detached():
    s = rand(2, 3, 2, 2, seed=7).requires_grad_(True)
    t = rand(2, 3, 2, 2, seed=8).requires_grad_(True)
    m = torch.tensor([-0.3, -0.6, -0.9], requires_grad=True)
    ofd_loss(s, t, m).backward()
    assert t.grad is None and m.grad is None and s.grad is not None


def away_from_target(s: torch.Tensor, t: torch.Tensor, margin: torch.Tensor, gap: float = 0.05) -> torch.Tensor:
    target = torch.maximum(t, margin.view(1, -1, *([1] * (t.dim() - 2))))
    near = (s - target).abs() < gap
    return torch.where(near, target + 2 * gap * torch.sign(s - target + 1e-12), s)


@pytest.mark.parametrize("shape", [(2, 3, 3, 3), (3, 5)])
def test_gradcheck_float64(shape):
    t = rand(*shape, seed=9, dtype=torch.float64)
    margin = -torch.rand(shape[1], generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    s = away_from_target(rand(*shape, seed=11, dtype=torch.float64), t, margin).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ofd_loss(a, t, margin), (s,))


def test_half_precision_reduces_in_float32():
    s, t = rand(2, 4, 3, 3, seed=12), rand(2, 4, 3, 3, seed=13)
    margin = torch.tensor([-0.1, -0.4, -0.8, -1.2])
    sb, tb = s.to(torch.bfloat16), t.to(torch.bfloat16)
    out = ofd_loss(sb, tb, margin)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(loss_by_loop(sb.double().numpy(), tb.double().numpy(),
                                                    margin.double().numpy()), rel=1e-5)


M3 = torch.tensor([-0.5, -0.5, -0.5])


@pytest.mark.parametrize("fn, args, error, match", [
    (ofd_loss, (rand(2, 3, 4, 4), rand(2, 3, 2, 2), M3), ValueError,
     r"student_feature and teacher_feature must have the same shape, got \(2, 3, 4, 4\) and \(2, 3, 2, 2\)"),
    (ofd_loss, (rand(3, 4, 4), rand(3, 4, 4), M3), ValueError,
     r"student_feature must have shape \(B, C, H, W\) or \(B, C\)"),
    (ofd_loss, (rand(2, 3, 4, 4), rand(2, 3, 4, 4), torch.zeros(4)), ValueError,
     r"margin must have shape \(C,\) = \(3,\) for features of shape \(2, 3, 4, 4\), got shape \(4,\)"),
    (ofd_loss, (rand(2, 3), rand(2, 3), torch.zeros(1, 3)), ValueError, r"margin must have shape \(C,\)"),
    (ofd_loss, (rand(2, 3), rand(2, 3), torch.tensor([0.0, float("nan"), 0.0])), ValueError,
     "margin must hold finite values"),
    (ofd_loss, (torch.ones(2, 3, dtype=torch.long), rand(2, 3), M3), TypeError,
     "student_feature must be a floating-point"),
    (ofd_margin, (torch.ones(3), torch.ones(4)), ValueError,
     r"bn_weight and bn_bias must have the same shape, got \(3,\) and \(4,\)"),
    (ofd_margin, (torch.ones(2, 3), torch.ones(2, 3)), ValueError, r"bn_weight must have shape \(C,\)"),
    (ofd_margin, (torch.ones(3), torch.tensor([0.0, float("inf"), 0.0])), ValueError,
     "bn_bias must hold finite values"),
    (ofd_margin, ([1.0, 2.0], torch.ones(2)), TypeError, r"bn_weight must be a torch.Tensor of shape \(C,\)"),
])
def test_bad_inputs_name_the_argument(fn, args, error, match):
    with pytest.raises(error, match=match):
        fn(*args)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_values_and_gradients_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    s, t = rand(4, 8, 4, 4, seed=14), rand(4, 8, 4, 4, seed=15)
    gamma, beta = rand(8, seed=16, scale=1.0), rand(8, seed=17, scale=1.0)
    margin = ofd_margin(gamma, beta)
    assert torch.allclose(ofd_margin(gamma.to(dev), beta.to(dev)).cpu(), margin, atol=1e-6)
    s_cpu = s.clone().requires_grad_(True)
    want = ofd_loss(s_cpu, t, margin)
    want.backward()
    sc = s.to(dev).requires_grad_(True)
    got = ofd_loss(sc, t.to(dev), margin.to(dev))
    assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert torch.allclose(sc.grad.cpu(), s_cpu.grad, atol=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = ofd_loss(s.to(dev).to(torch.bfloat16), t.to(dev), margin.to(dev))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    with pytest.raises(ValueError, match="margin and student_feature must be on the same device"):
        ofd_loss(s.to(dev), t.to(dev), margin)


def test_gradient_is_the_closed_form_and_double_backward_is_refused():
    s = rand(2, 3, 2, 2, seed=18).requires_grad_(True)
    t = rand(2, 3, 2, 2, seed=19)
    m = torch.tensor([-0.3, -0.6, -0.9])
    ofd_loss(s, t, m).backward()
    target = torch.maximum(t, m.view(1, 3, 1, 1))
    a = s.detach()
    want = torch.where((a > target) | (target > 0), 2 * (a - target), torch.zeros_like(a)) / 2
    assert torch.allclose(s.grad, want)
    v = rand(2, 3, seed=20, dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(ofd_loss(v, rand(2, 3, seed=21, dtype=torch.float64), m.double()), v,
                               create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()
