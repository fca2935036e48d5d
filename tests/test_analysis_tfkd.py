"""kdteach.analysis.virtual_teacher_kl and prediction_entropy: the tfkd notebook's measurements."""

import math

import pytest
import torch

from kdteach.analysis import prediction_entropy, virtual_teacher_kl
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


class Fixed(torch.nn.Module):
    """Returns the same logits row for every image (scaled by ``scale``)."""

    def __init__(self, row, scale=1.0):
        super().__init__()
        self.row, self.scale = torch.as_tensor(row, dtype=torch.float32), scale
        self.dummy = torch.nn.Parameter(torch.zeros(1))     # a device for the analysis helpers

    def forward(self, xb):
        return self.scale * self.row.expand(len(xb), -1)


def test_virtual_teacher_kl_is_the_image_mean_of_the_kl_to_softmax_pd_over_t():
    model = build_model("tiny_student", 10, seed=1).train()
    x, y = images(), torch.tensor([0, 1, 2, 3, 4, 5, 9])
    got = virtual_teacher_kl(model, x, y, correct_prob=0.9, temperature=5.0, batch_size=3)   # batches 3, 3, 1
    assert model.training                                                   # mode restored
    model.eval()
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=1)
    pd = torch.full((7, 10), 0.1 / 9).scatter_(1, y[:, None], 0.9)        # p^d, by hand
    q = torch.softmax(pd / 5.0, dim=1)
    assert got == pytest.approx((q * (q.log() - log_p)).sum(1).mean().item(), rel=1e-5)
    assert got > 0


def test_virtual_teacher_kl_is_lower_for_less_confident_predictions():
    # the code's target is nearly uniform: flattening the same logits brings a model closer to it
    x, y = images(4), torch.tensor([2, 2, 2, 2])
    row = [0.0, 1.0, 5.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0]
    values = [virtual_teacher_kl(Fixed(row, s), x, y) for s in (1.0, 0.5, 0.1)]
    assert values[0] > values[1] > values[2] > 0
    uniform = virtual_teacher_kl(Fixed([0.0] * 10), x, y)
    assert uniform < values[2]


def test_prediction_entropy_bounds_and_value():
    x = images(5)
    assert prediction_entropy(Fixed([0.0] * 10), x) == pytest.approx(math.log(10), rel=1e-6)
    assert prediction_entropy(Fixed([0.0, 50.0, 0.0]), x) == pytest.approx(0.0, abs=1e-6)
    row = torch.tensor([1.0, 2.0, 0.5])
    p = torch.softmax(row / 2.0, 0)
    assert prediction_entropy(Fixed(row), x, temperature=2.0, batch_size=2) == pytest.approx(
        float(-(p * p.log()).sum()), rel=1e-6)
    model = build_model("tiny_student", 10, seed=0)
    h1, h4 = prediction_entropy(model, x), prediction_entropy(model, x, temperature=4.0)
    assert 0 < h1 < h4 <= math.log(10) + 1e-6


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y: virtual_teacher_kl(m, x, y[:3]), r"labels must be a \(7,\) tensor of class indices"),
    (lambda m, x, y: virtual_teacher_kl(m, x, y + 5), r"target must hold class indices in \[0, 10\)"),
    (lambda m, x, y: virtual_teacher_kl(m, x, y, temperature=0.0), "temperature"),
    (lambda m, x, y: virtual_teacher_kl(m, x, y, correct_prob=1.5), "correct_prob"),
    (lambda m, x, y: virtual_teacher_kl(m, x[0], y), r"x.*\(N, 3, H, W\)"),
    (lambda m, x, y: prediction_entropy(m, x, temperature=-1.0), "temperature"),
    (lambda m, x, y: prediction_entropy(m, x, batch_size=0), "batch_size"),
    (lambda m, x, y: prediction_entropy(m, torch.randn(0, 3, 16, 16)), r"x must not be empty"),
])
def test_bad_input(call, match):
    model = build_model("tiny_student", 10, seed=0)
    with pytest.raises(ValueError, match=match):
        call(model, images(), torch.tensor([0, 1, 2, 3, 4, 5, 9]))
