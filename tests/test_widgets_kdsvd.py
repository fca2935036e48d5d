"""The SVD sign explorer (kdteach.widgets.kdsvd) driven headlessly against numbers computed here."""

from __future__ import annotations

import pytest
import torch

from kdteach.losses import kdsvd_loss, svd_features
from kdteach.widgets import SVDExplorer, svd_explorer_state
from kdteach.widgets.kdsvd import max_explorer_k


def features(seed, batch=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.relu(torch.randn(batch, c, h, h, generator=g, dtype=torch.float64))
            for c, h in ((6, 4), (8, 3), (10, 3))]


@pytest.fixture
def pair():
    return features(1), features(2)


def test_state_losses(pair):
    fs, ft = pair
    st = svd_explorer_state(fs, ft, k=1)
    assert st["loss_kdteach"] == pytest.approx(kdsvd_loss(fs, ft, 1).item(), rel=1e-12)
    # kdteach's vectors are already in the sign convention: no flip, both losses agree
    assert st["loss_library_sign"] == pytest.approx(st["loss_kdteach"], rel=1e-12) and st["ratio"] == pytest.approx(1.0)
    for stage in range(3):
        flipped = svd_explorer_state(fs, ft, k=2, flip_stage=stage)
        assert flipped["loss_kdteach"] == pytest.approx(kdsvd_loss(fs, ft, 2).item(), rel=1e-12)  # invariant
        assert flipped["loss_library_sign"] != pytest.approx(flipped["loss_kdteach"], rel=1e-3)   # not invariant
        assert flipped["ratio"] == pytest.approx(flipped["loss_library_sign"] / flipped["loss_kdteach"])


def test_state_vectors(pair):
    fs, ft = pair
    st = svd_explorer_state(fs, ft, k=2, flip_stage=1, stage=1, image=2, stage_names=["a", "b", "c"])
    _, v_t = svd_features(ft[1][2:3], 2)
    assert torch.allclose(st["teacher_vectors"][:, 0], -v_t[0, :, 0]) and torch.allclose(st["teacher_vectors"][:, 1], v_t[0, :, 1])
    assert st["student_vectors"].shape == (8, 2) and st["cosines"].shape == (2,)
    cos = (st["student_vectors"] * st["teacher_vectors"]).sum(0)
    assert torch.all(cos >= 0) and torch.allclose(cos, st["cosines"])          # aligned: positive cosines
    s_all, _ = svd_features(ft[1][2:3])
    want = s_all[0, :6] / s_all[0, :6].norm()
    assert torch.allclose(st["teacher_values"], want) and st["stage_names"] == ["a", "b", "c"]


def test_bad_input(pair):
    fs, ft = pair
    assert max_explorer_k(fs) == 3                                             # min(HW, C) = 6 at stage 0, - 3
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\]"):
        svd_explorer_state(fs, ft, k=4)
    with pytest.raises(ValueError, match="flip_stage"):
        svd_explorer_state(fs, ft, flip_stage=3)
    with pytest.raises(ValueError, match="image"):
        svd_explorer_state(fs, ft, image=3)
    with pytest.raises(ValueError, match=r"student_features\[1\] and teacher_features\[1\]"):
        svd_explorer_state(fs, [ft[0], ft[2], ft[1]])
    with pytest.raises(ValueError, match="at least 2 stages"):
        svd_explorer_state(fs[:1], ft[:1])
    with pytest.raises(ValueError, match=r"teacher_features\[0\] must be a floating-point \(B, C, H, W\)"):
        svd_explorer_state(fs, [ft[0][0], *ft[1:]])
    with pytest.raises(ValueError, match="stage_names"):
        svd_explorer_state(fs, ft, stage_names=["a"])


def test_widget(pair):
    fs, ft = pair
    w = SVDExplorer(fs, ft, stage_names=["a", "b", "c"])
    assert w.state["flip_stage"] is None and len(w.output.outputs) == 2
    assert w.output.outputs[0]["data"]["image/png"]
    w.flip.value = 2
    assert w.state["flip_stage"] == 2
    assert w.state["loss_library_sign"] != pytest.approx(w.state["loss_kdteach"], rel=1e-3)
    w.k.value = 3
    w.stage.value = 2
    w.image.value = 1
    assert (w.state["k"], w.state["stage"], w.state["image"]) == (3, 2, 1)
    assert w.state["loss_kdteach"] == pytest.approx(kdsvd_loss(fs, ft, 3).item(), rel=1e-12)
    assert "sign convention" in w.output.outputs[1]["data"]["text/plain"]
