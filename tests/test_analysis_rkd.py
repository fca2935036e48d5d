"""kdteach.analysis.relation_distance: RKD's distance and angle terms between two models on an image set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kdteach.train as T
from kdteach import analysis
from kdteach.features import extract

pytestmark = pytest.mark.usefixtures("offline_data")


def _huber(a, b):
    d = np.abs(a - b)
    return float(np.where(d < 1.0, 0.5 * d ** 2, d - 0.5).mean())


def _terms(s, t):
    """Reference RKD terms of one batch in numpy float64: explicit distances and triplet cosines."""
    def dist(e):
        d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))
        return d / d[~np.eye(len(e), dtype=bool)].mean()

    def angles(e):
        b = len(e)
        out = np.zeros((b, b, b))
        for i in range(b):
            for j in range(b):
                for k in range(b):
                    if j != i and k != i:
                        u, v = e[j] - e[i], e[k] - e[i]
                        out[i, j, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        return out

    return _huber(dist(s), dist(t)), _huber(angles(s), angles(t))


def _pool(model, x):
    with torch.no_grad():
        _, f = extract(model.eval(), x, "pool")
    return f["pool"].double().numpy()


def test_matches_a_reference_over_full_batches_and_is_zero_for_the_teacher(batch):
    x, _ = batch                                          # 16 images
    student = T.build_model("tiny_student", 10, 0).train()
    teacher = T.build_model("tiny_teacher", 10, 1).eval()
    got = analysis.relation_distance(student, teacher, x, batch_size=6)
    assert student.training and not teacher.training      # modes restored
    assert got["batches"] == 2                            # 16 images: two full batches of 6, the last 4 dropped
    fs, ft = _pool(student, x), _pool(teacher, x)
    want = [_terms(fs[i:i + 6], ft[i:i + 6]) for i in (0, 6)]
    assert got["distance"] == pytest.approx(np.mean([d for d, _ in want]), rel=1e-4)
    assert got["angle"] == pytest.approx(np.mean([a for _, a in want]), rel=1e-4)
    assert got["loss"] == pytest.approx(25 * got["distance"] + 50 * got["angle"])
    assert got["distance"] > 0 and got["angle"] > 0
    same = analysis.relation_distance(teacher, teacher, x, batch_size=8, distance_weight=1.0, angle_weight=0.0)
    assert same["distance"] == pytest.approx(0.0, abs=1e-6) and same["angle"] == pytest.approx(0.0, abs=1e-6)
    small = analysis.relation_distance(student, teacher, x[:5], batch_size=128)   # fewer images: one batch
    d, a = _terms(fs[:5], ft[:5])
    assert small["batches"] == 1 and small["distance"] == pytest.approx(d, rel=1e-4)
    assert small["angle"] == pytest.approx(a, rel=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 1}, "batch_size and the number of images in x must be >= 2"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"x": torch.randn(1, 3, 16, 16)}, r"must be >= 2, got batch_size=128 and x of shape \(1, 3, 16, 16\)"),
    ({"x": torch.randn(3, 16, 16)}, "x"),
])
def test_bad_inputs(pair, batch, kwargs, match):
    args = {"x": batch[0]} | kwargs
    with pytest.raises(ValueError, match=match):
        analysis.relation_distance(*pair, **args)
