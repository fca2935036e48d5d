"""kdteach.widgets.dafl driven headlessly: the DAFL generator-loss explorer's pure state and its thin widget."""

from __future__ import annotations

import json
import math

import pytest
import torch

from kdteach import widgets as kw
from kdteach.losses import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss


def batch(seed=0, b=12, k=4, d=6, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(b, k, generator=g), torch.rand(b, d, generator=g)


def test_state_weights_the_library_terms():
    z, f = batch()
    st = kw.dafl_explorer_state(z, f, 0.05, 0.01, 5.0)
    assert st["onehot"] == pytest.approx(float(dafl_onehot_loss(z)))
    assert st["activation"] == pytest.approx(float(dafl_activation_loss(f)))
    assert st["entropy"] == pytest.approx(float(dafl_entropy_loss(z)))
    assert st["weighted_onehot"] == pytest.approx(0.05 * st["onehot"])
    assert st["weighted_activation"] == pytest.approx(0.01 * st["activation"])
    assert st["weighted_entropy"] == pytest.approx(5.0 * st["entropy"])
    assert st["total"] == pytest.approx(st["weighted_onehot"] + st["weighted_activation"] + st["weighted_entropy"])
    # the histogram the entropy term sees
    assert torch.allclose(st["p_mean"], z.softmax(1).mean(0))
    assert st["class_counts"].tolist() == torch.bincount(z.argmax(1), minlength=4).tolist()
    assert int(st["class_counts"].sum()) == st["n_images"] == 12 and st["n_classes"] == 4
    assert st["entropy_min"] == pytest.approx(-math.log10(4)) and st["entropy_max"] == 0.0
    assert st["entropy_min"] <= st["entropy"] <= st["entropy_max"]
    assert st["confidence"] == pytest.approx(float(z.softmax(1).max(1).values.mean()))
    # a zero weight removes its term from the total
    st0 = kw.dafl_explorer_state(z, f, 0.05, 0.01, 0.0)
    assert st0["weighted_entropy"] == 0.0
    assert st0["total"] == pytest.approx(st["total"] - st["weighted_entropy"])


def test_state_extremes_of_the_entropy_term():
    k = 5
    balanced = 20.0 * torch.eye(k).repeat(2, 1)                  # confident, every class twice
    collapsed = 20.0 * torch.eye(k)[[0] * 10]                    # confident, all one class
    f = torch.ones(10, 3)
    st_b = kw.dafl_explorer_state(balanced, f, 1.0, 1.0, 1.0)
    st_c = kw.dafl_explorer_state(collapsed, f, 1.0, 1.0, 1.0)
    assert st_b["entropy"] == pytest.approx(-math.log10(k), abs=1e-5)
    assert st_c["entropy"] == pytest.approx(0.0, abs=1e-5)
    assert st_b["class_counts"].tolist() == [2] * k and st_c["class_counts"].tolist() == [10, 0, 0, 0, 0]
    assert st_b["onehot"] < 1e-6 and st_c["onehot"] < 1e-6       # both confident: only L_ie tells them apart
    assert st_b["activation"] == pytest.approx(-1.0)


@pytest.mark.parametrize("args, match", [
    ((torch.randn(4), torch.rand(4, 3), 1.0, 1.0, 1.0), r"teacher_logits must be a floating-point \(B, K\)"),
    ((torch.randn(4, 1), torch.rand(4, 3), 1.0, 1.0, 1.0), "K >= 2"),
    ((torch.ones(4, 3, dtype=torch.int64), torch.rand(4, 3), 1.0, 1.0, 1.0), "floating-point"),
    ((torch.randn(4, 3), torch.rand(5, 3), 1.0, 1.0, 1.0), r"features must be a floating-point \(4, D\)"),
    ((torch.randn(4, 3), torch.rand(4, 3, 2, 2), 1.0, 1.0, 1.0), r"features .* got shape \(4, 3, 2, 2\)"),
    ((torch.randn(4, 3), torch.rand(4, 3), -1.0, 1.0, 1.0), "onehot_weight must be a finite number >= 0"),
    ((torch.randn(4, 3), torch.rand(4, 3), 1.0, float("nan"), 1.0), "activation_weight"),
    ((torch.randn(4, 3), torch.rand(4, 3), 1.0, 1.0, True), "entropy_weight"),
])
def test_state_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        kw.dafl_explorer_state(*args)


def test_explorer_controls_update_state_and_never_print(capsys):
    batches = {"generated": batch(0), "real": batch(1, b=8)}
    ex = kw.DAFLLossExplorer(batches, class_names=["a", "b", "c", "d"])
    assert (ex.onehot_weight.value, ex.activation_weight.value, ex.entropy_weight.value) == (0.05, 0.01, 5.0)
    assert ex.batch.value == "generated" and ex.state["n_images"] == 12
    ex.batch.value = "real"
    assert ex.state["n_images"] == 8
    ex.entropy_weight.value = 0.0
    want = kw.dafl_explorer_state(*batches["real"], 0.05, 0.01, 0.0)
    assert ex.state["total"] == pytest.approx(want["total"]) and ex.state["weighted_entropy"] == 0.0
    outs = ex.output.outputs
    assert [sorted(o["data"]) for o in outs] == [["image/png", "text/plain"], ["text/html", "text/plain"]]
    assert "entropy" in outs[1]["data"]["text/html"] and "real" in outs[1]["data"]["text/plain"]
    json.dumps(outs)                                        # display data only, serialisable
    assert len(ex.last_figure.axes) == 2
    assert capsys.readouterr().out == ""


def test_explorer_bad_input():
    with pytest.raises(ValueError, match="batches must be a non-empty dict"):
        kw.DAFLLossExplorer({}, class_names=["a", "b"])
    with pytest.raises(ValueError, match="same number of classes"):
        kw.DAFLLossExplorer({"x": batch(0, k=4), "y": batch(1, k=3)}, class_names=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="class_names has 2 names, expected K = 4"):
        kw.DAFLLossExplorer({"x": batch(0)}, class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"batches\['x'\] must be a pair"):
        kw.DAFLLossExplorer({"x": torch.randn(3, 4)}, class_names=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="entropy_weight"):
        kw.DAFLLossExplorer({"x": batch(0)}, class_names=["a", "b", "c", "d"], entropy_weight=-2.0)
