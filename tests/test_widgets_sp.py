"""kdteach.widgets.sp driven headlessly: the explorer's state against G and the loss computed here."""

from __future__ import annotations

import pytest
import torch

from kdteach.widgets.sp import SimilarityExplorer, sp_explorer_state


@pytest.fixture
def stored():
    g = torch.Generator().manual_seed(0)
    feats = {"teacher": torch.randn(40, 6, 2, 2, generator=g), "student alone": torch.randn(40, 5, generator=g),
             "SP student": torch.randn(40, 3, 4, 4, generator=g)}
    return feats, torch.arange(40) % 4


def _g(q):
    """G by a loop: inner products, each row divided by its L2 norm."""
    b = q.shape[0]
    g = torch.zeros(b, b, dtype=torch.float64)
    for i in range(b):
        for j in range(b):
            g[i, j] = float((q[i] * q[j]).sum())
        g[i] /= g[i].norm()
    return g


def test_state_matches_loops(stored):
    feats, labels = stored
    st = sp_explorer_state(feats, labels, batch_size=6, offset=3)
    assert st["models"] == ["teacher", "student alone", "SP student"] and torch.equal(st["labels"], labels[3:9])
    gt = _g(feats["teacher"][3:9].double().flatten(1))
    assert torch.allclose(st["G"]["teacher"], gt)
    for m in ("student alone", "SP student"):
        gs = _g(feats[m][3:9].double().flatten(1))
        want = float(((gt - gs) ** 2).sum() / 36)
        assert st["loss"][m] == pytest.approx(want, rel=1e-9) and st["scaled"][m] == pytest.approx(6 * want)


def test_loss_shrinks_with_the_batch(stored):
    feats, labels = stored
    small = sp_explorer_state(feats, labels, 10)["loss"]["student alone"]
    big = sp_explorer_state(feats, labels, 40)["loss"]["student alone"]
    assert big < small


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 1}, r"batch_size must be an int in \[2, 40\]"),
    ({"batch_size": 10, "offset": 31}, r"offset must be an int in \[0, 30\]"),
    ({"teacher": "nobody"}, "features must be a dict holding the teacher 'nobody'"),
    ({"labels": torch.zeros(39, dtype=torch.long)}, r"labels must be a \(40,\) tensor"),
])
def test_bad_input(stored, kwargs, match):
    feats, labels = stored
    args = {"features": feats, "labels": labels, "batch_size": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        sp_explorer_state(**args)


def test_widget_updates(stored):
    feats, labels = stored
    w = SimilarityExplorer(feats, labels, class_names=["a", "b", "c", "d"], batch_size=16)
    assert w.state["batch_size"] == 16 and w.last_figure is not None
    w.offset.value = 24
    assert w.state["offset"] == 24
    w.batch_size.value = 30                       # offset is clipped to N - B = 10
    assert w.state["batch_size"] == 30 and w.state["offset"] == 10
    assert len(w.output.outputs) == 2 and "SP student" in w.output.outputs[1]["data"]["text/plain"]
