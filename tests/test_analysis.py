"""kdteach.analysis: attention maps, attention distance, map correlation; results.mean_std."""

import math

import pytest
import torch

from kdteach.analysis import attention_distance, attention_maps, map_correlation
from kdteach.features import extract
from kdteach.losses import at_loss, attention_map
from kdteach.results import mean_std
from kdteach.train import build_model


def images(n=6, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_attention_maps_match_the_loss_functions_and_keep_the_mode():
    model = build_model("tiny_teacher", 10, seed=0).train()
    x = images()
    maps = attention_maps(model, x, ["layer1", "layer3"], mode="max_p", p=2)
    assert list(maps) == ["layer1", "layer3"] and model.training          # training mode restored
    model.eval()
    with torch.no_grad():
        _, feats = extract(model, x, ["layer1", "layer3"])
    for name, want_shape in (("layer1", (6, 16, 16)), ("layer3", (6, 4, 4))):
        assert maps[name].shape == want_shape
        assert torch.allclose(maps[name], attention_map(feats[name], p=2, mode="max_p"))
    with pytest.raises(ValueError, match="stages"):
        attention_maps(model, x, [])
    with pytest.raises(ValueError, match="x"):
        attention_maps(model, x[0], ["layer1"])


def test_attention_distance_is_the_image_weighted_mean_of_at_loss():
    student, teacher = build_model("tiny_student", 10, seed=1).eval(), build_model("tiny_teacher", 10, seed=0).eval()
    x = images(7)
    pairs = [("layer1", "layer1"), ("layer3", "layer3")]
    got = attention_distance(student, teacher, x, pairs, batch_size=3)      # batches of 3, 3, 1
    with torch.no_grad():
        _, fs = extract(student, x, ["layer1", "layer3"])
        _, ft = extract(teacher, x, ["layer1", "layer3"])
    for s, t in pairs:
        want = at_loss(fs[s], ft[t]).item()
        assert got[t][0] == pytest.approx(want, rel=1e-5)
        assert got[t][1] == fs[s].shape[-2] * fs[s].shape[-1]
        assert 0.0 <= got[t][0] <= 2 / got[t][1]                           # unit maps: at most 2/(h·w)
    same = attention_distance(teacher, teacher, x, pairs)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v, _ in same.values())
    with pytest.raises(ValueError, match="pairs"):
        attention_distance(student, teacher, x, [])
    with pytest.raises(ValueError, match="batch_size"):
        attention_distance(student, teacher, x, pairs, batch_size=0)


def test_map_correlation_values_resize_and_constant_maps():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(4, 4, 4, generator=g)
    assert torch.allclose(map_correlation(a, a), torch.ones(4))
    assert torch.allclose(map_correlation(a, 1 - a), -torch.ones(4))
    assert torch.allclose(map_correlation(a, 5 * a + 2), torch.ones(4))      # invariant to scale and shift
    flat = a.clone()
    flat[2] = 0.0                                                           # an all-zero map: 0, not NaN
    c = map_correlation(a, flat)
    assert c[2].item() == 0.0 and torch.isfinite(c).all()
    # numpy-style reference for one image
    b = torch.rand(4, 4, 4, generator=g)
    x, y = a[1].flatten() - a[1].mean(), b[1].flatten() - b[1].mean()
    assert map_correlation(a, b)[1].item() == pytest.approx((x @ y / (x.norm() * y.norm())).item(), rel=1e-5)
    big = torch.nn.functional.interpolate(a[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    assert map_correlation(a, big).shape == (4,)                           # resized to a's size
    with pytest.raises(ValueError, match="same images"):
        map_correlation(a, a[:2])
    with pytest.raises(ValueError, match="b"):
        map_correlation(a, a[0])


def test_mean_std():
    assert mean_std([2.0]) == (2.0, 0.0)
    m, s = mean_std([1.0, 2.0, 4.0])
    assert m == pytest.approx(7 / 3) and s == pytest.approx(math.sqrt(((1 - m) ** 2 + (2 - m) ** 2 + (4 - m) ** 2) / 2))
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
