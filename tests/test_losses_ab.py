"""Tests of kdteach.losses.ab_loss: AB's squared-hinge activation-boundary loss (benchmark reduction).

Golden values are computed independently: with numpy in float64 from the indicator form the CRD
benchmark and the authors' code write, (s + m)²·1(s > −m ∧ t ≤ 0) + (s − m)²·1(s ≤ m ∧ t > 0), and with
an explicit Python loop over the entries, never by calling the function under test again. The loss is
continuously differentiable in the student's input but its second derivative jumps at s = ±m, so the
float64 gradcheck draws inputs at least 0.05 away from ±m (finite differences straddling a kink of
the derivative would be compared against a one-sided derivative).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdteach.losses import ab_loss, fitnet_loss

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32, scale=1.5):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def golden(s: np.ndarray, t: np.ndarray, m: float) -> float:
    """The benchmark's indicator form in numpy, summed and divided by the batch size."""
    ell = (s + m) ** 2 * ((s > -m) & (t <= 0)) + (s - m) ** 2 * ((s <= m) & (t > 0))
    return float(ell.sum() / s.shape[0])


def test_by_hand_on_a_tiny_example():
    s = torch.tensor([[0.5, -2.0, 0.5, 3.0]])        # (1, 4)
    t = torch.tensor([[-1.0, -1.0, 2.0, 2.0]])       # inactive, inactive, active, active
    # inactive & s=0.5 > -1: (0.5 + 1)² = 2.25; inactive & s=-2 <= -1: 0;
    # active & s=0.5 <= 1: (0.5 - 1)² = 0.25; active & s=3 > 1: 0  -> 2.5 for one example
    assert ab_loss(s, t).item() == pytest.approx(2.5)
    assert ab_loss(s, t, margin=2.0).item() == pytest.approx(2.5 ** 2 + 0.0 + 1.5 ** 2 + 0.0)


@pytest.mark.parametrize("margin", [1.0, 0.3, 2.5])
def test_golden_numpy_and_loop(margin):
    s, t = rand(3, 5, 4, 4, seed=1), rand(3, 5, 4, 4, seed=2)
    a, b = s.double().numpy(), t.double().numpy()
    total = 0.0
    for i in range(3):
        for c in range(5):
            for h in range(4):
                for w in range(4):
                    x, y = float(a[i, c, h, w]), float(b[i, c, h, w])
                    if y > 0:
                        total += (x - margin) ** 2 if x <= margin else 0.0
                    else:
                        total += (x + margin) ** 2 if x > -margin else 0.0
    got = ab_loss(s, t, margin=margin).item()
    assert got == pytest.approx(golden(a, b, margin), rel=1e-6)
    assert got == pytest.approx(total / 3, rel=1e-6)


def test_teacher_zero_counts_as_inactive_and_vectors_work():
    s = torch.zeros(2, 3)
    t = torch.tensor([[0.0, 1.0, -1.0], [0.0, 0.0, 5.0]])
    # s = 0 is inside the margin on both sides: each entry costs m² = 1 whatever the teacher's side
    assert ab_loss(s, t).item() == pytest.approx(6 / 2)
    v, u = rand(6, 10, seed=3), rand(6, 10, seed=4)
    assert ab_loss(v, u).item() == pytest.approx(golden(v.double().numpy(), u.double().numpy(), 1.0), rel=1e-6)


def test_zero_beyond_the_margin_whatever_the_magnitude_unlike_plain_l2():
    t = rand(2, 4, 3, 3, seed=5)
    sign = torch.where(t > 0, 1.0, -1.0)
    s = sign * (1.0 + 7.0 * torch.rand(t.shape, generator=torch.Generator().manual_seed(6)))   # |s| >= m, t's side
    assert ab_loss(s, t).item() == 0.0
    assert fitnet_loss(s, t).item() > 1.0                          # the plain L2 still wants the magnitudes
    assert ab_loss(-s, t).item() > 0                               # every boundary on the wrong side


def test_is_a_sum_over_entries_per_example():
    # the same per-entry values on a map with 4x the positions give 4x the value; B does not change it
    s, t = rand(2, 3, 4, 4, seed=7), rand(2, 3, 4, 4, seed=8)
    up = torch.nn.functional.interpolate
    assert ab_loss(up(s, scale_factor=2), up(t, scale_factor=2)).item() == pytest.approx(4 * ab_loss(s, t).item(),
                                                                                          rel=1e-6)
    assert ab_loss(torch.cat([s, s]), torch.cat([t, t])).item() == pytest.approx(ab_loss(s, t).item(), rel=1e-6)


