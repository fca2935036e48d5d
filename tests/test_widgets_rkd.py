"""kdteach.widgets.rkd driven headlessly: the invariance explorer's state against potentials computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdteach.losses import rkd_terms
from kdteach.widgets.rkd import RKDInvarianceExplorer, rkd_invariance_state, transform_embedding


@pytest.fixture
def embeddings():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 3, generator=g)
    return teacher + 0.3 * torch.randn(6, 3, generator=g), teacher


def _reference(s, t):
    """The state's quantities: the RKD terms from kdteach.losses.rkd_terms (golden-tested in
    test_losses_relation), the plain ones from numpy float64 (no library)."""
    d, a = rkd_terms(s, t)
    s, t = s.double().numpy(), t.double().numpy()
    ds = np.sqrt(((s[:, None] - s[None]) ** 2).sum(-1))
    dt = np.sqrt(((t[:, None] - t[None]) ** 2).sum(-1))
    diff = np.abs(ds - dt)
    return {"distance": float(d), "angle": float(a), "raw_distance": float(np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5).mean()),
            "l2": float(((s - t) ** 2).mean())}


def test_transform_is_a_similarity():
    e = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    out = transform_embedding(e, scale=2.0, shift=math.sqrt(3), rotation=90.0)
    assert torch.allclose(out, torch.tensor([[1.0, 3.0, 5.0], [-1.0, 1.0, 1.0]], dtype=torch.float64))


def test_rkd_terms_stay_put_while_the_plain_quantities_move(embeddings):
    s, t = embeddings
    state = rkd_invariance_state(s, t, scale=3.0, shift=2.0, rotation=40.0)
    ref, now = _reference(s, t), _reference(transform_embedding(s.double(), 3.0, 2.0, 40.0), t)
    for q in ("distance", "angle", "raw_distance", "l2"):
        assert state["reference"][q] == pytest.approx(ref[q], rel=1e-6, abs=1e-12)
        assert state["values"][q] == pytest.approx(now[q], rel=1e-6, abs=1e-12)
    for q in ("distance", "angle", "rkd"):                 # invariant: the same numbers
        assert state["values"][q] == pytest.approx(state["reference"][q], rel=1e-9)
    assert state["reference"]["distance"] > 0 and state["reference"]["angle"] > 0
    assert state["values"]["raw_distance"] > 2 * state["reference"]["raw_distance"]   # moves with the scale
    assert state["values"]["l2"] > 2 * state["reference"]["l2"]
    assert state["values"]["rkd"] == pytest.approx(25 * state["values"]["distance"] + 50 * state["values"]["angle"])
    other = rkd_invariance_state(s[:, :2], t)              # another dimension: no plain L2
    assert other["values"]["l2"] is None and other["values"]["distance"] > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": 0.0}, "scale must be > 0, got 0.0"),
    ({"rotation": float("nan")}, "rotation must be a finite number"),
    ({"student": torch.randn(5, 3)}, r"student and teacher must embed the same examples, got shapes \(5, 3\) and \(6, 3\)"),
    ({"student": torch.randn(6, 1)}, r"student must be a \(B, D\) float tensor with B >= 3 examples and D >= 2"),
    ({"teacher": torch.randn(2, 3)}, r"teacher must be a \(B, D\) float tensor with B >= 3"),
])
def test_bad_input(embeddings, kwargs, match):
    args = {"student": embeddings[0], "teacher": embeddings[1]} | kwargs
    with pytest.raises(ValueError, match=match):
        rkd_invariance_state(**args)


def test_widget_updates(embeddings):
    w = RKDInvarianceExplorer(*embeddings, labels=[0, 1, 2, 0, 1, 2])
    first = dict(w.state["values"])
    assert w.last_figure is not None and len(w.output.outputs) == 2
    w.scale.value = 5.0
    w.rotation.value = 120.0
    assert w.state["scale"] == pytest.approx(5.0) and w.state["rotation"] == 120.0
    assert w.state["values"]["angle"] == pytest.approx(first["angle"], rel=1e-9)
    assert w.state["values"]["l2"] != pytest.approx(first["l2"])
    assert "RKD angle term" in w.output.outputs[1]["data"]["text/plain"]
    with pytest.raises(ValueError, match="labels must have one entry per example"):
        RKDInvarianceExplorer(*embeddings, labels=[0])
