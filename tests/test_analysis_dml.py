"""kdteach.analysis.symmetric_kl: the dml notebook's mechanism check (how far apart two networks' predictions are)."""

import pytest
import torch

from kdteach.analysis import soft_target_kl, symmetric_kl
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_symmetric_kl_is_the_image_mean_of_both_directions():
    a, b = build_model("tiny_student", 10, seed=1).train(), build_model("tiny_student", 10, seed=2).eval()
    x = images()
    got = symmetric_kl(a, b, x, temperature=2.0, batch_size=3)                  # batches of 3, 3, 1
    assert a.training and not b.training                                        # modes restored
    a.eval()
    with torch.no_grad():
        log_pa, log_pb = torch.log_softmax(a(x) / 2.0, dim=1), torch.log_softmax(b(x) / 2.0, dim=1)
    kl_ab = (log_pa.exp() * (log_pa - log_pb)).sum(dim=1)                       # KL(p_a || p_b), (N,)
    kl_ba = (log_pb.exp() * (log_pb - log_pa)).sum(dim=1)
    assert got == pytest.approx(0.5 * (kl_ab + kl_ba).mean().item(), rel=1e-5)
    assert got > 0
    # the two directions differ, their mean does not depend on the order of the networks
    assert kl_ab.mean().item() != pytest.approx(kl_ba.mean().item(), rel=1e-3)
    assert symmetric_kl(b, a, x, temperature=2.0) == pytest.approx(got, rel=1e-5)
    # and it is the mean of the two soft_target_kl directions
    both = 0.5 * (soft_target_kl(a, b, x, 2.0) + soft_target_kl(b, a, x, 2.0))
    assert got == pytest.approx(both, rel=1e-5)
    assert symmetric_kl(a, b, x, temperature=1.0) != pytest.approx(got, rel=1e-3)


def test_symmetric_kl_is_zero_for_one_network_and_shrinks_as_two_merge():
    a = build_model("tiny_student", 10, seed=1).eval()
    b = build_model("tiny_student", 10, seed=2).eval()
    x = images()
    assert symmetric_kl(a, a, x) == pytest.approx(0.0, abs=1e-7)

    class Mix(torch.nn.Module):
        """Logits (1 - w)·z_b + w·z_a: w = 1 is network a."""

        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, xb):
            return (1 - self.w) * b(xb) + self.w * a(xb)

    values = [symmetric_kl(Mix(w), a, x) for w in (0.0, 0.5, 0.9)]
    assert values[0] > values[1] > values[2] > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature"),
    (dict(batch_size=0), "batch_size"),
    (dict(x=torch.randn(3, 16, 16)), r"x.*\(N, 3, H, W\)"),
    (dict(x=torch.randn(0, 3, 16, 16)), r"x must not be empty, got shape \(0, 3, 16, 16\)"),
])
def test_symmetric_kl_bad_input(kwargs, match):
    a, b = build_model("tiny_student", 10, seed=1), build_model("tiny_student", 10, seed=2)
    args = dict(x=images(2), temperature=1.0, batch_size=500) | kwargs
    with pytest.raises(ValueError, match=match):
        symmetric_kl(a, b, args["x"], args["temperature"], batch_size=args["batch_size"])


def test_symmetric_kl_rejects_networks_with_different_classes():
    a, b = build_model("tiny_student", 10, seed=1), build_model("tiny_student", 100, seed=2)
    with pytest.raises(ValueError, match=r"net_a and net_b logits must have the same shape \(B, K\), got \(2, 10\) and \(2, 100\)"):
        symmetric_kl(a, b, images(2))
