"""Tests of kdteach.losses.fitnet_loss: the FitNets hint loss in the CRD benchmark's reduction.

Golden values are computed independently: with numpy in float64 and with an explicit Python loop over
the entries, and against the paper's per-example form ½‖u_h − r‖² through the constant factor C·H·W/2,
never by calling the function under test again.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdteach.losses import fitnet_loss

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_by_hand_on_a_tiny_example():
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])          # (1, 1, 2, 2)
    t = torch.tensor([[[[0.0, 2.0], [5.0, 1.0]]]])
    # differences 1, 0, -2, 3 -> squares 1, 0, 4, 9 -> mean 14 / 4
    assert fitnet_loss(s, t).item() == pytest.approx(3.5)


def test_golden_numpy_and_loop():
    s, t = rand(3, 5, 4, 4, seed=1), rand(3, 5, 4, 4, seed=2)
    a, b = s.double().numpy(), t.double().numpy()
    golden = float(np.mean((a - b) ** 2))
    total, count = 0.0, 0
    for i in range(3):
        for c in range(5):
            for h in range(4):
                for w in range(4):
                    total += (float(a[i, c, h, w]) - float(b[i, c, h, w])) ** 2
                    count += 1
    got = fitnet_loss(s, t).item()
    assert got == pytest.approx(golden, rel=1e-6)
    assert got == pytest.approx(total / count, rel=1e-6)


def test_paper_form_differs_by_the_constant_chw_over_two():
    s, t = rand(4, 3, 2, 5, seed=3, dtype=torch.float64), rand(4, 3, 2, 5, seed=4, dtype=torch.float64)
    a, b = s.numpy(), t.numpy()
    paper = np.mean([0.5 * np.sum((a[i] - b[i]) ** 2) for i in range(4)])   # ½‖u_h − r‖² per example, SGD mean
    assert fitnet_loss(s, t).item() * (3 * 2 * 5) / 2 == pytest.approx(float(paper), rel=1e-12)


def test_vectors_zero_and_symmetry():
    s, t = rand(6, 10, seed=5), rand(6, 10, seed=6)
    assert fitnet_loss(s, t).item() == pytest.approx(float(np.mean((s.numpy() - t.numpy()) ** 2)), rel=1e-6)
    assert fitnet_loss(t, t).item() == 0.0
    assert fitnet_loss(s, t).item() == pytest.approx(fitnet_loss(t, s).item(), rel=1e-6)


def test_mean_does_not_scale_with_the_map_area():
    # the same per-entry mismatch on a map with 4x the positions gives the same value (no area factor)
    s, t = rand(2, 3, 4, 4, seed=7), rand(2, 3, 4, 4, seed=8)
    up = torch.nn.functional.interpolate
    big_s, big_t = up(s, scale_factor=2, mode="nearest"), up(t, scale_factor=2, mode="nearest")
    assert fitnet_loss(big_s, big_t).item() == pytest.approx(fitnet_loss(s, t).item(), rel=1e-6)


def test_teacher_is_detached_and_gradient_is_the_closed_form():
    s = rand(2, 3, 2, 2, seed=9).requires_grad_(True)
    t = rand(2, 3, 2, 2, seed=10).requires_grad_(True)
    fitnet_loss(s, t).backward()
    assert t.grad is None
    assert torch.allclose(s.grad, 2 * (s - t).detach() / s.numel())


def test_gradcheck_float64():
    s = rand(2, 3, 3, 3, seed=11, dtype=torch.float64).requires_grad_(True)
    t = rand(2, 3, 3, 3, seed=12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: fitnet_loss(a, t), (s,))
    v = rand(3, 7, seed=13, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: fitnet_loss(a, torch.zeros(3, 7, dtype=torch.float64)), (v,))


def test_half_precision_reduces_in_float32():
    s, t = rand(2, 4, 3, 3, seed=14), rand(2, 4, 3, 3, seed=15)
    out = fitnet_loss(s.to(torch.bfloat16), t.to(torch.bfloat16))
    assert out.dtype == torch.float32
    ref = float(np.mean((s.to(torch.bfloat16).double().numpy() - t.to(torch.bfloat16).double().numpy()) ** 2))
    assert out.item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("args, error, match", [
    ((rand(2, 3, 4, 4), rand(2, 3, 2, 2)), ValueError,
     r"student_hint and teacher_hint must have the same shape, got \(2, 3, 4, 4\) and \(2, 3, 2, 2\)"),
    ((rand(2, 3, 4, 4), rand(2, 5, 4, 4)), ValueError, "must have the same shape"),
    ((rand(3, 4, 4), rand(3, 4, 4)), ValueError, r"student_hint must have shape \(B, C, H, W\) or \(B, D\)"),
    ((rand(2, 3, 4, 4), rand(2, 3, 4)), ValueError, r"teacher_hint must have shape .* got shape \(2, 3, 4\)"),
    ((torch.ones(2, 3, dtype=torch.long), rand(2, 3)), TypeError, "student_hint must be a floating-point tensor"),
    (([[1.0, 2.0]], rand(1, 2)), TypeError, "student_hint must be a torch.Tensor"),
    ((torch.empty(0, 3), torch.empty(0, 3)), ValueError, "student_hint must not be empty"),
])
def test_bad_inputs_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        fitnet_loss(*args)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    s, t = rand(4, 8, 4, 4, seed=16), rand(4, 8, 4, 4, seed=17)
    want = fitnet_loss(s, t).item()
    sc = s.to(dev).requires_grad_(True)
    got = fitnet_loss(sc, t.to(dev))
    assert got.device.type == "cuda" and got.item() == pytest.approx(want, rel=1e-5)
    got.backward()
    assert sc.grad is not None and sc.grad.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = fitnet_loss(s.to(dev).to(torch.bfloat16), t.to(dev))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    with pytest.raises(ValueError, match="same device"):
        fitnet_loss(s.to(dev), t)
