"""kdteach.analysis.soft_target_kl: the kd notebook's mechanism check (KL to the teacher's softened outputs)."""

import pytest
import torch

from kdteach.analysis import soft_target_kl
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_soft_target_kl_is_the_image_mean_of_the_kl_at_temperature_t():
    student, teacher = build_model("tiny_student", 10, seed=1).train(), build_model("tiny_teacher", 10, seed=0).eval()
    x = images()
    got = soft_target_kl(student, teacher, x, temperature=4.0, batch_size=3)   # batches of 3, 3, 1
    assert student.training and not teacher.training                           # modes restored
    student.eval()
    with torch.no_grad():
        p_t = torch.softmax(teacher(x) / 4.0, dim=1)
        log_p_s = torch.log_softmax(student(x) / 4.0, dim=1)
    per_image = (p_t * (p_t.log() - log_p_s)).sum(dim=1)                       # KL(p_t || p_s), (N,)
    assert got == pytest.approx(per_image.mean().item(), rel=1e-5)
    assert got > 0
    # the temperature matters: a different T gives a different value
    assert soft_target_kl(student, teacher, x, temperature=1.0) != pytest.approx(got, rel=1e-3)


def test_soft_target_kl_is_zero_for_the_teacher_itself_and_shrinks_towards_it():
    teacher = build_model("tiny_teacher", 10, seed=0).eval()
    x = images()
    assert soft_target_kl(teacher, teacher, x, temperature=4.0) == pytest.approx(0.0, abs=1e-7)

    class Mix(torch.nn.Module):
        """Logits (1 - w)·z_other + w·z_teacher: w = 1 is the teacher."""

        def __init__(self, other, w):
            super().__init__()
            self.other, self.w = other, w

        def forward(self, xb):
            return (1 - self.w) * self.other(xb) + self.w * teacher(xb)

    other = build_model("tiny_student", 10, seed=2).eval()
    values = [soft_target_kl(Mix(other, w), teacher, x, temperature=4.0) for w in (0.0, 0.5, 0.9)]
    assert values[0] > values[1] > values[2] > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature"),
    (dict(batch_size=0), "batch_size"),
    (dict(x=torch.randn(3, 16, 16)), r"x.*\(N, 3, H, W\)"),
    (dict(x=torch.randn(0, 3, 16, 16)), r"x must not be empty, got shape \(0, 3, 16, 16\)"),
])
def test_soft_target_kl_bad_input(kwargs, match):
    student, teacher = build_model("tiny_student", 10, seed=1), build_model("tiny_teacher", 10, seed=0)
    args = dict(x=images(2), temperature=4.0, batch_size=500) | kwargs
    with pytest.raises(ValueError, match=match):
        soft_target_kl(student, teacher, args["x"], args["temperature"], batch_size=args["batch_size"])
