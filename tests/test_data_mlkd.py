"""kdteach.data.strong_augment: MLKD's strong view as batched tensor operations (checked against PIL)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from kdteach.data import STRONG_AUGMENT_OPS, _augment_op, strong_augment


def images(b=6, size=16, seed=0):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pil_image():
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return arr, Image.fromarray(arr)


def ours(arr, op, v):
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    return _augment_op(x, op, torch.tensor([float(v)]))[0].permute(1, 2, 0).numpy() * 255


@pytest.mark.parametrize("op, v, reference, tol", [
    ("brightness", 0.5, lambda im: ImageEnhance.Brightness(im).enhance(0.5), 1.0),
    ("color", 0.3, lambda im: ImageEnhance.Color(im).enhance(0.3), 1.5),
    ("contrast", 0.3, lambda im: ImageEnhance.Contrast(im).enhance(0.3), 1.5),
    ("sharpness", 0.2, lambda im: ImageEnhance.Sharpness(im).enhance(0.2), 1.5),
    ("solarize", 128, lambda im: ImageOps.solarize(im, 128), 0.01),
    ("posterize", 5, lambda im: ImageOps.posterize(im, 5), 0.01),
    ("autocontrast", 0, ImageOps.autocontrast, 1.0),
    ("translate_x", 0.25, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 4, 0, 1, 0)), 0.01),
    ("translate_y", -0.25, lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, -4)), 0.01),
    ("rotate", 90, lambda im: im.rotate(90), 0.01),
])
def test_operations_match_pil(pil_image, op, v, reference, tol):
    arr, im = pil_image
    got, want = ours(arr, op, v), np.asarray(reference(im)).astype(float)
    assert np.abs(got - want).max() <= tol, op


def test_bilinear_operations_match_pil_away_from_the_edges(pil_image):
    arr, im = pil_image
    rot = np.asarray(im.rotate(20, resample=Image.BILINEAR)).astype(float)
    assert np.abs(ours(arr, "rotate", 20) - rot)[3:-3, 3:-3].max() <= 1.5
    shear = np.asarray(im.transform(im.size, Image.AFFINE, (1, 0.2, 0, 0, 1, 0), resample=Image.BILINEAR)).astype(float)
    assert np.abs(ours(arr, "shear_x", 0.2) - shear)[:, :11].max() <= 1.5      # PIL's edge column differs
    # equalize: the textbook CDF mapping, within a few grey levels of PIL's and monotone per channel
    eq = ours(arr, "equalize", 0)
    assert np.abs(eq - np.asarray(ImageOps.equalize(im)).astype(float)).mean() < 4
    for c in range(3):
        order = np.argsort(arr[..., c].ravel(), kind="stable")
        assert np.all(np.diff(eq[..., c].ravel()[order]) >= -1e-6)


def test_identity_without_operations_and_cutout():
    x = images()
    assert torch.equal(strong_augment(x, gen(), num_ops=0, cutout=0.0), x)
    assert torch.equal(_augment_op(x, "identity", torch.rand(6)), x)


def test_cutout_paints_one_grey_square_and_nothing_else():
    x = images(b=32)
    out = strong_augment(x, gen(3), num_ops=0, cutout=0.5)
    gray = torch.tensor([125 / 255, 123 / 255, 114 / 255]).view(1, 3, 1, 1)
    changed = (out != x).any(dim=1)                                            # (B, H, W)
    assert torch.all((out == gray).all(dim=1)[changed])                        # changed pixels are grey
    for b in range(32):
        rows, cols = changed[b].any(dim=1).nonzero(), changed[b].any(dim=0).nonzero()
        if len(rows):
            h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
            assert h <= 8 and w <= 8                                           # side <= 0.5 * 16
            assert int(changed[b].sum()) == h * w                              # one axis-aligned square
    assert changed.any(dim=(1, 2)).float().mean() > 0.5


def test_deterministic_given_the_generator_and_keeps_shape_dtype_range():
    x = images(b=64)
    a, b = strong_augment(x, gen(7)), strong_augment(x, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, strong_augment(x, gen(8)))
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert a.min() >= 0 and a.max() <= 1
    assert (a - x).abs().mean() > 0.05                                         # a strong view, not a copy
    assert len(STRONG_AUGMENT_OPS) == 14


def test_each_image_gets_its_drawn_operations_in_turn():
    # reference: one image at a time, the same draws (op index then magnitude per slot, then Cutout)
    x = images(b=40, seed=2)
    got = strong_augment(x, gen(11), num_ops=2, cutout=0.0)
    g = gen(11)
    names = list(STRONG_AUGMENT_OPS)
    draws = [(torch.randint(0, len(names), (40,), generator=g), torch.rand(40, generator=g)) for _ in range(2)]
    for b in range(40):
        y = x[b:b + 1]
        for pick, u in draws:
            lo, hi = STRONG_AUGMENT_OPS[names[int(pick[b])]]
            y = _augment_op(y, names[int(pick[b])], (lo + (hi - lo) * u[b:b + 1]))
        assert torch.allclose(got[b:b + 1], y, atol=1e-5), (b, [names[int(p[b])] for p, _ in draws])


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=torch.rand(3, 16, 16)), r"images must be a \(B, 3, H, W\) tensor, got Tensor \(3, 16, 16\)"),
    (dict(images=torch.rand(2, 1, 16, 16)), r"images must be a \(B, 3, H, W\) tensor"),
    (dict(images=torch.zeros(2, 3, 8, 8, dtype=torch.uint8)), r"images must be float in \[0, 1\]"),
    (dict(num_ops=-1), "num_ops must be an int >= 0, got -1"),
    (dict(num_ops=1.5), "num_ops must be an int >= 0"),
    (dict(cutout=1.5), r"cutout must be a number in \[0, 1\], got 1.5"),
])
def test_bad_input(kwargs, match):
    args = dict(images=images(2), num_ops=2, cutout=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        strong_augment(args["images"], gen(), num_ops=args["num_ops"], cutout=args["cutout"])
    with pytest.raises(ValueError, match="op must be one of"):
        _augment_op(images(1), "invert", torch.zeros(1))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x = images(b=32)
    cpu = strong_augment(x, gen(5))
    gpu = strong_augment(x.cuda(), gen(5))
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