def test_teacher_is_detached_and_gradient_is_the_closed_form():
    s = rand(2, 3, 2, 2, seed=9).requires_grad_(True)
    t = rand(2, 3, 2, 2, seed=10).requires_grad_(True)
    ab_loss(s, t).backward()
    assert t.grad is None
    a, b = s.detach(), t.detach()
    want = torch.where(b > 0, -2 * torch.relu(1 - a), 2 * torch.relu(a + 1)) / 2
    assert torch.allclose(s.grad, want)


def test_double_backward_is_refused_rather_than_wrong():
    s = rand(2, 3, seed=19, dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(ab_loss(s, rand(2, 3, seed=20, dtype=torch.float64)), s, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()


def away_from_margin(x: torch.Tensor, margin: float, gap: float = 0.05) -> torch.Tensor:
    """Move entries within ``gap`` of ±margin out of that band (the derivative's kinks)."""
    for edge in (margin, -margin):
        near = (x - edge).abs() < gap
        x = torch.where(near, edge + gap * 2 * torch.sign(x - edge + 1e-12), x)
    return x


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_gradcheck_float64_away_from_the_kinks(margin):
    s = away_from_margin(rand(2, 3, 3, 3, seed=11, dtype=torch.float64), margin)
    assert ((s.abs() - margin).abs() >= 0.05).all()
    t = rand(2, 3, 3, 3, seed=12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ab_loss(a, t, margin), (s.requires_grad_(True),))
    v = away_from_margin(rand(3, 7, seed=13, dtype=torch.float64), margin).requires_grad_(True)
    u = rand(3, 7, seed=14, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: ab_loss(a, u, margin), (v,))


def test_half_precision_reduces_in_float32():
    s, t = rand(2, 4, 3, 3, seed=15), rand(2, 4, 3, 3, seed=16)
    sb, tb = s.to(torch.bfloat16), t.to(torch.bfloat16)
    out = ab_loss(sb, tb)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(golden(sb.double().numpy(), tb.double().numpy(), 1.0), rel=1e-5)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((rand(2, 3, 4, 4), rand(2, 3, 2, 2)), {}, ValueError,
     r"student_feature and teacher_feature must have the same shape, got \(2, 3, 4, 4\) and \(2, 3, 2, 2\)"),
    ((rand(3, 4, 4), rand(3, 4, 4)), {}, ValueError, r"student_feature must have shape \(B, C, H, W\) or \(B, D\)"),
    ((rand(2, 3, 4, 4), rand(2, 3, 4)), {}, ValueError, r"teacher_feature must have shape .* got shape \(2, 3, 4\)"),
    ((torch.ones(2, 3, dtype=torch.long), rand(2, 3)), {}, TypeError, "student_feature must be a floating-point"),
    ((torch.empty(0, 3), torch.empty(0, 3)), {}, ValueError, "student_feature must not be empty"),
    ((rand(2, 3), rand(2, 3)), {"margin": 0.0}, ValueError, "margin must be a finite number > 0, got 0.0"),
    ((rand(2, 3), rand(2, 3)), {"margin": -1.0}, ValueError, "margin must be a finite number > 0"),
    ((rand(2, 3), rand(2, 3)), {"margin": "1"}, TypeError, "margin must be a positive number, got str"),
])
def test_bad_inputs_name_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ab_loss(*args, **kwargs)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_values_and_gradients_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    s, t = rand(4, 8, 4, 4, seed=17), rand(4, 8, 4, 4, seed=18)
    s_cpu = s.clone().requires_grad_(True)
    want = ab_loss(s_cpu, t)
    want.backward()
    sc = s.to(dev).requires_grad_(True)
    got = ab_loss(sc, t.to(dev), margin=1.0)
    assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert sc.grad.device.type == "cuda" and torch.allclose(sc.grad.cpu(), s_cpu.grad, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = ab_loss(s.to(dev).to(torch.bfloat16), t.to(dev))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    with pytest.raises(ValueError, match="student_feature and teacher_feature must be on the same device"):
        ab_loss(s.to(dev), t)
