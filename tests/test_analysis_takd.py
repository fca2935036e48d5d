"""kdteach.analysis.prediction_agreement: the takd notebook's top-1 agreement between two classifiers."""

import pytest
import torch

from kdteach.analysis import prediction_agreement
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


class Fixed(torch.nn.Module):
    """Returns fixed logits for the images, in order (ignores pixel values; batches sliced by a counter)."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.seen = logits, 0
        self.lin = torch.nn.Linear(1, 1)   # a parameter, so the device can be read

    def forward(self, xb):
        out = self.logits[self.seen:self.seen + len(xb)]
        self.seen += len(xb)
        return out


def test_agreement_counts_equal_argmax_over_all_batches():
    a = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    b = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    x = images(5)
    # argmax a: 0 1 2 0 1; argmax b: 0 2 2 1 1 -> 3 of 5 agree; batches of 2, 2, 1
    assert prediction_agreement(Fixed(a), Fixed(b), x, batch_size=2) == pytest.approx(60.0)
    assert prediction_agreement(Fixed(a), Fixed(a.clone()), x, batch_size=3) == pytest.approx(100.0)


def test_agreement_of_a_model_with_itself_is_100_and_modes_are_restored():
    student, teacher = build_model("tiny_student", 10, seed=1).train(), build_model("tiny_teacher", 10, seed=0).eval()
    x = images(9)
    assert prediction_agreement(teacher, teacher, x) == pytest.approx(100.0)
    got = prediction_agreement(student, teacher, x, batch_size=4)
    assert student.training and not teacher.training
    student.eval()
    with torch.no_grad():
        expected = 100.0 * (student(x).argmax(1) == teacher(x).argmax(1)).float().mean().item()
    assert got == pytest.approx(expected)
    assert 0.0 <= got <= 100.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(x=torch.randn(3, 16, 16)), r"x.*\(N, 3, H, W\)"),
    (dict(x=torch.randn(0, 3, 16, 16)), r"x must not be empty"),
])
def test_agreement_bad_input(kwargs, match):
    student, teacher = build_model("tiny_student", 10, seed=1), build_model("tiny_teacher", 10, seed=0)
    args = dict(x=images(2), batch_size=500) | kwargs
    with pytest.raises(ValueError, match=match):
        prediction_agreement(student, teacher, args["x"], batch_size=args["batch_size"])


def test_agreement_logits_of_different_shapes():
    with pytest.raises(ValueError, match=r"same shape \(B, K\), got \(2, 10\) and \(2, 100\)"):
        prediction_agreement(build_model("tiny_student", 10), build_model("tiny_student", 100), images(2))
