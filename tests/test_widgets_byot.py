"""kdteach.widgets.byot driven headlessly: the exit explorer's pure state and its thin widget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import widgets as kw
from kdteach.losses import kd_loss
from kdteach.methods import get_method


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    z_c = 3 * torch.randn(6, 5, generator=g)
    exits = {"exit1": torch.randn(6, 5, generator=g), "exit2": z_c + 0.3 * torch.randn(6, 5, generator=g)}
    return exits, z_c, torch.tensor([0, 1, 2, 3, 4, 0])


def test_state_terms_follow_the_method(logits):
    exits, z_c, y = logits
    st = kw.byot_explorer_state(exits, z_c, y, "exit1", 0.3, 3.0)
    assert st["exits"] == ["exit1", "exit2"] and st["exit"] == "exit1"
    assert st["ce"] == pytest.approx(float(F.cross_entropy(z_c, y)))
    assert st["ce_exit"] == pytest.approx(0.7 * float(F.cross_entropy(exits["exit1"], y)))
    p_c = (z_c / 3).softmax(1)
    kl = float((p_c * (p_c.log() - (exits["exit1"] / 3).log_softmax(1))).sum(1).mean())
    assert st["kl_unweighted"] == pytest.approx(kl, rel=1e-5) and st["kl_exit"] == pytest.approx(0.3 * kl, rel=1e-5)
    assert st["exit_probs"].shape == (6, 5) and torch.allclose(st["exit_probs"].sum(1), torch.ones(6))
    # the same weighting as BYOT.loss, term by term (features are not part of the explorer)
    byot = get_method("byot", alpha=0.3, temperature=3.0)
    a, t = 0.3, 3.0
    for k, z in exits.items():
        assert st["terms"][k]["kl_exit"] == pytest.approx(a * float(kd_loss(z, z_c, t)) / (t * t), rel=1e-5)
    assert st["total"] == pytest.approx(st["ce"] + sum(v["ce_exit"] + v["kl_exit"] for v in st["terms"].values()))
    assert byot.hparams["alpha"] == a


def test_alpha_moves_weight_from_labels_to_teacher(logits):
    exits, z_c, y = logits
    zero = kw.byot_explorer_state(exits, z_c, y, "exit2", 0.0, 3.0)
    one = kw.byot_explorer_state(exits, z_c, y, "exit2", 1.0, 3.0)
    assert zero["kl_exit"] == 0.0 and one["ce_exit"] == 0.0
    assert zero["ce_exit"] > 0 and one["kl_exit"] > 0
    # exit2 sits near the deepest classifier, exit1 does not
    assert zero["agreement"] > kw.byot_explorer_state(exits, z_c, y, "exit1", 0.0, 3.0)["agreement"]
    assert one["kl_unweighted"] < kw.byot_explorer_state(exits, z_c, y, "exit1", 1.0, 3.0)["kl_unweighted"]


@pytest.mark.parametrize("change, match", [
    (lambda e, z, y: (e, z, y, "exit9", 0.3, 3.0), "exit must be one of"),
    (lambda e, z, y: (e, z, y, "exit1", 1.5, 3.0), "alpha must be"),
    (lambda e, z, y: (e, z, y, "exit1", 0.3, 0.0), "temperature must be"),
    (lambda e, z, y: ({}, z, y, "exit1", 0.3, 3.0), "exit_logits must be a non-empty dict"),
    (lambda e, z, y: ({"exit1": e["exit1"][:, :4]}, z, y, "exit1", 0.3, 3.0), r"expected the deepest classifier's"),
    (lambda e, z, y: (e, z[0], y, "exit1", 0.3, 3.0), r"deepest_logits must be a floating-point \(B, K\)"),
    (lambda e, z, y: (e, z, y[:3], "exit1", 0.3, 3.0), r"labels must be a \(6,\) integer"),
    (lambda e, z, y: (e, z, y + 5, "exit1", 0.3, 3.0), r"labels must lie in \[0, 5\)"),
])
def test_state_bad_input(logits, change, match):
    with pytest.raises(ValueError, match=match):
        kw.byot_explorer_state(*change(*logits))


def test_widget_updates_and_never_prints(logits, capsys):
    exits, z_c, y = logits
    w = kw.BYOTExitExplorer(exits, z_c, y, list("abcde"))
    assert w.state["alpha"] == 0.3 and w.state["temperature"] == 3.0 and w.state["exit"] == "exit1"
    w.exit.value = "exit2"
    w.alpha.value = 0.6
    w.sample.value = 5
    assert w.state["exit"] == "exit2" and w.state["alpha"] == pytest.approx(0.6)
    assert w.last_figure is not None and w.state["terms"]["exit2"]["kl_exit"] == pytest.approx(w.state["kl_exit"])
    kinds = [set(o["data"]) for o in w.output.outputs]
    assert {"image/png", "text/plain"} in kinds and {"text/html", "text/plain"} in kinds
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="class_names has 3 names"):
        kw.BYOTExitExplorer(exits, z_c, y, list("abc"))
