"""KD-SVD additions: the ``svd_batch`` sub-batch of method kdsvd, the sign convention and the
vector-level loss of kdteach.losses.feature, the channels_last gradient, and analysis.dfv_distance."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach.analysis import dfv_distance
from kdteach.data import example_batch
from kdteach.features import extract
from kdteach.losses import kdsvd_loss, svd_features
from kdteach.losses.feature import canonical_signs, kdsvd_vector_loss
from kdteach.methods import get_method
from kdteach.methods.base import batch_losses
from kdteach.methods.kdsvd import batch_head

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def batch():
    return example_batch(12, "cifar10", resolution=16)


def features(seed, batch=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.relu(torch.randn(batch, c, h, h, generator=g, dtype=dtype)) for c, h in ((5, 4), (6, 3), (7, 3))]


def test_svd_batch_default_and_validation():
    assert get_method("kdsvd").hparams["svd_batch"] is None           # the paper: the whole batch
    assert get_method("kdsvd", svd_batch=8).hparams["svd_batch"] == 8
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="hyper-parameter 'svd_batch' of method 'kdsvd' must be None"):
            get_method("kdsvd", svd_batch=bad)


def test_svd_batch_uses_the_first_images(batch):
    x, y = batch
    student, teacher = T.build_model("tiny_student", 10, 0), T.build_model("tiny_teacher", 10, 1).eval()
    names = get_method("kdsvd").student_features(student)
    full = batch_losses(get_method("kdsvd"), student, teacher, x, y)
    sub = batch_losses(get_method("kdsvd", svd_batch=5), student, teacher, x, y)
    assert torch.allclose(sub["ce"], full["ce"])                       # the cross-entropy sees the whole batch
    # the term on the first 5 images equals kdsvd_loss on those images' features of the same
    # (training-mode) forward pass of the whole batch
    _, fs = extract(student, x, names)
    with torch.no_grad():
        _, ft = extract(teacher, x, names)
    want = kdsvd_loss([fs[n][:5] for n in names], [ft[n][:5] for n in names]).item()
    assert sub["kdsvd"].item() == pytest.approx(want, rel=1e-5)
    assert sub["kdsvd"].item() != pytest.approx(full["kdsvd"].item(), rel=1e-3)
    # svd_batch >= B is the whole batch
    same = batch_losses(get_method("kdsvd", svd_batch=64), student, teacher, x, y)
    assert same["kdsvd"].item() == pytest.approx(full["kdsvd"].item(), rel=1e-6)


def test_batch_head_gradient_keeps_the_layout():
    f = torch.randn(6, 3, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    h = batch_head(f, 2)
    assert torch.equal(h, f[:2]) and batch_head(f, 6) is f
    (h * torch.arange(h.numel()).reshape(h.shape)).sum().backward()
    assert f.grad.is_contiguous(memory_format=torch.channels_last)
    want = torch.zeros(6, 3, 4, 4)
    want[:2] = torch.arange(2 * 48.0).reshape(2, 3, 4, 4)
    assert torch.equal(f.grad, want)


def test_svd_gradient_is_channels_last_and_equal():
    fs, ft = features(3), features(4)
    a = [f.clone().requires_grad_() for f in fs]
    b = [f.clone().contiguous(memory_format=torch.channels_last).requires_grad_() for f in fs]
    la, lb = kdsvd_loss(a, ft, 2), kdsvd_loss(b, ft, 2)
    la.backward()
    lb.backward()
    assert lb.item() == pytest.approx(la.item(), rel=1e-12)
    for ga, gb in zip(a, b):
        assert gb.grad.is_contiguous(memory_format=torch.channels_last) and ga.grad.is_contiguous()
        assert torch.allclose(ga.grad, gb.grad, rtol=1e-9, atol=1e-12)
    torch.manual_seed(0)
    f = torch.randn(2, 3, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: tuple(o.abs() for o in svd_features(t, 2)), (f,))


def test_canonical_signs_and_vector_loss():
    fs, ft = features(5), features(6)
    v = torch.randn(3, 5, 2, dtype=torch.float64)
    c = canonical_signs(v)
    peak = c.gather(1, c.abs().argmax(1, keepdim=True))
    assert torch.all(peak > 0) and torch.allclose(c.abs(), v.abs())
    assert torch.allclose(canonical_signs(-v), c)
    s_t, v_t, v_s = [], [], []
    for a, b in zip(fs, ft):
        s, vt = svd_features(b, 1)
        s_t.append(s)
        v_t.append(vt)
        v_s.append(svd_features(a, 4)[1])
    ours = kdsvd_loss(fs, ft, 1).item()
    assert kdsvd_vector_loss(v_s, v_t, s_t).item() == pytest.approx(ours, rel=1e-12)
    flipped = [v_t[0], -v_t[1], v_t[2]]                             # an equally valid SVD of stage 1
    assert kdsvd_vector_loss(v_s, flipped, s_t).item() != pytest.approx(ours, rel=1e-2)   # the benchmark's value moves
    assert kdsvd_vector_loss(v_s, [canonical_signs(t) for t in flipped], s_t).item() == pytest.approx(ours, rel=1e-12)
    with pytest.raises(ValueError, match="same length"):
        kdsvd_vector_loss(v_s, v_t[:2], s_t)
    with pytest.raises(ValueError, match=r"teacher_values\[1\] must have shape \(B, k\)"):
        kdsvd_vector_loss(v_s, v_t, [s_t[0], torch.ones(4, 2, dtype=torch.float64), s_t[2]])
    with pytest.raises(ValueError, match="vectors"):
        canonical_signs(v[0])


def test_dfv_distance(batch):
    x, _ = batch
    student, teacher = T.build_model("tiny_student", 10, 0).eval(), T.build_model("tiny_teacher", 10, 1).eval()
    names = get_method("kdsvd").student_features(student)
    with torch.no_grad():
        _, fs = extract(student, x, names)
        _, ft = extract(teacher, x, names)
    per_batch = [kdsvd_loss([fs[n][i:i + 5] for n in names], [ft[n][i:i + 5] for n in names]).item() * len(x[i:i + 5])
                 for i in range(0, len(x), 5)]
    want = sum(per_batch) / len(x)                                   # the mean over the images
    got = dfv_distance(student, teacher, x, names, batch_size=5)
    assert got == pytest.approx(want, rel=1e-6)
    assert dfv_distance(student, teacher, x, names) == pytest.approx(kdsvd_loss([fs[n] for n in names],
                                                                                [ft[n] for n in names]).item(), rel=1e-6)
    assert dfv_distance(teacher, teacher, x, names) == pytest.approx(0.0, abs=1e-10)
    student.train()
    dfv_distance(student, teacher, x, names)
    assert student.training                                          # mode restored
    with pytest.raises(ValueError, match="at least two stages"):
        dfv_distance(student, teacher, x, names[:1])
    with pytest.raises(ValueError, match="teacher_stages must name as many"):
        dfv_distance(student, teacher, x, names, teacher_stages=names[:2])
    with pytest.raises(ValueError, match="k"):
        dfv_distance(student, teacher, x, names, k=0)
    with pytest.raises(ValueError, match="batch_size"):
        dfv_distance(student, teacher, x, names, batch_size=0)
