"""kdteach.analysis.sp_distance: the mean of sp_loss over full batches, computed here batch by batch."""

from __future__ import annotations

import pytest
import torch

from kdteach.analysis import sp_distance
from kdteach.features import extract
from kdteach.losses import sp_loss
from kdteach.models import create


def test_mean_over_full_batches_and_zero_for_the_same_network():
    torch.manual_seed(0)
    s, t = create("tiny_student", 10).eval(), create("tiny_teacher", 10).eval()
    x = torch.randn(21, 3, 16, 16)
    with torch.no_grad():
        want = []
        for i in (0, 8):                                   # 21 images, batches of 8: the last 5 are dropped
            _, fs = extract(s, x[i:i + 8], ["layer3"])
            _, ft = extract(t, x[i:i + 8], ["layer3"])
            want.append(sp_loss(fs["layer3"], ft["layer3"]).item())
    assert sp_distance(s, t, x, "layer3", "layer3", batch_size=8) == pytest.approx(sum(want) / 2, rel=1e-5)
    assert sp_distance(t, t, x, "layer3", "layer3", batch_size=8) == pytest.approx(0.0, abs=1e-10)
    assert sp_distance(s, t, x, "layer2", "layer3", batch_size=8) > 0       # other map sizes are fine


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 1}, "batch_size must be >= 2"),
    ({"batch_size": 64}, "x must hold at least batch_size = 64 images"),
    ({"x": torch.randn(3, 16, 16)}, r"x must have shape \(N, 3, H, W\)"),
])
def test_bad_input(kwargs, match):
    s, t = create("tiny_student", 10).eval(), create("tiny_teacher", 10).eval()
    args = {"x": torch.randn(10, 3, 16, 16), "batch_size": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        sp_distance(s, t, args["x"], "layer3", "layer3", batch_size=args["batch_size"])
