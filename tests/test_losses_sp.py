"""Tests of kdteach.losses.sp_loss / sp_similarity: SP's row-normalised batch similarity matrices.

Golden values are computed independently in numpy float64 with explicit loops over the image pairs
(inner products, row norms, squared differences), never by calling the function under test again.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdteach.losses import sp_loss, sp_similarity

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def golden_g(f: np.ndarray) -> np.ndarray:
    b = f.shape[0]
    q = f.reshape(b, -1)
    g = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            g[i, j] = sum(float(x) * float(y) for x, y in zip(q[i], q[j]))
        g[i] /= max(np.sqrt(sum(v * v for v in g[i])), 1e-12)
    return g


def golden(fs: np.ndarray, ft: np.ndarray) -> float:
    gs, gt = golden_g(fs), golden_g(ft)
    b = fs.shape[0]
    return sum((gt[i, j] - gs[i, j]) ** 2 for i in range(b) for j in range(b)) / b ** 2


def test_by_hand_on_a_tiny_example():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])     # orthogonal: Q·Qᵀ = I, rows already unit
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])     # identical: Q·Qᵀ = all ones, rows (1, 1)/√2
    assert torch.allclose(sp_similarity(s), torch.eye(2))
    assert torch.allclose(sp_similarity(t), torch.full((2, 2), 2 ** -0.5))
    # four entries: two of (1/√2 − 1)², two of (1/√2)², mean over B² = 4
    want = (2 * (2 ** -0.5 - 1) ** 2 + 2 * 0.5) / 4
    assert sp_loss(s, t).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("shapes", [((5, 3, 4, 4), (5, 6, 2, 2)), ((4, 7), (4, 2, 3, 3)), ((3, 10), (3, 4))])
def test_golden_numpy_loops_any_widths(shapes):
    s, t = rand(*shapes[0], seed=1), rand(*shapes[1], seed=2)
    got = sp_loss(s, t).item()
    assert got == pytest.approx(golden(s.double().numpy(), t.double().numpy()), rel=1e-5)
    assert np.allclose(sp_similarity(s).double().numpy(), golden_g(s.double().numpy()), atol=1e-5)


def test_post_relu_features_and_invariances():
    s, t = rand(6, 4, 3, 3, seed=3).relu(), rand(6, 8, 3, 3, seed=4).relu()
    base = sp_loss(s, t).item()
    assert base == pytest.approx(golden(s.double().numpy(), t.double().numpy()), rel=1e-5)
    assert sp_loss(7.0 * s, 0.1 * t).item() == pytest.approx(base, rel=1e-5)          # scale-free
    assert sp_loss(s, t).item() == pytest.approx(sp_loss(s[:, torch.randperm(4)], t).item(), rel=1e-5)  # channels
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert sp_loss(s[perm], t[perm]).item() == pytest.approx(base, rel=1e-5)          # same images reordered
    assert sp_loss(t, t).item() == 0.0


def test_teacher_is_detached():
    s = rand(4, 5, seed=5).requires_grad_(True)
    t = rand(4, 3, seed=6).requires_grad_(True)
    sp_loss(s, t).backward()
    assert t.grad is None and s.grad is not None and torch.isfinite(s.grad).all()


def test_gradcheck_float64():
    s = rand(4, 3, 2, 2, seed=7, dtype=torch.float64).requires_grad_(True)
    t = rand(4, 5, 2, 2, seed=8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: sp_loss(a, t), (s,))
    v = rand(3, 6, seed=9, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: sp_similarity(a), (v,))


def test_half_precision_reduces_in_float32():
    s, t = rand(4, 3, 2, 2, seed=10).to(torch.bfloat16), rand(4, 6, seed=11).to(torch.bfloat16)
    out = sp_loss(s, t)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(golden(s.double().numpy(), t.double().numpy()), rel=1e-4)


@pytest.mark.parametrize("args, error, match", [
    ((rand(4, 3, 2, 2), rand(5, 3, 2, 2)), ValueError,
     r"student_feature and teacher_feature must have the same batch size, got shapes \(4, 3, 2, 2\) and \(5, 3, 2, 2\)"),
    ((rand(4, 3, 2), rand(4, 3)), ValueError, r"student_feature must have shape \(B, C, H, W\) or \(B, D\)"),
    ((rand(4, 3), rand(4)), ValueError, r"teacher_feature must have shape \(B, C, H, W\) or \(B, D\).*got shape \(4,\)"),
    ((torch.ones(4, 3, dtype=torch.long), rand(4, 3)), TypeError, "student_feature must be a floating-point"),
    ((torch.empty(0, 3), torch.empty(0, 3)), ValueError, "student_feature must not be empty"),
])
def test_bad_inputs_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        sp_loss(*args)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_values_and_gradients():
    dev = torch.device("cuda")
    s, t = rand(8, 4, 4, 4, seed=12), rand(8, 6, 2, 2, seed=13)
    s_cpu = s.clone().requires_grad_(True)
    want = sp_loss(s_cpu, t)
    want.backward()
    sc = s.to(dev).requires_grad_(True)
    got = sp_loss(sc, t.to(dev))
    assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert torch.allclose(sc.grad.cpu(), s_cpu.grad, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = sp_loss(s.to(dev).to(torch.bfloat16), t.to(dev))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    with pytest.raises(ValueError, match="must be on the same device"):
        sp_loss(s.to(dev), t)
