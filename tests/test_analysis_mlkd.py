"""kdteach.analysis.similarity_distance: the mlkd notebook's mechanism check (batch and class matrices)."""

import pytest
import torch

from kdteach.analysis import similarity_distance
from kdteach.train import build_model


def images(n=10, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _soft(z, t):
    e = torch.exp(z.double() / t)
    return e / e.sum(dim=1, keepdim=True)


def test_mean_over_full_batches_of_the_two_levels():
    student, teacher = build_model("tiny_student", 10, seed=1).train(), build_model("tiny_teacher", 10, seed=0).eval()
    x = images(10)
    got = similarity_distance(student, teacher, x, temperature=2.0, batch_size=4)   # batches 0-3, 4-7; 8-9 left out
    assert student.training and not teacher.training                                 # modes restored
    student.eval()
    with torch.no_grad():
        zs, zt = student(x), teacher(x)
    batch, cls = [], []
    for lo in (0, 4):
        ps, pt = _soft(zs[lo:lo + 4], 2.0), _soft(zt[lo:lo + 4], 2.0)
        batch.append(((pt @ pt.T - ps @ ps.T) ** 2).sum().item() / 4)
        cls.append(((pt.T @ pt - ps.T @ ps) ** 2).sum().item() / 10)
    assert got["batch"] == pytest.approx(sum(batch) / 2, rel=1e-4)
    assert got["class"] == pytest.approx(sum(cls) / 2, rel=1e-4)
    assert set(got) == {"batch", "class"} and got["batch"] > 0 and got["class"] > 0


def test_zero_for_the_teacher_and_shrinking_towards_it():
    teacher = build_model("tiny_teacher", 10, seed=0).eval()
    x = images(8)
    assert similarity_distance(teacher, teacher, x, batch_size=4) == pytest.approx({"batch": 0.0, "class": 0.0},
                                                                                    abs=1e-12)

    class Mix(torch.nn.Module):
        def __init__(self, other, w):
            super().__init__()
            self.other, self.w = other, w

        def forward(self, xb):
            return (1 - self.w) * self.other(xb) + self.w * teacher(xb)

    other = build_model("tiny_student", 10, seed=2).eval()
    values = [similarity_distance(Mix(other, w), teacher, x, temperature=1.0, batch_size=4) for w in (0.0, 0.5, 0.9)]
    for level in ("batch", "class"):
        assert values[0][level] > values[1][level] > values[2][level] > 0, level


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature"),
    (dict(batch_size=0), "batch_size must be a positive int"),
    (dict(batch_size=16), r"x must hold at least batch_size = 16 images, got shape \(8, 3, 16, 16\)"),
    (dict(x=torch.randn(3, 16, 16)), r"x.*\(N, 3, H, W\)"),
])
def test_bad_input(kwargs, match):
    student, teacher = build_model("tiny_student", 10, seed=1), build_model("tiny_teacher", 10, seed=0)
    args = dict(x=images(8), temperature=4.0, batch_size=4) | kwargs
    with pytest.raises(ValueError, match=match):
        similarity_distance(student, teacher, args["x"], args["temperature"], batch_size=args["batch_size"])
