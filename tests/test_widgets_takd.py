"""kdteach.widgets.takd driven headlessly: the chain explorer's state against numbers computed here."""

from __future__ import annotations

import base64

import pytest
import torch

from kdteach import widgets as kw


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    z_t = 3.0 * torch.randn(5, 4, generator=g)
    return {"teacher": z_t,
            "assistant": 0.6 * z_t + torch.randn(5, 4, generator=g),
            "student (TAKD)": 0.4 * z_t + torch.randn(5, 4, generator=g),
            "student (KD)": 0.4 * z_t + torch.randn(5, 4, generator=g)}


LABELS = torch.tensor([0, 1, 2, 3, 1])


def _soft(z, t):
    e = torch.exp(z / t - (z / t).max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def _kd(zs, zt, t):
    """Reference KD soft term, written out: T^2 * mean over images of KL(p_t || p_s)."""
    p_t, p_s = _soft(zt, t), _soft(zs, t)
    return t * t * (p_t * (p_t.log() - p_s.log())).sum(dim=1).mean().item()


@pytest.mark.parametrize("t", [1.0, 4.0, 10.0])
def test_state_links_use_the_previous_links_logits(logits, t):
    chain = ["teacher", "assistant", "student (TAKD)"]
    state = kw.takd_explorer_state(logits, chain, LABELS, t)
    assert state["chain"] == chain and state["temperature"] == t and len(state["links"]) == 2
    first, second = state["links"]
    assert (first["teacher"], first["student"]) == ("teacher", "assistant")
    assert (second["teacher"], second["student"]) == ("assistant", "student (TAKD)")
    assert first["kd"] == pytest.approx(_kd(logits["assistant"], logits["teacher"], t), rel=1e-5)
    assert second["kd"] == pytest.approx(_kd(logits["student (TAKD)"], logits["assistant"], t), rel=1e-5)
    # the chained student's loss is against the assistant, not the teacher
    assert second["kd"] != pytest.approx(_kd(logits["student (TAKD)"], logits["teacher"], t), rel=1e-3)
    for name in chain:
        assert torch.allclose(state["probs"][name], _soft(logits[name], t), atol=1e-6)
    p_a = _soft(logits["assistant"], t)
    assert second["target_entropy"] == pytest.approx(-(p_a * p_a.log()).sum(1).mean().item(), rel=1e-5)
    agree = (logits["student (TAKD)"].argmax(1) == logits["assistant"].argmax(1)).float().mean().item() * 100
    assert second["agreement"] == pytest.approx(agree)
    acc = (logits["teacher"].argmax(1) == LABELS).float().mean().item() * 100
    assert state["accuracy"]["teacher"] == pytest.approx(acc)


def test_direct_chain_is_one_link_and_target_entropy_rises_with_t(logits):
    direct = [kw.takd_explorer_state(logits, ["teacher", "student (KD)"], LABELS, t) for t in (1.0, 4.0, 16.0)]
    assert all(len(s["links"]) == 1 for s in direct)
    entropies = [s["links"][0]["target_entropy"] for s in direct]
    assert entropies[0] < entropies[1] < entropies[2]


@pytest.mark.parametrize("args, match", [
    (dict(chain=["teacher"]), "at least a teacher and a student"),
    (dict(chain=["teacher", "nobody"]), r"chain names \['nobody'\] not in logits"),
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(temperature=float("inf")), "temperature"),
    (dict(labels=torch.tensor([0, 1])), r"labels must be a \(5,\) integer tensor"),
    (dict(labels=torch.tensor([0, 1, 2, 3, 4])), r"labels must lie in \[0, 4\)"),
    (dict(logits={"teacher": torch.randn(5, 4), "assistant": torch.randn(5, 3)}), r"logits\['assistant'\] has shape"),
    (dict(logits={"teacher": torch.randn(5)}), r"logits\['teacher'\] must be a floating-point \(B, C\)"),
    (dict(logits=[]), "logits must be a non-empty dict"),
])
def test_state_bad_input(logits, args, match):
    kwargs = dict(logits=logits, chain=["teacher", "assistant"], labels=LABELS, temperature=4.0) | args
    with pytest.raises(ValueError, match=match):
        kw.takd_explorer_state(**kwargs)


def test_widget_updates_headlessly(logits):
    w = kw.TAKDChainExplorer(logits, LABELS, ["a", "b", "c", "d"], direct=["teacher", "student (KD)"],
                             chains={"via assistant": ["teacher", "assistant", "student (TAKD)"]})
    assert w.temperature.value == 4.0           # the takd method's default T
    state = w.state
    assert [l["student"] for l in state["chained"]["links"]] == ["assistant", "student (TAKD)"]
    assert state["direct"]["links"][0]["kd"] == pytest.approx(_kd(logits["student (KD)"], logits["teacher"], 4.0),
                                                              rel=1e-5)
    png = base64.b64decode(w.output.outputs[0]["data"]["image/png"])
    assert png[:4] == b"\x89PNG"
    assert "kd_loss" in w.output.outputs[1]["data"]["text/html"]
    w.temperature.value = 8.0                    # a slider change recomputes the state
    assert w.state["chained"]["temperature"] == 8.0
    assert w.state["chained"]["links"][1]["kd"] == pytest.approx(
        _kd(logits["student (TAKD)"], logits["assistant"], 8.0), rel=1e-5)
    w.sample.value = 4
    assert w.last_figure is not None
    with pytest.raises(ValueError, match="class_names has 2 names, expected C = 4"):
        kw.TAKDChainExplorer(logits, LABELS, ["a", "b"], direct=["teacher", "student (KD)"],
                             chains={"x": ["teacher", "assistant"]})
    with pytest.raises(ValueError, match="chains must be a non-empty dict"):
        kw.TAKDChainExplorer(logits, LABELS, ["a", "b", "c", "d"], direct=["teacher", "student (KD)"], chains={})
