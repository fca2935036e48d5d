"""kdteach.widgets.mlkd driven headlessly: the MLKD explorer's state against numbers computed here."""

from __future__ import annotations

import base64

import pytest
import torch

from kdteach import widgets as kw


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    z_t = 3.0 * torch.randn(6, 5, generator=g)
    z_s = 0.5 * z_t + torch.randn(6, 5, generator=g)
    return z_s, z_t


def _soft(z, t):
    e = torch.exp(z.double() / t)
    return e / e.sum(dim=1, keepdim=True)


def _reference(zs, zt, taus):
    """Sums over the temperatures of KD (T² · mean KL), of ||G_t - G_s||² / B and of ||M_t - M_s||² / K."""
    inst = batch = cls = 0.0
    for t in taus:
        ps, pt = _soft(zs, t), _soft(zt, t)
        inst += t * t * (pt * (pt.log() - ps.log())).sum(dim=1).mean().item()
        batch += ((pt @ pt.T - ps @ ps.T) ** 2).sum().item() / zs.shape[0]
        cls += ((pt.T @ pt - ps.T @ ps) ** 2).sum().item() / zs.shape[1]
    return {"instance": inst, "batch": batch, "class": cls}


@pytest.mark.parametrize("t, multi", [(4.0, True), (4.0, False), (1.5, True)])
def test_state_matches_reference(logits, t, multi):
    zs, zt = logits
    state = kw.mlkd_explorer_state(zs, zt, t, multi_temperature=multi)
    taus = (t, 3.0, 5.0, 2.0, 6.0) if multi else (t,)
    assert state["temperatures"] == taus and state["temperature"] == t
    ref = _reference(zs, zt, taus)
    for lv in ("instance", "batch", "class"):
        assert state["terms"][lv] == pytest.approx(ref[lv], rel=1e-4), lv
    # masks from the teacher's top probability / class sums at T = 1 (6 images, 5 classes: 3/6 and 3/5)
    assert state["mask_batch"] == pytest.approx(0.5) and state["mask_class"] == pytest.approx(0.6)
    assert state["weighted"]["instance"] == pytest.approx(0.9 * 0.5 * state["terms"]["instance"])
    assert state["weighted"]["class"] == pytest.approx(0.9 * 0.6 * state["terms"]["class"])
    assert state["total"] == pytest.approx(sum(state["weighted"].values()))
    ps, pt = _soft(zs, t).float(), _soft(zt, t).float()
    assert torch.allclose(state["teacher_batch"], pt @ pt.T, atol=1e-6)
    assert torch.allclose(state["student_class"], ps.T @ ps, atol=1e-6)
    assert state["teacher_batch"].shape == (6, 6) and state["teacher_class"].shape == (5, 5)


def test_levels_switch_terms_in_and_out_of_the_total(logits):
    zs, zt = logits
    full = kw.mlkd_explorer_state(zs, zt)
    only = kw.mlkd_explorer_state(zs, zt, levels=("class", "batch"), kd_weight=1.8)
    assert only["levels"] == ("batch", "class")                       # in the paper's order
    assert only["total"] == pytest.approx(2 * (full["weighted"]["batch"] + full["weighted"]["class"]), rel=1e-6)
    assert only["terms"] == full["terms"]                             # all three are still computed
    assert kw.mlkd_explorer_state(zs, zt, levels=())["total"] == 0
    assert kw.mlkd_explorer_state(zt, zt)["total"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(levels=("instance", "pixel")), r"levels must be a subset of \('instance', 'batch', 'class'\)"),
    (dict(kd_weight=-1.0), "kd_weight must be a finite number >= 0"),
    (dict(student_logits=torch.randn(6, 4)), r"must have the same shape"),
    (dict(student_logits=torch.randn(1, 5)), r"student_logits must have shape \(B, K\) with B >= 2"),
])
def test_bad_input(logits, kwargs, match):
    zs, zt = logits
    args = dict(student_logits=zs, teacher_logits=zt) | kwargs
    with pytest.raises(ValueError, match=match):
        kw.mlkd_explorer_state(**args)


def test_widget_updates_and_shows_figures_without_printing(logits, capsys):
    zs, zt = logits
    w = kw.MLKDExplorer(zs, zt, [f"c{i}" for i in range(5)])
    assert w.state["temperatures"] == (4.0, 3.0, 5.0, 2.0, 6.0)
    w.multi_temperature.value = False
    assert w.state["temperatures"] == (4.0,)
    w.temperature.value = 2.0
    assert w.state["temperature"] == 2.0
    w.levels.value = ("instance",)
    assert w.state["total"] == pytest.approx(w.state["weighted"]["instance"])
    outs = w.output.outputs
    assert len(outs) == 3 and all(o["output_type"] == "display_data" for o in outs)
    assert base64.b64decode(outs[0]["data"]["image/png"])[:4] == b"\x89PNG"
    assert "m_b = 0.50" in outs[1]["data"]["text/plain"]
    bars, matrices = w.last_figures
    assert len(matrices.axes) == 10                                   # 2 rows x 3 panels + 2 colour bars each
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="class_names has 3 names, expected K = 5"):
        kw.MLKDExplorer(zs, zt, ["a", "b", "c"])
