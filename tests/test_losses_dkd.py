"""Tests of kdteach.losses.decoupled (DKD): dkd_loss, dkd_terms, binary_probs, nontarget_probs.

Golden values are computed independently: with numpy and explicit loops from the paper's
definitions (b = [p_t, 1 - p_t], p-hat over the non-target classes), and with mdistiller's own
formulation (one-hot masks, the target logit minus 1000), never by calling the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdteach.losses import binary_probs, dkd_loss, dkd_terms, kd_loss, nontarget_probs, softened_probs

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def logits(b=6, c=10, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    zs = 2.0 * torch.randn(b, c, generator=g, dtype=dtype)
    zt = 3.0 * torch.randn(b, c, generator=g, dtype=dtype)
    y = torch.randint(0, c, (b,), generator=g)
    return zs, zt, y


# ------------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------------

def np_parts(zs, zt, y, t):
    """Per image (TCKD, NCKD, KD), each times T², from the paper's definitions with plain loops."""
    out = []
    for i in range(zs.shape[0]):
        row = []
        for z in (zt[i], zs[i]):
            e = [math.exp(v / t) for v in z]
            p = [v / sum(e) for v in e]
            pt = p[y[i]]
            hat = [p[j] / (1 - pt) for j in range(len(p)) if j != y[i]]
            row.append((p, [pt, 1 - pt], hat))
        (p_t, b_t, h_t), (p_s, b_s, h_s) = row
        kl = lambda a, b: sum(u * (math.log(u) - math.log(v)) for u, v in zip(a, b))   # noqa: E731
        out.append((t * t * kl(b_t, b_s), t * t * kl(h_t, h_s), t * t * kl(p_t, p_s), b_t[0]))
    return np.array(out)


def mdistiller_reference(zs, zt, y, alpha, beta, t):
    """mdistiller's formulation: masks summed into b, torch.log, and z / T - 1000 at the target."""
    gt = F.one_hot(y, zs.shape[1]).to(zs.dtype)
    ps, pt = F.softmax(zs / t, dim=1), F.softmax(zt / t, dim=1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], dim=1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(bs), bt, reduction="sum") * t * t / zs.shape[0]
    nckd = F.kl_div(F.log_softmax(zs / t - 1000.0 * gt, dim=1), F.softmax(zt / t - 1000.0 * gt, dim=1),
                    reduction="sum") * t * t / zs.shape[0]
    return alpha * tckd + beta * nckd


# ------------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [1.0, 4.0, 10.0])
def test_terms_match_the_papers_definitions(t):
    zs, zt, y = logits(dtype=torch.float64)
    ref = np_parts(zs.numpy(), zt.numpy(), y.numpy(), t)
    tckd, nckd = dkd_terms(zs, zt, y, t, reduction="none")
    np.testing.assert_allclose(tckd.numpy(), ref[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nckd.numpy(), ref[:, 1], rtol=1e-10, atol=1e-12)
    mean_t, mean_n = dkd_terms(zs, zt, y, t)
    assert mean_t.item() == pytest.approx(ref[:, 0].mean(), rel=1e-10)
    assert mean_n.item() == pytest.approx(ref[:, 1].mean(), rel=1e-10)
    got = dkd_loss(zs, zt, y, alpha=0.5, beta=3.0, temperature=t)
    assert got.item() == pytest.approx(0.5 * ref[:, 0].mean() + 3.0 * ref[:, 1].mean(), rel=1e-10)


def test_golden_value_by_hand():
    """A case worked by hand: with C = 3, target 0, z_t = (ln 2, 0, 0), z_s = 0, T = 1:
    b_t = (1/2, 1/2), b_s = (1/3, 2/3), p-hat equal (1/2, 1/2) for both, so NCKD = 0 and
    TCKD = 1/2 ln(3/2) + 1/2 ln(3/4)."""
    zt = torch.tensor([[math.log(2.0), 0.0, 0.0]], dtype=torch.float64)
    zs = torch.zeros(1, 3, dtype=torch.float64)
    y = torch.tensor([0])
    tckd, nckd = dkd_terms(zs, zt, y, 1.0)
    assert tckd.item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75), rel=1e-12)
    assert nckd.item() == pytest.approx(0.0, abs=1e-15)
    assert dkd_loss(zs, zt, y, temperature=1.0).item() == pytest.approx(tckd.item(), rel=1e-12)
    assert dkd_loss(zs, zt, y, temperature=2.0).item() > 0


