"""Tests of kdteach.losses.hcl_loss and hcl_level_weights: ReviewKD's hierarchical context loss.

Golden values are computed independently of the functions under test: numpy float64, the adaptive
average pooling written out as explicit bins (start floor(i·H/l), end ceil((i+1)·H/l), PyTorch's
rule), the level weights written out by hand per map height from mdistiller's rule (1, then halving
over the used levels l < H, divided by their sum).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import HCL_LEVELS, hcl_level_weights, hcl_loss

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def pool_np(x: np.ndarray, grid: int) -> np.ndarray:
    b, c, h, w = x.shape
    out = np.zeros((b, c, grid, grid))
    for i in range(grid):
        h0, h1 = (i * h) // grid, math.ceil((i + 1) * h / grid)
        for j in range(grid):
            w0, w1 = (j * w) // grid, math.ceil((j + 1) * w / grid)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


#: height -> [(grid, raw weight)] by hand
BY_HAND = {1: [(1, 1.0)], 2: [(2, 1.0), (1, 0.5)], 4: [(4, 1.0), (2, 0.5), (1, 0.25)],
           8: [(8, 1.0), (4, 0.5), (2, 0.25), (1, 0.125)], 5: [(5, 1.0), (4, 0.5), (2, 0.25), (1, 0.125)]}


def hcl_np(students, teachers) -> float:
    total = 0.0
    for s, t in zip(students, teachers):
        s, t = s.double().numpy(), t.double().numpy()
        num = den = 0.0
        for grid, w in BY_HAND[s.shape[2]]:
            ps, pt = (s, t) if grid == s.shape[2] else (pool_np(s, grid), pool_np(t, grid))
            num += w * float(((ps - pt) ** 2).mean())
            den += w
        total += num / den
    return total


def test_levels_and_weights_by_hand():
    assert HCL_LEVELS == (4, 2, 1)
    for h, raw in BY_HAND.items():
        total = sum(w for _, w in raw)
        got = hcl_level_weights(h)
        assert [g for g, _ in got] == [g for g, _ in raw]
        assert [w for _, w in got] == pytest.approx([w / total for _, w in raw])
    assert hcl_level_weights(4)[0][1] == pytest.approx(1 / 1.75)
    with pytest.raises(ValueError, match="height must be an integer >= 1, got 0"):
        hcl_level_weights(0)


def test_one_by_one_map_is_its_plain_mse():
    s, t = rand(3, 5, 1, 1, seed=1), rand(3, 5, 1, 1, seed=2)
    assert hcl_loss([s], [t]).item() == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-6)


@pytest.mark.parametrize("shapes", [[(2, 3, 8, 8), (2, 5, 4, 4), (2, 7, 1, 1)],
                                    [(3, 2, 5, 5)], [(2, 4, 2, 2), (2, 6, 8, 8)], [(2, 3, 5, 7)]])
def test_matches_the_numpy_pyramid(shapes):
    s = [rand(*sh, seed=10 + i) for i, sh in enumerate(shapes)]
    t = [rand(*sh, seed=20 + i) for i, sh in enumerate(shapes)]
    assert hcl_loss(s, t).item() == pytest.approx(hcl_np(s, t), rel=1e-5)


def test_only_context_errors_are_still_seen_by_the_pooled_levels():
    # a shift by a constant the full MSE sees, a zero-mean perturbation only the full level sees
    t = rand(2, 3, 4, 4, seed=3)
    noise = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 2).expand(2, 3, 4, 4)
    plain = hcl_loss([t + 0.5 * noise], [t]).item()
    assert plain == pytest.approx(0.25 / 1.75, rel=1e-5)             # pooled levels see no error
    shifted = hcl_loss([t + 0.5], [t]).item()
    assert shifted == pytest.approx(0.25, rel=1e-5)                  # every level sees 0.25


def test_teacher_is_detached_and_sum_over_pairs():
    s = rand(2, 3, 4, 4, seed=4).requires_grad_(True)
    t = rand(2, 3, 4, 4, seed=5).requires_grad_(True)
    both = hcl_loss([s, s], [t, t])
    assert both.item() == pytest.approx(2 * hcl_loss([s], [t]).item(), rel=1e-6)
    both.backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 2, 8, 8), (1, 2, 3, 3)])
def test_gradcheck_float64(shape):
    s = rand(*shape, seed=6, dtype=torch.float64).requires_grad_(True)
    t = rand(*shape, seed=7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: hcl_loss([a], [t]), (s,))


def test_half_precision_reduces_in_float32():
    s, t = rand(2, 3, 4, 4, seed=8).to(torch.bfloat16), rand(2, 3, 4, 4, seed=9).to(torch.bfloat16)
    out = hcl_loss([s], [t])
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(hcl_np([s.float()], [t.float()]), rel=1e-5)


@pytest.mark.parametrize("args, error, match", [
    (([rand(2, 3, 4, 4)], [rand(2, 3, 2, 2)]), ValueError,
     r"student_features\[0\] and teacher_features\[0\] must have the same shape, got \(2, 3, 4, 4\) and \(2, 3, 2, 2\)"),
    (([rand(2, 3, 4, 4)], [rand(2, 3, 4, 4), rand(2, 3, 4, 4)]), ValueError,
     "student_features and teacher_features must have the same length, got 1 and 2 maps"),
    (([rand(2, 3, 4)], [rand(2, 3, 4)]), ValueError,
     r"student_features\[0\] must have shape \(B, C, H, W\) \(4 dimensions\), got shape \(2, 3, 4\)"),
    ((rand(2, 3, 4, 4), [rand(2, 3, 4, 4)]), TypeError, "student_features must be a list or tuple of tensors"),
    (([], []), ValueError, "student_features must contain at least one tensor"),
    (([rand(2, 3, 4, 4)], [torch.ones(2, 3, 4, 4, dtype=torch.long)]), TypeError,
     r"teacher_features\[0\] must be a floating-point tensor"),
])
def test_bad_inputs_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        hcl_loss(*args)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_values_and_gradients_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    s, t = rand(4, 8, 8, 8, seed=14), rand(4, 8, 8, 8, seed=15)
    s_cpu = s.clone().requires_grad_(True)
    want = hcl_loss([s_cpu], [t])
    want.backward()
    sc = s.to(dev).requires_grad_(True)
    got = hcl_loss([sc], [t.to(dev)])
    assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert torch.allclose(sc.grad.cpu(), s_cpu.grad, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = hcl_loss([s.to(dev).to(torch.bfloat16)], [t.to(dev)])
    assert out.dtype == torch.float32 and torch.isfinite(out)
    with pytest.raises(ValueError, match="must be on the same device"):
        hcl_loss([s.to(dev)], [t])
