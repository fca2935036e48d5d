"""kdteach.widgets.at driven headlessly: the attention explorer's state against numbers computed here."""

from __future__ import annotations

import base64

import pytest
import torch

from kdteach import widgets as kw
from kdteach.losses import at_loss


@pytest.fixture
def features():
    g = torch.Generator().manual_seed(0)
    feats = {
        "teacher": {"stem": torch.randn(3, 6, 8, 8, generator=g).relu(),
                    "layer1": torch.randn(3, 8, 4, 4, generator=g).relu()},
        "student alone": {"stem": torch.randn(3, 4, 8, 8, generator=g).relu(),
                          "layer1": torch.randn(3, 5, 4, 4, generator=g).relu()},
        "AT student": {"stem": torch.randn(3, 4, 8, 8, generator=g).relu(),
                       "layer1": torch.randn(3, 5, 2, 2, generator=g).relu()},   # smaller map: pooled to 2x2
    }
    return feats


def _unit(m):
    """Reference: an (h, w) map divided by its L2 norm, computed without the library."""
    return m / torch.sqrt((m * m).sum())


@pytest.mark.parametrize("mode", ["sum", "sum_p", "max_p"])
def test_state_matches_reference(features, mode):
    p = 3.0
    state = kw.attention_explorer_state(features, image=1, stage="stem", mode=mode, p=p)
    assert state["models"] == ["teacher", "student alone", "AT student"]
    assert state["stages"] == ["stem", "layer1"] and state["size"] == (8, 8)
    ref = {}
    for m in state["models"]:
        a = features[m]["stem"][1].abs()
        raw = {"sum": a.sum(0), "sum_p": a.pow(p).sum(0), "max_p": a.pow(p).amax(0)}[mode]
        assert torch.allclose(state["maps"][m], raw, rtol=1e-5)
        ref[m] = _unit(raw)
        assert torch.allclose(state["normalised"][m], ref[m], atol=1e-6)
    assert state["vmax"] == pytest.approx(max(float(r.max()) for r in ref.values()), rel=1e-6)
    for m in ("student alone", "AT student"):
        d = ((ref[m] - ref["teacher"]) ** 2).mean().item()
        cos = (ref[m] * ref["teacher"]).sum().item()
        assert state["map_distance"][m] == pytest.approx(d, rel=1e-5)
        assert state["cosine"][m] == pytest.approx(cos, rel=1e-5)
        assert state["cosine"][m] == pytest.approx(1 - 64 * d / 2, abs=1e-5)
        # AT's loss of this one image, from Sigma_c |A_c|^p whatever mapping is shown
        q_s = _unit(features[m]["stem"][1].abs().pow(p).sum(0))
        q_t = _unit(features["teacher"]["stem"][1].abs().pow(p).sum(0))
        assert state["at_loss"][m] == pytest.approx(((q_s - q_t) ** 2).mean().item(), rel=1e-5)
        if mode == "sum_p":
            assert state["at_loss"][m] == pytest.approx(state["map_distance"][m], rel=1e-5)


def test_state_pools_larger_maps_like_at_loss(features):
    state = kw.attention_explorer_state(features, image=2, stage="layer1", mode="sum_p", p=2)
    assert state["size"] == (2, 2) and state["hw"] == 4
    pooled_t = torch.nn.functional.avg_pool2d(features["teacher"]["layer1"][2:3], 2)[0]   # 4x4 -> 2x2 blocks
    assert torch.allclose(state["maps"]["teacher"], pooled_t.pow(2).sum(0), rtol=1e-5)
    ref = at_loss(features["AT student"]["layer1"][2:3], features["teacher"]["layer1"][2:3], p=2).item()
    assert state["at_loss"]["AT student"] == pytest.approx(ref, rel=1e-6)
    # identical student and teacher features: distance 0, cosine 1
    same = {"teacher": features["teacher"], "copy": features["teacher"]}
    s = kw.attention_explorer_state(same, image=0, stage="stem")
    assert s["at_loss"]["copy"] == pytest.approx(0.0, abs=1e-9) and s["cosine"]["copy"] == pytest.approx(1.0)


@pytest.mark.parametrize("change, match", [
    (dict(image=3), r"image must be an int in \[0, 3\)"),
    (dict(image=-1), "image must be an int"),
    (dict(image=True), "image must be an int"),
    (dict(stage="layer9"), r"stage must be one of \['stem', 'layer1'\]"),
    (dict(mode="mean"), "mode must be one of"),
    (dict(p=0), "p must be a number > 0"),
    (dict(teacher="nobody"), "features must hold the teacher 'nobody'"),
])
def test_state_bad_input(features, change, match):
    args = dict(image=0, stage="stem", mode="sum_p", p=2.0, teacher="teacher") | change
    with pytest.raises(ValueError, match=match):
        kw.attention_explorer_state(features, **args)


def test_state_bad_features(features):
    with pytest.raises(ValueError, match="non-empty dict"):
        kw.attention_explorer_state({}, 0, "stem")
    with pytest.raises(ValueError, match="at least one student"):
        kw.attention_explorer_state({"teacher": features["teacher"]}, 0, "stem")
    bad = dict(features, **{"AT student": {"stem": torch.zeros(3, 8, 8)}})
    with pytest.raises(ValueError, match=r"features\['AT student'\]\['stem'\] must be a \(N, C, H, W\) tensor, "
                                         r"got \(3, 8, 8\)"):
        kw.attention_explorer_state(bad, 0, "stem")
    bad = dict(features, **{"AT student": {"stem": torch.zeros(2, 4, 8, 8)}})
    with pytest.raises(ValueError, match="has 2 images .* expected N = 3"):
        kw.attention_explorer_state(bad, 0, "stem")


def test_explorer_headless(features, capsys):
    images = torch.rand(3, 3, 8, 8)
    ex = kw.AttentionExplorer(features, images=images, labels=["cat", "dog", "ship"], stage="stem")
    assert ex.state["stage"] == "stem" and ex.state["image"] == 0
    ex.image.value = 2
    ex.stage.value = "layer1"
    ex.mode.value = "max_p"
    ex.p.value = 4.0
    ref = kw.attention_explorer_state(features, 2, "layer1", "max_p", 4.0)
    assert ex.state["at_loss"] == pytest.approx(ref["at_loss"])
    assert ex.state["cosine"] == pytest.approx(ref["cosine"])
    # one shared colour scale: every map panel uses [0, vmax]
    panels = [ax.images[0] for ax in ex.last_figure.axes[1:4]]
    assert all(im.get_clim() == pytest.approx((0.0, ref["vmax"])) for im in panels)
    assert "at_loss" in ex.last_figure.axes[3].get_title()
    fig_out, table_out = ex.output.outputs
    assert base64.b64decode(fig_out["data"]["image/png"]).startswith(b"\x89PNG")
    assert f"{ref['at_loss']['AT student']:.5f}" in table_out["data"]["text/html"]
    assert capsys.readouterr().out == ""      # a widget never prints


def test_explorer_bad_input(features):
    with pytest.raises(ValueError, match=r"images must have shape \(N=3, 3, H, W\)"):
        kw.AttentionExplorer(features, images=torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        kw.AttentionExplorer(features, labels=["a"])
    with pytest.raises(ValueError, match="stage must be one of"):
        kw.AttentionExplorer(features, stage="pool")