@pytest.mark.parametrize("t, alpha, beta", [(4.0, 1.0, 8.0), (2.0, 1.0, 2.0), (4.0, 0.5, 6.0), (1.0, 0.0, 1.0)])
def test_reproduces_mdistiller(t, alpha, beta):
    zs, zt, y = logits(b=16, c=100, seed=3)
    want = mdistiller_reference(zs, zt, y, alpha, beta, t)
    assert dkd_loss(zs, zt, y, alpha, beta, t).item() == pytest.approx(want.item(), rel=1e-5)


def test_defaults_are_mdistillers():
    zs, zt, y = logits(seed=5)
    assert dkd_loss(zs, zt, y).item() == pytest.approx(mdistiller_reference(zs, zt, y, 1.0, 8.0, 4.0).item(),
                                                       rel=1e-5)


@pytest.mark.parametrize("t", [1.0, 4.0, 20.0])
def test_identity_kd_equals_tckd_plus_weighted_nckd_per_image(t):
    """The paper's reformulation: KD = TCKD + (1 - p_t^teacher) NCKD, image by image (T² on all)."""
    zs, zt, y = logits(b=8, c=10, seed=1, dtype=torch.float64)
    tckd, nckd = dkd_terms(zs, zt, y, t, reduction="none")
    p_target = softened_probs(zt, t).gather(1, y[:, None])[:, 0]
    for i in range(len(y)):
        kd_i = kd_loss(zs[i:i + 1], zt[i:i + 1], t)
        assert kd_i.item() == pytest.approx((tckd[i] + (1 - p_target[i]) * nckd[i]).item(), rel=1e-10)
    # batch-level: KD is the mean of the per-image sums, and a constant beta cannot give it back
    kd = kd_loss(zs, zt, t)
    assert kd.item() == pytest.approx((tckd + (1 - p_target) * nckd).mean().item(), rel=1e-10)
    assert dkd_loss(zs, zt, y, 1.0, float((1 - p_target).mean()), t).item() != pytest.approx(kd.item(), rel=1e-6)


def test_parts_are_kd_on_decoupled_logits():
    """TCKD is KD on the two logits [z_t, T logsumexp_{j != t} z_j / T]; NCKD is KD on the C - 1 others."""
    zs, zt, y = logits(b=5, c=7, seed=2, dtype=torch.float64)
    t = 3.0
    keep = torch.ones_like(zs, dtype=torch.bool).scatter_(1, y[:, None], False)

    def split(z):
        others = z[keep].view(len(z), -1)
        return torch.cat([z.gather(1, y[:, None]), t * torch.logsumexp(others / t, 1, keepdim=True)], 1), others

    (bs, os_), (bt, ot) = split(zs), split(zt)
    tckd, nckd = dkd_terms(zs, zt, y, t)
    assert tckd.item() == pytest.approx(kd_loss(bs, bt, t).item(), rel=1e-12)
    assert nckd.item() == pytest.approx(kd_loss(os_, ot, t).item(), rel=1e-12)


def test_probabilities():
    zs, zt, y = logits(b=4, c=6, seed=4, dtype=torch.float64)
    t = 2.0
    p = softened_probs(zt, t)
    b = binary_probs(zt, y, t)
    hat = nontarget_probs(zt, y, t)
    pt = p.gather(1, y[:, None])[:, 0]
    assert torch.allclose(b[:, 0], pt) and torch.allclose(b[:, 1], 1 - pt)
    assert torch.all(hat.gather(1, y[:, None]) == 0)
    for i in range(4):
        for j in range(6):
            if j != y[i]:
                assert hat[i, j].item() == pytest.approx((p[i, j] / (1 - pt[i])).item(), rel=1e-12)
    assert torch.allclose(hat.sum(1), torch.ones(4, dtype=torch.float64))
    # a near-certain target: 1 - p_t is tiny but exact (no cancellation), and the loss stays finite
    z = torch.tensor([[60.0, 0.0, 0.0]])
    assert binary_probs(z, torch.tensor([0]))[0, 1].item() == pytest.approx(2 * math.exp(-60.0), rel=1e-4)
    assert torch.isfinite(dkd_loss(torch.tensor([[-200.0, 0.0, 0.0]]), torch.tensor([[200.0, 0.0, 0.0]]),
                                   torch.tensor([0]), temperature=1.0))


def test_zero_for_a_copy_and_nckd_zero_with_two_classes():
    zs, zt, y = logits()
    tckd, nckd = dkd_terms(zt.clone(), zt, y)
    assert tckd.item() == pytest.approx(0.0, abs=1e-6) and nckd.item() == pytest.approx(0.0, abs=1e-6)
    z2s, z2t, y2 = logits(b=5, c=2, seed=6)
    tckd2, nckd2 = dkd_terms(z2s, z2t, y2)
    assert nckd2.item() == pytest.approx(0.0, abs=1e-7)
    assert tckd2.item() == pytest.approx(kd_loss(z2s, z2t).item(), rel=1e-5)   # C = 2: KD is TCKD


