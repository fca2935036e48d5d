"""kdteach.analysis.exit_divergence: each BYOT exit's KL to the deepest classifier and top-1 agreement."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdteach.analysis import exit_divergence
from kdteach.features import capture
from kdteach.methods import get_method
from kdteach.methods.byot import BYOT
from kdteach.train import build_model


@pytest.fixture
def net():
    method = get_method("byot")
    student = build_model("tiny_student", 10, seed=0)
    torch.manual_seed(0)
    extras = method.build_extras(student, None, None)
    x = torch.randn(9, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 3
    return method, student, extras, x


def by_hand(method, student, extras, x, t):
    student.eval(), extras.eval()
    names = method.student_features(student)
    with torch.no_grad(), capture(student, names) as store:
        z_c = student(x)
        exits = {f"exit{k}": extras[f"exit{k}"](store[n])[0] for k, n in enumerate(names[:-1], start=1)}
    p_c = (z_c / t).softmax(1)
    return {k: {"kl": float((p_c * (p_c.log() - (z / t).log_softmax(1))).sum(1).mean()),
                "agreement": float((z.argmax(1) == z_c.argmax(1)).float().mean())} for k, z in exits.items()}


@pytest.mark.parametrize("batch_size", [500, 4])
def test_matches_the_definition_and_restores_modes(net, batch_size):
    method, student, extras, x = net
    student.train(), extras.train()
    got = exit_divergence(student, extras, method, x, 3.0, batch_size=batch_size)
    assert student.training and extras.training              # modes restored
    want = by_hand(method, student, extras, x, 3.0)
    assert list(got) == ["exit1", "exit2"]
    for k in want:
        assert got[k]["kl"] == pytest.approx(want[k]["kl"], rel=1e-4, abs=1e-7)
        assert got[k]["agreement"] == pytest.approx(want[k]["agreement"])
        assert got[k]["kl"] > 0 and 0.0 <= got[k]["agreement"] <= 1.0


class _CopyDeepest(BYOT):
    """An exit that reproduces the deepest classifier exactly: KL 0, agreement 1."""

    def heads(self, x, student, extras):
        z = student(x)
        return {"exit1": z.clone(), "exit2": z + 0.5 * torch.randn_like(z), "ensemble": z}


def test_an_exit_equal_to_the_deepest_classifier_is_at_zero(net):
    _m, student, extras, x = net
    got = exit_divergence(student, extras, _CopyDeepest(), x, 2.0)
    assert set(got) == {"exit1", "exit2"}                     # the ensemble is not an exit
    assert got["exit1"]["kl"] == pytest.approx(0.0, abs=1e-7) and got["exit1"]["agreement"] == 1.0
    assert got["exit2"]["kl"] > 1e-4


def test_bad_inputs(net):
    method, student, extras, x = net
    with pytest.raises(ValueError, match="temperature"):
        exit_divergence(student, extras, method, x, 0.0)
    with pytest.raises(ValueError, match="x"):
        exit_divergence(student, extras, method, x[0], 3.0)
    with pytest.raises(ValueError, match="batch_size"):
        exit_divergence(student, extras, method, x, 3.0, batch_size=0)

    class NoExits(BYOT):
        def heads(self, x, student, extras):
            return {"ensemble": student(x)}

    with pytest.raises(ValueError, match="no exit<k> head"):
        exit_divergence(student, extras, NoExits(), x, 3.0)
