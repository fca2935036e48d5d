"""Tests of kdteach.losses (KD, AT, FSP, KD-SVD, CAM / Grad-CAM).

Golden values are computed independently with numpy and explicit loops, never by calling the
function under test again.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdteach.features import extract
from kdteach.losses import (ATTENTION_MODES, align_singular_vectors, at_loss, at_loss_paper, attention_map,
                            class_activation_map, fsp_loss, fsp_matrix, grad_cam, kd_loss, kdsvd_loss,
                            normalize_map, rbf_dfv, softened_probs, svd_features)
from kdteach.models import tiny_student, tiny_teacher

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0, dtype=torch.float32, relu=False, requires_grad=False):
    x = torch.randn(*shape, generator=gen(seed), dtype=dtype)
    if relu:
        x = x.clamp_min(0)
    return x.requires_grad_(requires_grad)


# ------------------------------------------------------------------------------------------------
# numpy references
# ------------------------------------------------------------------------------------------------

def np_softmax(z, t):
    out = np.zeros_like(z)
    for i in range(z.shape[0]):
        e = [math.exp(v / t) for v in z[i]]
        out[i] = [v / sum(e) for v in e]
    return out


def np_kd(zs, zt, t):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    total = 0.0
    for i in range(zs.shape[0]):
        for c in range(zs.shape[1]):
            total += pt[i, c] * (math.log(pt[i, c]) - math.log(ps[i, c]))
    return t * t * total / zs.shape[0]


def np_block_pool(f, size):
    """Average pooling of (B, C, H, W) to (B, C, h, w) when H, W are multiples of h, w."""
    b, c, h, w = f.shape
    return f.reshape(b, c, size[0], h // size[0], size[1], w // size[1]).mean(axis=(3, 5))


def np_at_vec(f, p, reduce="mean"):
    a = np.abs(f) ** p
    a = a.mean(1) if reduce == "mean" else a.sum(1)
    a = a.reshape(a.shape[0], -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def np_fsp(a, b):
    bsz, c1, h, w = a.shape
    c2 = b.shape[1]
    g = np.zeros((bsz, c1, c2))
    for n in range(bsz):
        for i in range(c1):
            for j in range(c2):
                g[n, i, j] = sum(a[n, i, y, x] * b[n, j, y, x] for y in range(h) for x in range(w)) / (h * w)
    return g


def np_svd_top(f, n):
    """Reference of svd_features: normalised top-n values and sign-fixed right singular vectors."""
    bsz, c, h, w = f.shape
    svals, vecs = [], []
    for b in range(bsz):
        x = f[b].reshape(c, h * w).T                         # (HW, C)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        m = min(n, len(s))
        v = vt[:m].T.copy()                                  # (C, m)
        for j in range(m):
            if v[np.argmax(np.abs(v[:, j])), j] < 0:
                v[:, j] = -v[:, j]
            v[:, j] /= np.linalg.norm(v[:, j])
        s = s[:m] / np.linalg.norm(s[:m])
        svals.append(s)
        vecs.append(v)
    return np.stack(svals), np.stack(vecs)


def np_align(vs, vt):
    out = np.zeros_like(vt)
    for b in range(vt.shape[0]):
        for j in range(vt.shape[2]):
            cos = [float(vs[b, :, i] @ vt[b, :, j]) for i in range(vs.shape[2])]
            best = int(np.argmax(np.abs(cos)))
            out[b, :, j] = np.sign(cos[best]) * vs[b, :, best]
    return out


def np_kdsvd(fs_list, ft_list, k):
    total, prev = 0.0, None
    bsz = fs_list[0].shape[0]
    for fs, ft in zip(fs_list, ft_list):
        st, vt = np_svd_top(ft, k)
        _, vs = np_svd_top(fs, k + 3)
        vs = np_align(vs, vt)
        vt, vs = vt * st[:, None, :], vs * st[:, None, :]
        if prev is not None:
            ps, pt = prev
            for b in range(bsz):
                for c in range(vs.shape[1]):
                    for d in range(ps.shape[1]):
                        for j in range(k):
                            ks = math.exp(-(vs[b, c, j] - ps[b, d, j]) ** 2 / 8)
                            kt = math.exp(-(vt[b, c, j] - pt[b, d, j]) ** 2 / 8)
                            total += (ks - kt) ** 2 / bsz
        prev = (vs, vt)
    return total


# ------------------------------------------------------------------------------------------------
# KD
# ------------------------------------------------------------------------------------------------

class TestKD:
    zs = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    zt = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]])

    def test_golden(self):
        for t in (1.0, 4.0):
            want = np_kd(self.zs.double().numpy(), self.zt.double().numpy(), t)
            assert kd_loss(self.zs, self.zt, t).item() == pytest.approx(want, rel=1e-5)

    def test_softened_probs_golden(self):
        want = np_softmax(self.zs.double().numpy(), 2.0)
        got = softened_probs(self.zs.double(), 2.0)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
        assert torch.allclose(got.sum(1), torch.ones(2, dtype=torch.float64))

    def test_zero_for_equal_logits(self):
        z = rand(5, 10)
        assert kd_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)

    def test_gradient_identity(self):
        t, b = 3.0, 4
        zs = rand(b, 7, seed=1, dtype=torch.float64, requires_grad=True)
        zt = rand(b, 7, seed=2, dtype=torch.float64)
        kd_loss(zs, zt, t).backward()
        want = t * (torch.softmax(zs.detach() / t, 1) - torch.softmax(zt / t, 1)) / b
        assert torch.allclose(zs.grad, want, atol=1e-12)

    def test_gradcheck(self):
        zs = rand(3, 5, seed=1, dtype=torch.float64, requires_grad=True)
        zt = rand(3, 5, seed=2, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda a: kd_loss(a, zt, 2.5), (zs,))

    def test_gradient_to_student_only(self):
        zs = rand(3, 5, seed=1, requires_grad=True)
        zt = rand(3, 5, seed=2, requires_grad=True)
        kd_loss(zs, zt).backward()
        assert zs.grad is not None and zt.grad is None

    def test_bad_inputs(self):
        z = rand(4, 10)
        with pytest.raises(ValueError, match=r"student_logits must have shape \(B, C\).*\(4, 10, 1\)"):
            kd_loss(z[..., None], z)
        with pytest.raises(ValueError, match=r"student_logits and teacher_logits must have the same shape.*\(3, 10\)"):
            kd_loss(z[:3], z)
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0, got 0"):
            kd_loss(z, z, temperature=0)
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0"):
            kd_loss(z, z, temperature=float("nan"))
        with pytest.raises(TypeError, match=r"teacher_logits must be a torch.Tensor"):
            kd_loss(z, z.numpy())
        with pytest.raises(TypeError, match=r"student_logits must be a floating-point tensor"):
            kd_loss(z.long(), z)
        with pytest.raises(ValueError, match=r"logits must have shape \(B, C\)"):
            softened_probs(z[0], 1.0)
        with pytest.raises(TypeError, match=r"temperature must be a positive number"):
            softened_probs(z, "4")

    def test_bf16_autocast(self):
        zs, zt = rand(8, 10, seed=1), rand(8, 10, seed=2)
        ref = kd_loss(zs, zt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lin = torch.nn.Linear(10, 10)
            torch.nn.init.eye_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
            ys = lin(zs)
            assert ys.dtype == torch.bfloat16
            got = kd_loss(ys, zt.bfloat16())
        assert got.dtype == torch.float32 and torch.isfinite(got)
        assert got.item() == pytest.approx(ref.item(), rel=5e-2)


# ------------------------------------------------------------------------------------------------
# AT
# ------------------------------------------------------------------------------------------------

class TestAT:
    def test_attention_map_modes_golden(self):
        f = rand(2, 3, 2, 2, seed=3).double()
        a = f.numpy()
        for mode in ATTENTION_MODES:
            got = attention_map(f, p=3, mode=mode).numpy()
            want = np.zeros((2, 2, 2))
            for b in range(2):
                for y in range(2):
                    for x in range(2):
                        vals = [abs(a[b, c, y, x]) for c in range(3)]
                        want[b, y, x] = {"sum": sum(vals), "sum_p": sum(v ** 3 for v in vals),
                                         "max_p": max(v ** 3 for v in vals)}[mode]
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=mode)

    def test_golden_hand_example(self):
        # One channel, one sample: a_s ∝ (1, 0), a_t ∝ (0, 1) -> normalised difference (1, -1),
        # mean of squares over B·H·W = 2 / 2 = 1; paper form: beta/2 * sqrt(2).
        s = torch.tensor([[[[1.0, 0.0]]]])
        t = torch.tensor([[[[0.0, 3.0]]]])
        assert at_loss(s, t).item() == pytest.approx(1.0)
        assert at_loss_paper(s, t, beta=2.0).item() == pytest.approx(math.sqrt(2.0))

    def test_golden_with_pooling(self):
        fs = rand(2, 3, 4, 4, seed=4, dtype=torch.float64)
        ft = rand(2, 5, 2, 2, seed=5, dtype=torch.float64)
        ps = np_block_pool(fs.numpy(), (2, 2))
        for p in (2, 1.5):
            d = np_at_vec(ps, p) - np_at_vec(ft.numpy(), p)
            assert at_loss(fs, ft, p=p).item() == pytest.approx(float((d ** 2).mean()), rel=1e-10)
            dp = np_at_vec(ps, p, "sum") - np_at_vec(ft.numpy(), p, "sum")
            want_paper = 1000.0 / 2 * float(np.linalg.norm(dp, axis=1).mean())
            assert at_loss_paper(fs, ft, p=p).item() == pytest.approx(want_paper, rel=1e-10)
        # teacher larger than student: the teacher is pooled
        assert at_loss(ft, fs).item() == pytest.approx(
            float(((np_at_vec(ft.numpy(), 2) - np_at_vec(ps, 2)) ** 2).mean()), rel=1e-10)

    def test_benchmark_and_paper_forms_relation(self):
        # at_loss = mean_b ||d_b||^2 / (H W), at_loss_paper = beta/2 mean_b ||d_b||; one sample -> exact.
        fs = rand(1, 4, 3, 3, seed=6, relu=True)
        ft = rand(1, 6, 3, 3, seed=7, relu=True)
        paper = at_loss_paper(fs, ft, beta=2.0)
        assert at_loss(fs, ft).item() == pytest.approx(paper.item() ** 2 / 9, rel=1e-5)

    def test_zero_for_identical_features(self):
        f = rand(3, 8, 4, 4, seed=8, relu=True)
        assert at_loss(f, f.clone()).item() == pytest.approx(0.0, abs=1e-12)
        assert at_loss_paper(f, f.clone()).item() == pytest.approx(0.0, abs=1e-6)
        # and for any channel count: only the spatial map matters
        assert at_loss(f, torch.cat([f, f], 1)).item() == pytest.approx(0.0, abs=1e-12)

    def test_gradcheck(self):
        fs = rand(2, 3, 4, 4, seed=9, dtype=torch.float64, requires_grad=True)
        ft = rand(2, 2, 2, 2, seed=10, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda a: at_loss(a, ft), (fs,))
        assert torch.autograd.gradcheck(lambda a: at_loss_paper(a, ft, beta=3.0), (fs,))
        assert torch.autograd.gradcheck(lambda a: attention_map(a, 2, "max_p"), (fs,))

    def test_gradient_to_student_only(self):
        fs = rand(2, 3, 4, 4, seed=9, requires_grad=True)
        ft = rand(2, 5, 4, 4, seed=10, requires_grad=True)
        (at_loss(fs, ft) + at_loss_paper(fs, ft)).backward()
        assert fs.grad is not None and torch.isfinite(fs.grad).all() and ft.grad is None

    def test_bad_inputs(self):
        f = rand(2, 3, 4, 4)
        with pytest.raises(ValueError, match=r"student_feature must have shape \(B, C, H, W\).*\(2, 3, 4\)"):
            at_loss(f[:, :, :, 0], f)
        msg = r"student_feature and teacher_feature must have the same batch size.*\(1, 3, 4, 4\)"
        with pytest.raises(ValueError, match=msg):
            at_loss(f[:1], f)
        with pytest.raises(ValueError, match=r"p must be a finite number > 0, got -1"):
            at_loss(f, f, p=-1)
        with pytest.raises(ValueError, match=r"teacher_feature must have shape"):
            at_loss_paper(f, f[0])
        with pytest.raises(ValueError, match=r"beta must be a finite number > 0"):
            at_loss_paper(f, f, beta=0.0)
        with pytest.raises(ValueError, match=r"mode must be one of"):
            attention_map(f, mode="mean")
        with pytest.raises(TypeError, match=r"p must be a positive number, got bool"):
            attention_map(f, p=True)

    def test_bf16_autocast(self):
        x = rand(4, 3, 8, 8, seed=11)
        conv_s = torch.nn.Conv2d(3, 8, 3, padding=1)
        conv_t = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        ref = at_loss(conv_s(x).relu(), conv_t(x).relu())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fs, ft = conv_s(x).relu(), conv_t(x).relu()
            assert fs.dtype == torch.bfloat16
            got = at_loss(fs, ft)
            got_paper = at_loss_paper(fs, ft)
        assert got.dtype == torch.float32 and torch.isfinite(got) and torch.isfinite(got_paper)
        assert got.item() == pytest.approx(ref.item(), rel=5e-2)


# ------------------------------------------------------------------------------------------------
# FSP
# ------------------------------------------------------------------------------------------------

class TestFSP:
    def test_matrix_hand_example(self):
        a = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])      # (1, 2, 1, 2)
        b = torch.tensor([[[[3.0, -1.0]]]])                    # (1, 1, 1, 2)
        # G_00 = (1*3 + 2*-1)/2 = 0.5 ; G_10 = (0*3 + 1*-1)/2 = -0.5
        assert torch.equal(fsp_matrix(a, b), torch.tensor([[[0.5], [-0.5]]]))

    def test_matrix_golden_with_pooling(self):
        a = rand(2, 3, 4, 4, seed=12, dtype=torch.float64)
        b = rand(2, 2, 2, 2, seed=13, dtype=torch.float64)
        want = np_fsp(np_block_pool(a.numpy(), (2, 2)), b.numpy())
        got = fsp_matrix(a, b)
        assert got.shape == (2, 3, 2)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
        np.testing.assert_allclose(fsp_matrix(b, a).numpy(), want.transpose(0, 2, 1), rtol=1e-10)

    def test_loss_golden(self):
        gs = [rand(2, 3, 4, seed=14, dtype=torch.float64), rand(2, 5, 2, seed=15, dtype=torch.float64)]
        gt = [rand(2, 3, 4, seed=16, dtype=torch.float64), rand(2, 5, 2, seed=17, dtype=torch.float64)]
        want = sum(float(((s.numpy() - t.numpy()) ** 2).sum()) / s.numel() for s, t in zip(gs, gt))
        assert fsp_loss(gs, gt).item() == pytest.approx(want, rel=1e-12)

    def test_zero_for_identical_lists(self):
        feats = [rand(2, c, h, h, seed=c, relu=True) for c, h in [(4, 8), (6, 4), (8, 4)]]
        mats = [fsp_matrix(feats[i], feats[i + 1]) for i in range(2)]
        assert fsp_loss(mats, [m.clone() for m in mats]).item() == 0.0

    def test_gradcheck(self):
        fs = [rand(2, 3, 4, 4, seed=18, dtype=torch.float64, requires_grad=True),
              rand(2, 2, 2, 2, seed=19, dtype=torch.float64, requires_grad=True)]
        gt = [rand(2, 3, 2, seed=20, dtype=torch.float64)]
        assert torch.autograd.gradcheck(lambda a, b: fsp_loss([fsp_matrix(a, b)], gt), tuple(fs))

    def test_gradient_to_student_only(self):
        fs = [rand(2, 3, 4, 4, seed=18, requires_grad=True), rand(2, 2, 2, 2, seed=19, requires_grad=True)]
        ft = [rand(2, 3, 4, 4, seed=20, requires_grad=True), rand(2, 2, 2, 2, seed=21, requires_grad=True)]
        fsp_loss([fsp_matrix(*fs)], [fsp_matrix(*ft)]).backward()
        assert all(f.grad is not None for f in fs) and all(f.grad is None for f in ft)

    def test_bad_inputs(self):
        a, b = rand(2, 3, 4, 4), rand(2, 5, 2, 2)
        with pytest.raises(ValueError, match=r"first must have shape \(B, C, H, W\).*\(3, 4, 4\)"):
            fsp_matrix(a[0], b)
        with pytest.raises(ValueError, match=r"first and second must have the same batch size.*\(1, 3, 4, 4\)"):
            fsp_matrix(a[:1], b)
        g = fsp_matrix(a, b)
        with pytest.raises(ValueError, match=r"the same length, got 1 and 2"):
            fsp_loss([g], [g, g])
        msg = r"student_matrices\[0\] and teacher_matrices\[0\] must have the same shape"
        with pytest.raises(ValueError, match=msg):
            fsp_loss([g], [g[:, :2]])
        with pytest.raises(ValueError, match=r"student_matrices\[0\] must have shape \(B, C1, C2\).*\(3, 5\)"):
            fsp_loss([g[0]], [g[0]])
        with pytest.raises(TypeError, match=r"student_matrices must be a list or tuple of tensors, got Tensor"):
            fsp_loss(g, [g])
        with pytest.raises(ValueError, match=r"teacher_matrices must contain at least one tensor"):
            fsp_loss([g], [])

    def test_bf16_autocast(self):
        a, b = rand(4, 8, 8, 8, seed=22, relu=True), rand(4, 16, 4, 4, seed=23, relu=True)
        ta, tb = rand(4, 8, 8, 8, seed=24, relu=True), rand(4, 16, 4, 4, seed=25, relu=True)
        ref = fsp_loss([fsp_matrix(a, b)], [fsp_matrix(ta, tb)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            g = fsp_matrix(a.bfloat16(), b.bfloat16())
            got = fsp_loss([g], [fsp_matrix(ta.bfloat16(), tb.bfloat16())])
        assert g.dtype == torch.float32 and got.dtype == torch.float32 and torch.isfinite(got)
        assert got.item() == pytest.approx(ref.item(), rel=5e-2)


# ------------------------------------------------------------------------------------------------
# KD-SVD
# ------------------------------------------------------------------------------------------------

STAGES = [(4, 4, 4), (6, 2, 2), (5, 2, 3)]  # (C, H, W) per stage; student and teacher share C


def svd_lists(dtype=torch.float64, relu=False, requires_grad=False, seed=30, spatial_t=None):
    fs = [rand(2, c, h, w, seed=seed + i, dtype=dtype, relu=relu, requires_grad=requires_grad)
          for i, (c, h, w) in enumerate(STAGES)]
    sizes = spatial_t or [(h, w) for _, h, w in STAGES]
    ft = [rand(2, c, *sizes[i], seed=seed + 10 + i, dtype=dtype, relu=relu) for i, (c, _, _) in enumerate(STAGES)]
    return fs, ft


class TestKDSVD:
    def test_golden(self):
        fs, ft = svd_lists()
        for k in (1, 2):
            want = np_kdsvd([f.numpy() for f in fs], [f.numpy() for f in ft], k)
            assert kdsvd_loss(fs, ft, k=k).item() == pytest.approx(want, rel=1e-9)
        # different spatial sizes for the teacher (only the channel space is compared)
        fs, ft = svd_lists(spatial_t=[(2, 2), (3, 3), (2, 2)])
        want = np_kdsvd([f.numpy() for f in fs], [f.numpy() for f in ft], 1)
        assert kdsvd_loss(fs, ft).item() == pytest.approx(want, rel=1e-9)

    def test_steps_golden(self):
        fs, ft = svd_lists()
        s, v = svd_features(ft[0], 2)
        ws, wv = np_svd_top(ft[0].numpy(), 2)
        np.testing.assert_allclose(s.numpy(), ws, rtol=1e-10)
        np.testing.assert_allclose(v.numpy(), wv, atol=1e-10)
        _, vs = svd_features(fs[0], 4)
        aligned = align_singular_vectors(vs, v)
        np.testing.assert_allclose(aligned.numpy(), np_align(vs.numpy(), v.numpy()), atol=1e-12)
        k = rbf_dfv(v, rand(2, 3, 2, seed=40, dtype=torch.float64))
        assert k.shape == (2, 4, 3, 2)
        prev = rand(2, 3, 2, seed=40, dtype=torch.float64).numpy()
        assert k[1, 2, 0, 1].item() == pytest.approx(math.exp(-(v[1, 2, 1].item() - prev[1, 0, 1]) ** 2 / 8))

    def test_svd_features_raw_spectrum(self):
        f = rand(2, 3, 2, 2, seed=41, dtype=torch.float64)
        s, v = svd_features(f)
        x = f.flatten(2).transpose(1, 2)
        np.testing.assert_allclose(s.numpy(), np.linalg.svd(x.numpy(), compute_uv=False), rtol=1e-10)
        # v are right singular vectors: x v_j = s_j u_j with ||u_j|| = 1
        np.testing.assert_allclose(torch.linalg.vector_norm(x @ v, dim=1).numpy(), s.numpy(), rtol=1e-10)
        assert torch.all(v.gather(1, v.abs().argmax(1, keepdim=True)) > 0)  # sign convention

    @pytest.mark.parametrize("shape", [(3, 5, 4, 4), (3, 9, 2, 2), (3, 6, 3, 2)])   # HW > C, HW < C, HW = C
    def test_float32_gram_route_matches_float64_svd(self, shape):
        # float32 features go through the float64 Gram eigendecomposition (kdteach.losses.feature._thin_svd)
        f64 = rand(*shape, seed=50, dtype=torch.float64, relu=True)
        f64[1, 1:3] = 0                                            # dead channels: repeated zero singular values
        f32 = f64.float()
        for n in (None, 2):
            s64, v64 = svd_features(f64, n)
            s32, v32 = svd_features(f32, n)
            assert s32.dtype == v32.dtype == torch.float32
            np.testing.assert_allclose(s32.double().numpy(), s64.numpy(), rtol=1e-5, atol=1e-6)
            keep = 2 if n is None else n                           # leading, well-separated components
            np.testing.assert_allclose(v32[..., :keep].double().numpy(), v64[..., :keep].numpy(), atol=1e-5)
        # gradients of a sign-invariant function of the top-3 components agree with the float64 SVD route
        grads = []
        for f in (f64, f32):
            f = f.clone().requires_grad_(True)
            s, v = svd_features(f, 3)
            (s.sum() + (v * v.roll(1, 1)).sum()).backward()
            assert torch.isfinite(f.grad).all()
            grads.append(f.grad.double())
        np.testing.assert_allclose(grads[1].numpy(), grads[0].numpy(), atol=2e-4)

    def test_alignment_recovers_permuted_and_flipped_vectors(self):
        vt = torch.linalg.qr(rand(2, 6, 6, seed=42, dtype=torch.float64))[0]
        perm = torch.tensor([3, 0, 5, 1, 2, 4])
        signs = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
        vs = vt[:, :, perm] * signs
        assert torch.allclose(align_singular_vectors(vs, vt[:, :, :2]), vt[:, :, :2])

    def test_zero_for_identical_features(self):
        fs, _ = svd_lists(relu=True)
        assert kdsvd_loss(fs, [f.clone() for f in fs], k=2).item() == pytest.approx(0.0, abs=1e-12)

    def test_gradcheck(self):
        # small stages: (C, H, W) = (3, 2, 3) has H·W > C, (4, 1, 2) has H·W < C (null space)
        fs = [rand(2, 3, 2, 3, seed=46, dtype=torch.float64, requires_grad=True),
              rand(2, 4, 1, 2, seed=47, dtype=torch.float64, requires_grad=True)]
        ft = [rand(2, 3, 2, 2, seed=48, dtype=torch.float64), rand(2, 4, 2, 2, seed=49, dtype=torch.float64)]
        assert torch.autograd.gradcheck(lambda *a: kdsvd_loss(list(a), ft, 2), tuple(fs))

    def test_svd_gradient_matches_torch_and_stays_finite(self):
        f = rand(2, 4, 3, 3, seed=43, dtype=torch.float64, requires_grad=True)
        s, v = svd_features(f)
        g1 = torch.autograd.grad(s.sum() + (v * v.roll(1, 1)).sum(), f)[0]   # sign-invariant function
        _, s2, vh = torch.linalg.svd(f.flatten(2).transpose(1, 2), full_matrices=False)
        v2 = vh.transpose(1, 2)
        g2 = torch.autograd.grad(s2.sum() + (v2 * v2.roll(1, 1)).sum(), f)[0]
        assert torch.allclose(g1, g2, atol=1e-10)
        # dead channels give repeated zero singular values: torch's SVD backward is NaN there
        dead = rand(1, 6, 3, 3, seed=44, dtype=torch.float64)
        dead[:, 3:] = 0
        dead.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda a: tuple(t.abs() for t in svd_features(a, 3)), (dead,))
        fs, ft = svd_lists(relu=True)
        dead_stage = fs[0].detach().clone()
        dead_stage[:, 2:] = 0                                   # two dead channels of four
        fs[0] = dead_stage.requires_grad_(True)
        kdsvd_loss(fs, ft, 1).backward()
        assert torch.isfinite(fs[0].grad).all() and fs[0].grad.abs().sum() > 0

    def test_gradient_to_student_only(self):
        fs, ft = svd_lists(dtype=torch.float32, requires_grad=True)
        for f in ft:
            f.requires_grad_(True)
        kdsvd_loss(fs, ft).backward()
        assert all(f.grad is not None for f in fs) and all(f.grad is None for f in ft)

    def test_bad_inputs(self):
        fs, ft = svd_lists(dtype=torch.float32)
        with pytest.raises(ValueError, match=r"student_features\[1\] must have shape \(B, C, H, W\).*\(6, 2, 2\)"):
            kdsvd_loss([fs[0], fs[1][0], fs[2]], ft)
        msg = r"student_features\[0\] and teacher_features\[0\] must have the same batch size"
        with pytest.raises(ValueError, match=msg):
            kdsvd_loss([fs[0][:1], *fs[1:]], ft)
        with pytest.raises(ValueError, match=r"k must be an integer >= 1, got 0"):
            kdsvd_loss(fs, ft, k=0)
        with pytest.raises(TypeError, match=r"k must be an integer >= 1, got float"):
            kdsvd_loss(fs, ft, k=1.0)
        msg = r"student_features\[1\] and teacher_features\[1\] must have the same number of channels.*\(2, 6, 2, 2\)"
        with pytest.raises(ValueError, match=msg + r".*\(2, 5, 2, 2\)"):
            kdsvd_loss(fs, [ft[0], rand(2, 5, 2, 2), ft[2]])
        with pytest.raises(ValueError, match=r"k=5 exceeds min\(C, H\*W\)=4 of teacher_features\[0\]"):
            kdsvd_loss(fs, ft, k=5)
        with pytest.raises(ValueError, match=r"at least 2 stages, got 1"):
            kdsvd_loss(fs[:1], ft[:1])
        with pytest.raises(ValueError, match=r"the same length, got 3 and 2"):
            kdsvd_loss(fs, ft[:2])
        with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
            svd_features(fs[0], 0)
        with pytest.raises(ValueError, match=r"same number of channels C"):
            align_singular_vectors(rand(2, 4, 3), rand(2, 5, 1))
        with pytest.raises(ValueError, match=r"same number k of vectors"):
            rbf_dfv(rand(2, 4, 3), rand(2, 5, 1))

    def test_bf16_autocast(self):
        fs, ft = svd_lists(dtype=torch.float32, relu=True)
        ref = kdsvd_loss(fs, ft)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = kdsvd_loss([f.bfloat16() for f in fs], [f.bfloat16() for f in ft])
        assert got.dtype == torch.float32 and torch.isfinite(got)
        assert got.item() == pytest.approx(ref.item(), rel=0.1, abs=1e-3)

    def test_on_tiny_models(self):
        torch.manual_seed(0)
        s, t = tiny_student(), tiny_teacher()
        x = torch.rand(4, 3, 16, 16, generator=gen(45))
        names = ["layer1", "layer2", "layer3"]
        _, fs = extract(s, x, names)
        with torch.no_grad():
            _, ft = extract(t, x, names)
        loss = kdsvd_loss([fs[n] for n in names], [ft[n] for n in names])
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0
        assert all(torch.isfinite(p.grad).all() for p in s.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------------
# CAM / Grad-CAM
# ------------------------------------------------------------------------------------------------

class TestCAM:
    def test_cam_golden(self):
        f = rand(2, 3, 2, 2, seed=50, dtype=torch.float64)
        w = rand(4, 3, seed=51, dtype=torch.float64)
        cls = [2, 0]
        got = class_activation_map(f, w, cls).numpy()
        a, wn = f.numpy(), w.numpy()
        for b in range(2):
            for y in range(2):
                for x in range(2):
                    want = sum(wn[cls[b], c] * a[b, c, y, x] for c in range(3))
                    assert got[b, y, x] == pytest.approx(want, rel=1e-12)

    def test_grad_cam_equals_cam_over_hw(self):
        torch.manual_seed(0)
        model = tiny_student(num_classes=5).eval()
        x = torch.rand(3, 3, 16, 16, generator=gen(52))
        classes = torch.tensor([1, 4, 0])
        _, feats = extract(model, x, ["layer3"])
        cam = class_activation_map(feats["layer3"], model.fc.weight, classes).detach()
        gc = grad_cam(model, model.layer3, x, classes)
        h, w = feats["layer3"].shape[-2:]
        assert gc.shape == (3, h, w)
        assert torch.allclose(gc, cam / (h * w), atol=1e-6, rtol=1e-4)
        assert cam.abs().max() > 1e-3  # the identity is not trivially 0 == 0

    def test_gradcheck(self):
        f = rand(2, 3, 2, 2, seed=53, dtype=torch.float64, requires_grad=True)
        w = rand(4, 3, seed=54, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b: class_activation_map(a, b, torch.tensor([3, 1])), (f, w))

    def test_normalize_map(self):
        m = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]], [[7.0, 7.0], [7.0, 7.0]]])
        got = normalize_map(m)
        want = torch.tensor([[[0.0, 0.5], [0.25, 1.0]], [[0.0] * 2] * 2, [[0.0] * 2] * 2])
        assert torch.equal(got, want)
        assert torch.equal(normalize_map(m[0]), want[0])
        assert torch.equal(normalize_map(m[:, None]), want[:, None])
        assert torch.isfinite(normalize_map(torch.zeros(2, 3, 3))).all()

    def test_bad_inputs(self):
        f, w = rand(2, 3, 2, 2), rand(4, 3)
        with pytest.raises(ValueError, match=r"features must have shape \(B, C, H, W\).*\(3, 2, 2\)"):
            class_activation_map(f[0], w, [0])
        with pytest.raises(ValueError, match=r"classes must have shape \(2,\).*\(3,\)"):
            class_activation_map(f, w, [0, 1, 2])
        with pytest.raises(ValueError, match=r"fc_weight must have shape \(K, 3\).*\(4, 5\)"):
            class_activation_map(f, rand(4, 5), [0, 1])
        with pytest.raises(ValueError, match=r"classes must lie in \[0, 4\)"):
            class_activation_map(f, w, [0, 4])
        with pytest.raises(TypeError, match=r"classes must hold integer class indices"):
            class_activation_map(f, w, torch.tensor([0.0, 1.0]))
        model = tiny_student().eval()
        with pytest.raises(ValueError, match=r"layer_module must be a sub-module of model"):
            grad_cam(model, torch.nn.ReLU(), torch.rand(2, 3, 8, 8), [0, 1])
        with pytest.raises(ValueError, match=r"x must have shape \(B, 3, H, W\)"):
            grad_cam(model, model.layer3, torch.rand(3, 8, 8), [0])
        with pytest.raises(ValueError, match=r"m must have shape"):
            normalize_map(torch.zeros(5))

    def test_bf16_autocast(self):
        f, w = rand(2, 8, 4, 4, seed=55, relu=True), rand(10, 8, seed=56)
        ref = class_activation_map(f, w, [3, 7])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = class_activation_map(f.bfloat16(), w, [3, 7])
        assert got.dtype == torch.float32
        assert torch.allclose(got, ref, rtol=5e-2, atol=5e-2)


def test_teacher_features_from_inference_mode():
    """The trainer runs the teacher under torch.inference_mode(); every loss must accept its outputs."""
    torch.manual_seed(0)
    s, t = tiny_student(), tiny_teacher().eval()
    x = torch.rand(4, 3, 16, 16, generator=gen(70))
    names = ["layer1", "layer2", "layer3"]
    zs, fs = extract(s, x, names)
    with torch.inference_mode():
        zt, ft = extract(t, x, names)
    assert zt.is_inference()
    loss = (kd_loss(zs, zt) + at_loss(fs["layer2"], ft["layer3"]) + at_loss_paper(fs["layer3"], ft["layer3"])
            + fsp_loss([fsp_matrix(fs["layer1"], fs["layer2"])], [fsp_matrix(ft["layer1"], ft["layer2"])])
            + kdsvd_loss([fs[n] for n in names], [ft[n] for n in names]))
    loss.backward()
    assert torch.isfinite(loss) and s.fc.weight.grad is not None and s.layer1.conv.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@cuda
def test_cuda_matches_cpu_and_runs_under_bf16_autocast():
    dev = torch.device("cuda")
    zs, zt = rand(8, 10, seed=60), rand(8, 10, seed=61)
    fs, ft = svd_lists(dtype=torch.float32, relu=True)
    a, b = rand(4, 8, 8, 8, seed=62, relu=True), rand(4, 16, 4, 4, seed=63, relu=True)
    cpu = {
        "kd": kd_loss(zs, zt),
        "at": at_loss(a, b),
        "at_paper": at_loss_paper(a, b),
        "fsp": fsp_loss([fsp_matrix(a, b)], [fsp_matrix(a * 0.5, b)]),
        "kdsvd": kdsvd_loss(fs, ft),
        "cam": class_activation_map(b, rand(10, 16, seed=64), [1, 2, 3, 4]).sum(),
    }

    def run(to):
        return {
            "kd": kd_loss(to(zs), to(zt)),
            "at": at_loss(to(a), to(b)),
            "at_paper": at_loss_paper(to(a), to(b)),
            "fsp": fsp_loss([fsp_matrix(to(a), to(b))], [fsp_matrix(to(a) * 0.5, to(b))]),
            "kdsvd": kdsvd_loss([to(f) for f in fs], [to(f) for f in ft]),
            "cam": class_activation_map(to(b), to(rand(10, 16, seed=64)), [1, 2, 3, 4]).sum(),
        }

    gpu = run(lambda x: x.to(dev))
    for name, value in gpu.items():
        assert value.device.type == "cuda"
        assert value.item() == pytest.approx(cpu[name].item(), rel=1e-3, abs=1e-5), name
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = run(lambda x: x.to(dev, torch.bfloat16))
    for name, value in low.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name
        assert value.item() == pytest.approx(cpu[name].item(), rel=0.1, abs=1e-3), name
    model = tiny_student(num_classes=5).to(dev).eval()
    x = torch.rand(2, 3, 16, 16, device=dev)
    _, feats = extract(model, x, ["layer3"])
    cam = class_activation_map(feats["layer3"], model.fc.weight, [0, 3]).detach()
    assert torch.allclose(grad_cam(model, model.layer3, x, [0, 3]), cam / 16, atol=1e-5, rtol=1e-3)
