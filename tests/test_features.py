"""kdteach.features: hooks capture every declared stage, pre/post activation, and are removed."""

from __future__ import annotations

import pytest
import torch

from kdteach import features, models


@pytest.mark.parametrize("name", ["tiny_teacher", "tiny_student"])
def test_capture_every_stage_pre_and_post(name):
    m = models.create(name).eval()
    x = torch.randn(2, 3, 16, 16)
    names = features.feature_names(m)
    with features.capture(m, names) as post:
        logits = m(x)
    with features.capture(m, names, preact=True) as pre:
        m(x)
    assert logits.shape == (2, 10)
    for s in m.stages:
        assert post[s.name].shape == (2, s.channels, 16 // s.stride, 16 // s.stride)
        assert (post[s.name] >= 0).all()  # post-ReLU
        assert (pre[s.name] < 0).any()    # pre-activation keeps negatives
        assert torch.equal(post[s.name], pre[s.name].clamp_min(0))
    assert post["pool"].shape == (2, m.feature_dim)


def test_hooks_are_removed_even_on_error():
    m = models.create("tiny_student")
    before = sum(len(mod._forward_hooks) for mod in m.modules())
    with pytest.raises(RuntimeError, match="boom"):
        with features.capture(m, ["layer1", "pool"]):
            raise RuntimeError("boom")
    with features.capture(m, ["layer1"]):
        pass
    assert sum(len(mod._forward_hooks) for mod in m.modules()) == before


def test_unknown_feature_lists_valid_names():
    m = models.create("tiny_student")
    with pytest.raises(KeyError) as err:
        with features.capture(m, ["layer9"]):
            pass
    assert "layer9" in str(err.value) and "layer3" in str(err.value) and "pool" in str(err.value)
    assert sum(len(mod._forward_hooks) for mod in m.modules()) == 0


def test_teacher_under_inference_mode_and_student_keeps_grad():
    t, s = models.create("tiny_teacher").eval(), models.create("tiny_student")
    x = torch.randn(4, 3, 16, 16)
    with torch.inference_mode(), features.capture(t, ["layer2"]) as ft:
        t(x)
    assert ft["layer2"].is_inference()
    logits, fs = features.extract(s, x, ["layer2"])
    fs["layer2"].sum().backward()
    assert s.layer2.conv.weight.grad is not None


@pytest.mark.cuda
def test_capture_on_cuda():
    m = models.create("tiny_teacher").cuda()
    _, f = features.extract(m, torch.randn(2, 3, 16, 16, device="cuda"), ["layer3", "pool"])
    assert f["layer3"].is_cuda and f["pool"].shape == (2, 32)
