"""Tests of kdteach.losses.tfkd: Tf-KD reg's virtual teacher and its KL term, as the authors' code has them.

Golden values are computed independently: by hand with ``math`` on tiny examples, with explicit loops,
and through the authors' own formulation (``nn.KLDivLoss()`` with its default reduction, times K),
never by calling the function under test again.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdteach.losses import kd_loss, softened_probs, tfkd_reg_loss, virtual_teacher_probs, virtual_teacher_target

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rand(*shape, seed=0, dtype=torch.float32, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


Y = torch.tensor([2, 0, 3])


# ------------------------------------------------------------------------------------------------
# virtual_teacher_probs: p^d
# ------------------------------------------------------------------------------------------------

def test_virtual_teacher_probs_by_hand():
    p = virtual_teacher_probs(Y, 4, 0.7)
    expected = [[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]   # (1 - 0.7) / 3 = 0.1
    assert p.shape == (3, 4) and p.dtype == torch.float32
    assert torch.allclose(p, torch.tensor(expected))
    assert torch.allclose(virtual_teacher_probs(Y, 4, 1.0), F.one_hot(Y, 4).float())      # a = 1: the label
    assert torch.allclose(virtual_teacher_probs(Y, 4, 0.25), torch.full((3, 4), 0.25))     # a = 1/K: uniform
    assert virtual_teacher_probs(Y.int(), 4, 0.7, dtype=torch.float64).dtype == torch.float64


def test_virtual_teacher_probs_is_the_authors_label_smoothing_target():
    # their loss_label_smoothing: 1 - eps on the label, eps / (K - 1) elsewhere
    eps, k = 0.1, 5
    y = torch.tensor([4, 1])
    ls = torch.full((2, k), eps / (k - 1))
    ls[0, 4] = ls[1, 1] = 1 - eps
    assert torch.allclose(virtual_teacher_probs(y, k, 1 - eps), ls)


@pytest.mark.parametrize("args, err, match", [
    ((Y.float(), 4, 0.9), ValueError, r"target must be an integer tensor of class indices, got dtype torch.float32"),
    ((Y[None], 4, 0.9), ValueError, r"target must be a non-empty \(B,\) tensor of class indices, got shape \(1, 3\)"),
    ((torch.tensor([0, 4]), 4, 0.9), ValueError, r"target must hold class indices in \[0, 4\), got values in \[0, 4\]"),
    ((Y, 1, 0.9), ValueError, r"num_classes must be an integer >= 2, got 1"),
    ((Y, 4, 0.0), ValueError, r"correct_prob must be a probability in \(0, 1\], got 0.0"),
    ((Y, 4, 1.5), ValueError, r"correct_prob must be a probability in \(0, 1\], got 1.5"),
    (([2, 0, 3], 4, 0.9), TypeError, r"target must be a \(B,\) integer tensor of class indices, got list"),
])
def test_virtual_teacher_probs_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        virtual_teacher_probs(*args)


# ------------------------------------------------------------------------------------------------
# virtual_teacher_target: softmax(p^d / T), the code's target
# ------------------------------------------------------------------------------------------------

def test_virtual_teacher_target_by_hand():
    # K = 10, a = 0.99, T = 20: logits 0.99/20 on the label, (0.01/9)/20 elsewhere
    k, a, t = 10, 0.99, 20.0
    on, off = math.exp(a / t), math.exp((1 - a) / (k - 1) / t)
    q = virtual_teacher_target(torch.tensor([3]), k, a, t)[0]
    assert q[3].item() == pytest.approx(on / (on + 9 * off), rel=1e-6)
    assert q[3].item() == pytest.approx(0.10454, abs=1e-5)                     # nearly uniform (0.1)
    assert q[0].item() == pytest.approx(off / (on + 9 * off), rel=1e-6)
    assert q.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_virtual_teacher_target_never_exceeds_its_bound():
    # whatever a, the correct class gets at most e^(1/T) / (e^(1/T) + K - 1): the code's target stays flat
    k = 10
    for t in (1.0, 4.0, 20.0):
        bound = math.exp(1 / t) / (math.exp(1 / t) + k - 1)
        values = [virtual_teacher_target(Y, k, a, t)[0, 2].item() for a in (0.5, 0.9, 0.99, 1.0)]
        assert values == sorted(values) and values[-1] == pytest.approx(bound, rel=1e-6)
        assert max(values) < 0.24


def test_virtual_teacher_target_is_a_softmax_of_probabilities_not_of_log_probabilities():
    pd = virtual_teacher_probs(Y, 4, 0.9)
    code = virtual_teacher_target(Y, 4, 0.9, 2.0)
    e = torch.exp(pd / 2.0)
    assert torch.allclose(code, e / e.sum(1, keepdim=True))
    as_logits = pd ** 0.5 / (pd ** 0.5).sum(1, keepdim=True)                   # softmax(log p^d / 2)
    assert torch.allclose(softened_probs(pd.log(), 2.0), as_logits, atol=1e-6)
    assert as_logits[0, 2] > 0.5 > code[0, 2]


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(temperature=0.0), ValueError, r"temperature must be a finite number > 0, got 0.0"),
    (dict(temperature="20"), TypeError, r"temperature must be a positive number, got str '20'"),
    (dict(correct_prob=-0.1), ValueError, r"correct_prob must be a probability in \(0, 1\]"),
    (dict(num_classes=3), ValueError, r"target must hold class indices in \[0, 3\), got values in \[0, 3\]"),
    (dict(dtype=torch.int64), ValueError, r"dtype must be a floating-point torch.dtype"),
])
def test_virtual_teacher_target_bad_input(kwargs, err, match):
    args = dict(target=Y, num_classes=4, correct_prob=0.9, temperature=20.0) | kwargs
    with pytest.raises(err, match=match):
        virtual_teacher_target(**args)


# ------------------------------------------------------------------------------------------------
# tfkd_reg_loss: KL(softmax(p^d / T) || softmax(z_s)), per image, averaged over the batch
# ------------------------------------------------------------------------------------------------

def test_tfkd_reg_loss_by_hand():
    # K = 3, a = 0.9, T = 1, student logits zero (uniform prediction): KL(q || u) = sum q log(3 q)
    z = torch.zeros(1, 3)
    e = [math.exp(0.9), math.exp(0.05), math.exp(0.05)]
    q = [v / sum(e) for v in e]
    expected = sum(v * math.log(3 * v) for v in q)
    assert tfkd_reg_loss(z, torch.tensor([0]), 0.9, 1.0).item() == pytest.approx(expected, rel=1e-5)


def test_tfkd_reg_loss_loops():
    z, y = rand(5, 7, seed=1, scale=2.0), torch.tensor([0, 6, 3, 3, 1])
    a, t = 0.95, 10.0
    total = 0.0
    for i in range(5):
        pd = [a if j == int(y[i]) else (1 - a) / 6 for j in range(7)]
        e = [math.exp(v / t) for v in pd]
        q = [v / sum(e) for v in e]
        log_norm = math.log(sum(math.exp(float(v)) for v in z[i]))
        total += sum(q[j] * (math.log(q[j]) - (float(z[i, j]) - log_norm)) for j in range(7))
    assert tfkd_reg_loss(z, y, a, t).item() == pytest.approx(total / 5, rel=1e-5)


def test_tfkd_reg_loss_is_the_authors_kldivloss_times_k():
    # the authors: nn.KLDivLoss()(F.log_softmax(outputs, dim=1), F.softmax(teacher_soft / T, dim=1)); its
    # default reduction='mean' averages over all B * K entries, so it is this function divided by K
    z, y = rand(6, 10, seed=2, scale=3.0), torch.tensor([0, 1, 2, 3, 4, 9])
    teacher_soft = torch.ones(6, 10) * (1 - 0.99) / 9
    for i in range(6):
        teacher_soft[i, y[i]] = 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)        # torch warns that 'mean' is not 'batchmean'
        theirs = nn.KLDivLoss()(F.log_softmax(z, dim=1), F.softmax(teacher_soft / 20.0, dim=1))
    assert tfkd_reg_loss(z, y, 0.99, 20.0).item() == pytest.approx(10 * theirs.item(), rel=1e-5)


def test_tfkd_reg_loss_is_kd_at_t1_with_pd_over_t_as_teacher_logits_and_has_that_gradient():
    z, y = rand(4, 5, seed=3, scale=2.0).requires_grad_(True), torch.tensor([1, 1, 0, 4])
    loss = tfkd_reg_loss(z, y, 0.8, 5.0)
    pd = virtual_teacher_probs(y, 5, 0.8)
    assert loss.item() == pytest.approx(kd_loss(z.detach(), pd / 5.0, 1.0).item(), rel=1e-6)
    loss.backward()
    q = torch.softmax(pd / 5.0, dim=1)
    assert torch.allclose(z.grad, (torch.softmax(z.detach(), 1) - q) / 4, atol=1e-6)
    # zero exactly when the student predicts the target
    assert tfkd_reg_loss(q.log(), y, 0.8, 5.0).item() == pytest.approx(0.0, abs=1e-6)


def test_tfkd_reg_loss_gradcheck():
    z = rand(3, 4, seed=4, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: tfkd_reg_loss(a, Y, 0.9, 3.0), (z,))
    assert tfkd_reg_loss(z, Y, 0.9, 3.0).dtype == torch.float64


def test_tfkd_reg_loss_half_inputs_reduce_in_float32():
    z = rand(3, 4, seed=5)
    out = tfkd_reg_loss(z.to(torch.bfloat16), Y)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(tfkd_reg_loss(z, Y).item(), rel=2e-2)


@pytest.mark.parametrize("args, err, match", [
    ((rand(3, 4)[0], Y), ValueError, r"student_logits must have shape \(B, K\) \(2 dimensions\), got shape \(4,\)"),
    ((rand(3, 4), Y[:2]), ValueError, r"target must hold one class index per image of student_logits \(3, 4\), "
                                      r"got shape \(2,\)"),
    ((rand(3, 4), Y + 1), ValueError, r"target must hold class indices in \[0, 4\), got values in \[1, 4\]"),
    ((rand(3, 4), Y.float()), ValueError, r"target must be an integer tensor"),
    ((rand(3, 4).long(), Y), TypeError, r"student_logits must be a floating-point tensor"),
    ((rand(3, 1), torch.zeros(3, dtype=torch.long)), ValueError, r"at least 2 classes"),
    ((rand(3, 4), Y, 0.9, -1.0), ValueError, r"temperature must be a finite number > 0, got -1.0"),
    ((rand(3, 4), Y, 2.0, 20.0), ValueError, r"correct_prob must be a probability in \(0, 1\], got 2.0"),
])
def test_tfkd_reg_loss_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        tfkd_reg_loss(*args)


# ------------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    z, y = rand(8, 10, seed=6, scale=2.0), torch.arange(8)
    cpu = {"probs": virtual_teacher_probs(y, 10, 0.9), "target": virtual_teacher_target(y, 10, 0.9, 20.0),
           "loss": tfkd_reg_loss(z, y, 0.9, 20.0)}
    gpu = {"probs": virtual_teacher_probs(y.to(dev), 10, 0.9), "target": virtual_teacher_target(y.to(dev), 10, 0.9, 20.0),
           "loss": tfkd_reg_loss(z.to(dev), y.to(dev), 0.9, 20.0)}
    for name, value in gpu.items():
        assert value.device.type == "cuda", name
        assert torch.allclose(value.cpu(), cpu[name], rtol=1e-4, atol=1e-6), name
    with pytest.raises(ValueError, match="same device"):
        tfkd_reg_loss(z.to(dev), y, 0.9, 20.0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = tfkd_reg_loss(z.to(dev, torch.bfloat16), y.to(dev), 0.9, 20.0)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert low.item() == pytest.approx(cpu["loss"].item(), rel=0.1, abs=1e-3)
