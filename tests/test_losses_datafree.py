"""DAFL's generator losses: golden values computed independently (NumPy), float64 gradcheck, bad input,
the extremes each loss is built around, and CUDA (bf16 autocast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

Z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 0.0], [-2.0, 4.0, 0.5]])


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_golden_values():
    p = _softmax(Z)
    onehot = -np.mean(np.log(p[np.arange(4), Z.argmax(1)]))
    p_mean = p.mean(0)
    entropy = float(np.sum(p_mean * np.log10(p_mean)))
    z = torch.tensor(Z, dtype=torch.float64)
    assert dafl_onehot_loss(z).item() == pytest.approx(onehot, rel=1e-12)
    assert dafl_entropy_loss(z).item() == pytest.approx(entropy, rel=1e-12)
    f = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) - 10.0
    assert dafl_activation_loss(torch.tensor(f)).item() == pytest.approx(-np.abs(f).mean(), rel=1e-12)
    assert dafl_activation_loss(torch.tensor(Z)).item() == pytest.approx(-np.abs(Z).mean(), rel=1e-12)


def test_extremes():
    k = 5
    balanced = torch.eye(k, dtype=torch.float64) * 50.0         # one confident image per class
    assert dafl_entropy_loss(balanced).item() == pytest.approx(-math.log10(k), abs=1e-9)   # the minimum
    assert dafl_onehot_loss(balanced).item() == pytest.approx(0.0, abs=1e-9)               # confident
    collapsed = balanced[[0, 0, 0, 0, 0]]                                                   # one class only
    assert dafl_entropy_loss(collapsed).item() == pytest.approx(0.0, abs=1e-9)              # the maximum
    unsure = torch.zeros(3, k, dtype=torch.float64)
    assert dafl_onehot_loss(unsure).item() == pytest.approx(math.log(k))
    assert dafl_activation_loss(torch.zeros(2, 4)).item() == 0.0


def test_gradients_flow_through_the_teacher_outputs_float64():
    torch.manual_seed(0)
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dafl_onehot_loss, (z,))
    assert torch.autograd.gradcheck(dafl_entropy_loss, (z,))
    f = (torch.randn(3, 2, 2, 2, dtype=torch.float64) + 0.1).requires_grad_()   # away from |f|'s kink at 0
    assert torch.autograd.gradcheck(dafl_activation_loss, (f,))
    # nothing is detached: the generator trains through these
    for loss in (dafl_onehot_loss, dafl_entropy_loss):
        g, = torch.autograd.grad(loss(z), z)
        assert g.abs().sum() > 0


def test_half_precision_reduces_in_float32():
    z = torch.tensor(Z, dtype=torch.bfloat16)
    for loss in (dafl_onehot_loss, dafl_entropy_loss, dafl_activation_loss):
        out = loss(z)
        assert out.dtype == torch.float32
        assert out.item() == pytest.approx(loss(z.float()).item(), rel=1e-6)


@pytest.mark.parametrize("loss", [dafl_onehot_loss, dafl_entropy_loss])
@pytest.mark.parametrize("bad, error, match", [
    (torch.zeros(4), ValueError, r"teacher_logits must have shape \(B, K\)"),
    (torch.zeros(2, 3, 4), ValueError, r"teacher_logits must have shape \(B, K\)"),
    (torch.zeros(4, 1), ValueError, "K >= 2 classes"),
    (torch.zeros(4, 3, dtype=torch.int64), TypeError, "floating-point"),
    ([[1.0, 2.0]], TypeError, "must be a torch.Tensor"),
    (torch.zeros(0, 3), ValueError, "must not be empty"),
])
def test_logit_losses_bad_input(loss, bad, error, match):
    with pytest.raises(error, match=match):
        loss(bad)


@pytest.mark.parametrize("bad, error, match", [
    (torch.zeros(4), ValueError, r"features must have shape \(B, D\) or \(B, C, H, W\)"),
    (torch.zeros(2, 3, 4), ValueError, "features must have shape"),
    (torch.zeros(2, 3, dtype=torch.int32), TypeError, "floating-point"),
    (np.zeros((2, 3)), TypeError, "must be a torch.Tensor"),
])
def test_activation_loss_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        dafl_activation_loss(bad)


@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_under_bf16_autocast():
    z = torch.tensor(Z, dtype=torch.float32)
    f = torch.randn(4, 8)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        for loss, x in ((dafl_onehot_loss, z), (dafl_entropy_loss, z), (dafl_activation_loss, f)):
            out = loss(x.cuda())
            assert out.dtype == torch.float32 and out.item() == pytest.approx(loss(x).item(), rel=1e-5)