def test_reduction_none_is_per_image_and_mean_matches():
    zs, zt, y = logits(seed=7)
    tckd_i, nckd_i = dkd_terms(zs, zt, y, reduction="none")
    tckd, nckd = dkd_terms(zs, zt, y)
    assert tckd_i.shape == (6,) and nckd_i.shape == (6,)
    assert tckd_i.mean().item() == pytest.approx(tckd.item(), rel=1e-5)
    assert nckd_i.mean().item() == pytest.approx(nckd.item(), rel=1e-5)


# ------------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------------

def test_gradcheck_float64():
    zs, zt, y = logits(b=3, c=5, seed=8, dtype=torch.float64)
    zs.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: dkd_loss(a, zt, y, 1.0, 8.0, 2.5), (zs,))
    assert torch.autograd.gradcheck(lambda a: dkd_terms(a, zt, y, 4.0, reduction="none"), (zs,))
    assert torch.autograd.gradcheck(lambda a: binary_probs(a, y, 3.0), (zs,))
    assert torch.autograd.gradcheck(lambda a: nontarget_probs(a, y, 3.0), (zs,))


def test_gradient_flows_to_the_student_only_and_matches_mdistiller():
    zs, zt, y = logits(b=8, c=10, seed=9)
    zs.requires_grad_(True)
    zt.requires_grad_(True)
    dkd_loss(zs, zt, y).backward()
    assert zt.grad is None and torch.isfinite(zs.grad).all()
    mine = zs.grad.clone()
    a = zs.detach().clone().requires_grad_(True)
    mdistiller_reference(a, zt.detach(), y, 1.0, 8.0, 4.0).backward()
    assert torch.allclose(mine, a.grad, atol=1e-6)


def test_low_precision_inputs_reduce_in_float32():
    zs, zt, y = logits(seed=10)
    ref = dkd_loss(zs, zt, y)
    got = dkd_loss(zs.bfloat16(), zt.bfloat16(), y)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(dkd_loss(zs.bfloat16().float(), zt.bfloat16().float(), y).item(), rel=1e-5)
    assert got.item() == pytest.approx(ref.item(), rel=0.1)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, match", [
    (lambda zs, zt, y: dkd_loss(zs, zt[:, :5], y), ValueError,
     r"student_logits and teacher_logits must have the same shape, got \(6, 10\) and \(6, 5\)"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y[:4]), ValueError, r"target must have shape \(6,\).*got shape \(4,\)"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y + 10), ValueError, r"target must hold class indices in \[0, 10\)"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y.float()), TypeError, "target must be an integer tensor"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y.tolist()), TypeError, r"target must be a torch.Tensor of shape \(6,\)"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y[:, None]), ValueError, r"target must have shape \(6,\)"),
    (lambda zs, zt, y: dkd_loss(zs[:, :1], zt[:, :1], y * 0), ValueError, "at least 2 classes"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y, beta=-1.0), ValueError, "beta must be a finite number >= 0"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y, alpha=float("nan")), ValueError, "alpha must be a finite number >= 0"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y, alpha=True), TypeError, "alpha must be a number"),
    (lambda zs, zt, y: dkd_loss(zs, zt, y, temperature=0), ValueError, "temperature must be a finite number > 0"),
    (lambda zs, zt, y: dkd_loss(zs[0], zt, y), ValueError, r"student_logits must have shape \(B, C\)"),
    (lambda zs, zt, y: dkd_terms(zs, zt, y, reduction="sum"), ValueError, "reduction must be 'mean' or 'none'"),
    (lambda zs, zt, y: binary_probs(zs, y[:2]), ValueError, r"target must have shape \(6,\)"),
    (lambda zs, zt, y: nontarget_probs(zs.long(), y), TypeError, "logits must be a floating-point tensor"),
])
def test_bad_input(call, error, match):
    zs, zt, y = logits()
    with pytest.raises(error, match=match):
        call(zs, zt, y)


# ------------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    zs, zt, y = logits(b=32, c=100, seed=11)
    dev = torch.device("cuda")
    ref = dkd_loss(zs, zt, y)
    got = dkd_loss(zs.to(dev), zt.to(dev), y.to(dev))
    assert got.device.type == "cuda" and got.item() == pytest.approx(ref.item(), rel=1e-4)
    with pytest.raises(ValueError, match="same device"):
        dkd_loss(zs.to(dev), zt.to(dev), y)
    a = zs.to(dev).requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        z = a @ torch.eye(100, device=dev)            # a bf16 activation, as in the trainer
        loss = dkd_loss(z, zt.to(dev), y.to(dev))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(a.grad).all()
