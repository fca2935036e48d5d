"""Tests of kdteach.losses.nst_loss: neuron selectivity transfer (squared MMD between channel distributions).

Golden values are computed independently with numpy and explicit Python loops over the channel pairs of
each sample, never by calling the function under test again.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import NST_KERNELS, nst_kernel, nst_loss, selectivity_vectors

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rows(f: np.ndarray) -> list[np.ndarray]:
    """One sample (C, H, W) -> its C flattened, L2-normalised channel maps."""
    out = []
    for c in range(f.shape[0]):
        v = f[c].reshape(-1).astype(np.float64)
        n = math.sqrt(float(np.dot(v, v)))
        out.append(v / max(n, 1e-12))
    return out


def _k(x, y, kernel, s2):
    if kernel == "linear":
        return float(np.dot(x, y))
    if kernel == "poly":
        return float(np.dot(x, y)) ** 2
    return math.exp(-float(np.sum((x - y) ** 2)) / (2 * s2))


def golden(fs: np.ndarray, ft: np.ndarray, kernel: str, sigma2=None) -> float:
    """Batch mean of MMD² by loops over every channel pair; fs, ft already of one spatial size."""
    per_sample = []
    for b in range(fs.shape[0]):
        s, t = _rows(fs[b]), _rows(ft[b])
        s2 = sigma2
        if kernel == "gaussian" and s2 is None:
            pooled = s + t
            s2 = np.mean([np.sum((x - y) ** 2) for x in pooled for y in pooled])
        tt = np.mean([_k(x, y, kernel, s2) for x in t for y in t])
        ss = np.mean([_k(x, y, kernel, s2) for x in s for y in s])
        st = np.mean([_k(x, y, kernel, s2) for x in s for y in t])
        per_sample.append(tt + ss - 2 * st)
    return float(np.mean(per_sample))


def test_by_hand_on_a_tiny_example():
    # one sample, student channels e1, e2 (orthogonal), teacher channels e1, e1
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 3.0]]]])       # (1, 2, 1, 2)
    t = torch.tensor([[[[2.0, 0.0]], [[5.0, 0.0]]]])
    # poly: K_tt all 1 -> 1; K_ss = I -> 1/2; K_st: row e1 -> 1, 1; row e2 -> 0, 0 -> 1/2; 1 + 1/2 - 1 = 1/2
    assert nst_loss(s, t).item() == pytest.approx(0.5)
    # linear: mean s = (1/2, 1/2), mean t = (1, 0): squared distance 1/4 + 1/4
    assert nst_loss(s, t, kernel="linear").item() == pytest.approx(0.5)
    # gaussian, sigma2 = 1: K_tt = 1; K_ss mean = (2 + 2 e^{-1}) / 4; K_st mean = (2 + 2 e^{-1}) / 4
    want = 1 + (1 + math.exp(-1)) / 2 - (1 + math.exp(-1))
    assert nst_loss(s, t, kernel="gaussian", sigma2=1.0).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("kernel, sigma2", [("poly", None), ("linear", None), ("gaussian", None),
                                            ("gaussian", 0.3)])
def test_golden_loops_over_channel_pairs(kernel, sigma2):
    # different channel counts (5 vs 7) and post-ReLU-like inputs with some negative entries left in
    s, t = rand(3, 5, 4, 3, seed=1), rand(3, 7, 4, 3, seed=2).relu() + 0.1 * rand(3, 7, 4, 3, seed=3)
    want = golden(s.numpy(), t.numpy(), kernel, sigma2)
    got = nst_loss(s, t, kernel=kernel, sigma2=sigma2).item()
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)
    # more channels than positions (9 and 11 channels on 2x2 maps): poly takes its second-moment form
    s, t = rand(2, 9, 2, 2, seed=21), rand(2, 11, 2, 2, seed=22).relu() + 0.05
    got = nst_loss(s, t, kernel=kernel, sigma2=sigma2).item()
    assert got == pytest.approx(golden(s.numpy(), t.numpy(), kernel, sigma2), rel=1e-5, abs=1e-7)


def test_larger_map_is_average_pooled_to_the_smaller():
    s, t = rand(2, 4, 8, 8, seed=4), rand(2, 6, 4, 4, seed=5)
    a = s.double().numpy()
    pooled = a.reshape(2, 4, 4, 2, 4, 2).mean(axis=(3, 5))         # 2x2 average pooling, by hand
    want = golden(pooled, t.double().numpy(), "poly")
    assert nst_loss(s, t).item() == pytest.approx(want, rel=1e-5)
    assert nst_loss(t, s).item() == pytest.approx(golden(t.double().numpy(), pooled, "poly"), rel=1e-5)


def test_zero_for_the_same_distribution_and_invariant_to_channel_order_and_scale():
    t = rand(2, 6, 3, 3, seed=6)
    for kernel in NST_KERNELS:
        assert nst_loss(t, t, kernel=kernel).item() == pytest.approx(0.0, abs=1e-6)
        # a distribution, not a channel-by-channel match: permuted and rescaled channels cost nothing
        perm = t[:, torch.tensor([3, 1, 5, 0, 2, 4])] * torch.arange(1.0, 7.0).view(1, 6, 1, 1)
        assert nst_loss(perm, t, kernel=kernel).item() == pytest.approx(0.0, abs=1e-6)
    other = rand(2, 6, 3, 3, seed=7)
    assert all(nst_loss(other, t, kernel=k).item() > 1e-4 for k in NST_KERNELS)


def test_value_does_not_scale_with_the_map_area():
    # nearest upsampling by 2 keeps every cosine between channel maps: the same value on 4x the positions
    # (no 1/(H·W) factor, unlike at_loss, which this would shrink 4x)
    s, t = rand(2, 3, 4, 4, seed=19), rand(2, 5, 4, 4, seed=20)
    up = torch.nn.functional.interpolate
    for kernel in NST_KERNELS:
        big = nst_loss(up(s, scale_factor=2, mode="nearest"), up(t, scale_factor=2, mode="nearest"), kernel=kernel)
        assert big.item() == pytest.approx(nst_loss(s, t, kernel=kernel).item(), rel=1e-5)


@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (2, 9, 2, 2)])      # poly's kernel form, its moment form
def test_an_all_zero_channel_counts_as_a_zero_vector_with_finite_gradients(shape):
    s, t = rand(*shape, seed=24), rand(*shape, seed=25)
    s[:, 1] = 0.0                                  # a dead neuron, common after ReLU
    for kernel in NST_KERNELS:
        leaf = s.clone().requires_grad_(True)
        out = nst_loss(leaf, t, kernel=kernel)
        assert out.item() == pytest.approx(golden(s.numpy(), t.numpy(), kernel), rel=1e-5)
        out.backward()
        assert torch.isfinite(leaf.grad).all()


def test_building_blocks():
    f = rand(2, 3, 2, 2, seed=8)
    v = selectivity_vectors(f)
    assert v.shape == (2, 3, 4) and torch.allclose(v.norm(dim=2), torch.ones(2, 3))
    a, b = rand(2, 3, 5, seed=9), rand(2, 4, 5, seed=10)
    assert torch.allclose(nst_kernel(a, b, "poly"), torch.einsum("bid,bjd->bij", a, b) ** 2, atol=1e-6)
    d2 = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    s2 = torch.tensor([0.5, 2.0])
    assert torch.allclose(nst_kernel(a, b, "gaussian", s2), torch.exp(-d2 / (2 * s2.view(2, 1, 1))), atol=1e-6)


def test_teacher_is_detached_and_all_kernels_give_student_gradients():
    for kernel in NST_KERNELS:
        s = rand(2, 3, 3, 3, seed=11).requires_grad_(True)
        t = rand(2, 4, 3, 3, seed=12).requires_grad_(True)
        nst_loss(s, t, kernel=kernel).backward()
        assert t.grad is None and s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


@pytest.mark.parametrize("kernel, sigma2", [("poly", None), ("linear", None), ("gaussian", 0.7)])
def test_gradcheck_float64(kernel, sigma2):
    s = rand(2, 3, 3, 2, seed=13, dtype=torch.float64).requires_grad_(True)
    t = rand(2, 4, 3, 2, seed=14, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: nst_loss(a, t, kernel=kernel, sigma2=sigma2), (s,))
    wide = rand(2, 7, 2, 2, seed=23, dtype=torch.float64).requires_grad_(True)     # C > H·W: poly's moment form
    assert torch.autograd.gradcheck(lambda a: nst_loss(a, t, kernel=kernel, sigma2=sigma2), (wide,))


def test_half_precision_reduces_in_float32():
    s, t = rand(2, 4, 3, 3, seed=15), rand(2, 5, 3, 3, seed=16)
    out = nst_loss(s.to(torch.bfloat16), t.to(torch.bfloat16))
    assert out.dtype == torch.float32
    want = golden(s.to(torch.bfloat16).double().numpy(), t.to(torch.bfloat16).double().numpy(), "poly")
    assert out.item() == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((rand(2, 3, 16), rand(2, 3, 4, 4)), {}, ValueError,
     r"student_feature must have shape \(B, C, H, W\) \(4 dimensions\), got shape \(2, 3, 16\)"),
    ((rand(2, 3, 4, 4), rand(2, 3)), {}, ValueError, r"teacher_feature must have shape .* got shape \(2, 3\)"),
    ((rand(2, 3, 4, 4), rand(3, 3, 4, 4)), {}, ValueError,
     r"student_feature and teacher_feature must have the same batch size, got shapes \(2, 3, 4, 4\) and "
     r"\(3, 3, 4, 4\)"),
    ((torch.ones(2, 3, 4, 4, dtype=torch.long), rand(2, 3, 4, 4)), {}, TypeError,
     "student_feature must be a floating-point tensor"),
    ((rand(2, 3, 4, 4), rand(2, 3, 4, 4)), {"kernel": "rbf"}, ValueError,
     r"kernel must be one of \('linear', 'poly', 'gaussian'\), got 'rbf'"),
    ((rand(2, 3, 4, 4), rand(2, 3, 4, 4)), {"kernel": "gaussian", "sigma2": -1.0}, ValueError,
     "sigma2 must be a finite number > 0, got -1.0"),
    ((rand(2, 3, 4, 4), rand(2, 3, 4, 4)), {"sigma2": 1.0}, ValueError,
     "sigma2 is the bandwidth of kernel='gaussian' only"),
])
def test_bad_inputs_name_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        nst_loss(*args, **kwargs)


def test_kernel_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"a and b must have the same vector length D, got shapes \(1, 2, 3\)"):
        nst_kernel(rand(1, 2, 3), rand(1, 2, 4))
    with pytest.raises(ValueError, match=r"b must have shape \(B, Nb, D\)"):
        nst_kernel(rand(1, 2, 3), rand(2, 3))


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("s_shape, t_shape", [((4, 8, 4, 4), (4, 16, 8, 8)),    # poly's moment form (C > H·W)
                                              ((4, 4, 8, 8), (4, 6, 8, 8))])    # poly's kernel form
def test_cuda_matches_cpu_values_and_gradients_and_runs_under_bf16_autocast(s_shape, t_shape):
    dev = torch.device("cuda")
    s, t = rand(*s_shape, seed=17), rand(*t_shape, seed=18)
    for kernel in NST_KERNELS:
        cpu = s.clone().requires_grad_(True)
        want = nst_loss(cpu, t, kernel=kernel)
        want.backward()
        sc = s.to(dev).requires_grad_(True)
        got = nst_loss(sc, t.to(dev), kernel=kernel)
        assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6)
        got.backward()
        assert sc.grad.device.type == "cuda" and torch.allclose(sc.grad.cpu(), cpu.grad, rtol=1e-3, atol=1e-6)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = nst_loss(s.to(dev).to(torch.bfloat16), t.to(dev), kernel=kernel)
        assert low.dtype == torch.float32 and torch.isfinite(low)
    with pytest.raises(ValueError, match="student_feature and teacher_feature must be on the same device"):
        nst_loss(s.to(dev), t)
