"""kdteach.widgets.dml driven headlessly: the peer-target explorer's pure state and its thin widget."""

from __future__ import annotations

import json

import pytest
import torch

from kdteach import widgets as kw
from kdteach.losses import kd_loss
from kdteach.methods import get_method
from kdteach.methods.base import LossContext
from kdteach.widgets.dml import TARGETS


def cohort(k=3, b=4, c=5, seed=0):
    return 2.0 * torch.randn(k, b, c, generator=torch.Generator().manual_seed(seed))


class Fixed(torch.nn.Module):
    """A 'network' whose output is fixed logits: lets DML.loss run on given numbers."""

    def __init__(self, z):
        super().__init__()
        self.z = torch.nn.Parameter(z.clone())

    def forward(self, x):
        return self.z


@pytest.mark.parametrize("k", [2, 3])
def test_dml_target_is_the_methods_kl_term(k):
    z = cohort(k)
    st = kw.dml_explorer_state(z, student=0, target="dml")
    method = get_method("dml", peers=k - 1)
    extras = torch.nn.ModuleDict({f"peer{n}": Fixed(z[n]) for n in range(1, k)})
    ctx = LossContext(x=torch.zeros(4, 3, 2, 2), y=torch.zeros(4, dtype=torch.long), student_logits=z[0].clone(),
                      teacher_logits=None, student_features={}, teacher_features={}, extras=extras,
                      hparams=method.hparams)
    assert st["loss"] == pytest.approx(float(method.loss(ctx)["kl"]), rel=1e-6)
    assert st["loss"] == pytest.approx(st["dml_loss"]) and st["grad_gap"] == 0.0
    assert st["loss"] == pytest.approx(float(st["per_image"].mean()), rel=1e-6)
    # the gradient of the term on z_0 is (p_0 - mean_j p_j) / B at T = 1
    p = torch.softmax(z, dim=2)
    assert torch.allclose(st["grad"], (p[0] - p[1:].mean(0)) / z.shape[1], atol=1e-6)
    assert torch.allclose(st["grad_per_image"], z.shape[1] * st["grad"])
    assert st["probs"].shape == z.shape and st["k"] == k and st["peer"] is None


def test_ensemble_of_the_others_has_dmls_gradient_and_a_constant_gap():
    z = cohort(3)
    for t in (1.0, 3.0):
        st = kw.dml_explorer_state(z, student=1, target="mean_others", temperature=t)
        p = torch.softmax(z / t, dim=2)
        q = p[[0, 2]].mean(0)
        assert torch.allclose(st["target_probs"], q, atol=1e-6)
        assert st["grad_gap"] < 1e-6                                          # same gradient as DML
        entropy = lambda r: -(r * r.log()).sum(-1)
        gap = t * t * (entropy(q) - entropy(p[[0, 2]]).mean(0)).mean()        # the others' spread, >= 0
        assert st["dml_loss"] - st["loss"] == pytest.approx(float(gap), rel=1e-4, abs=1e-6)
        assert st["dml_loss"] > st["loss"]
    # with K = 2 every target built from the other network alone is the same term
    two = cohort(2)
    ref = kw.dml_explorer_state(two, 0, "dml")
    for name in ("peer", "mean_others", "logit_mean"):
        st = kw.dml_explorer_state(two, 0, name)
        assert st["loss"] == pytest.approx(ref["loss"], rel=1e-5) and st["grad_gap"] < 1e-6, name


def test_ensemble_of_all_scales_the_gradient_and_other_targets_differ():
    z = cohort(3)
    dml = kw.dml_explorer_state(z, 2, "dml")
    st = kw.dml_explorer_state(z, 2, "ensemble_all")
    assert torch.allclose(st["grad"], (2 / 3) * dml["grad"], atol=1e-6)      # (K-1)/K of DML's
    assert torch.allclose(st["target_probs"], torch.softmax(z, 2).mean(0), atol=1e-6)
    one = kw.dml_explorer_state(z, 2, "peer", peer=0)
    assert one["peer"] == 0 and one["loss"] == pytest.approx(float(kd_loss(z[2], z[0], 1.0)), rel=1e-6)
    assert one["grad_gap"] > 1e-3
    lm = kw.dml_explorer_state(z, 2, "logit_mean")
    assert torch.allclose(lm["target_probs"], torch.softmax(z[:2].mean(0), 1), atol=1e-6)
    assert lm["grad_gap"] > 1e-3
    assert set(st["table"]) == set(TARGETS)
    assert st["table"]["mean_others"]["grad_gap"] < 1e-6


def test_temperature_scales_the_gradient_as_kd_loss_does():
    z = cohort(2)
    st = kw.dml_explorer_state(z, 0, "dml", temperature=4.0)
    p = torch.softmax(z / 4.0, dim=2)
    assert torch.allclose(st["grad"], 4.0 * (p[0] - p[1]) / z.shape[1], atol=1e-6)   # T (p_i - q) / B


@pytest.mark.parametrize("kwargs, match", [
    (dict(logits=torch.randn(1, 4, 5)), r"logits must have shape \(K, B, C\) with K >= 2.*got \(1, 4, 5\)"),
    (dict(logits=torch.randn(4, 5)), r"logits must have shape \(K, B, C\)"),
    (dict(logits=[torch.randn(4, 5), torch.randn(3, 5)]), "one shape"),
    (dict(logits=torch.zeros(2, 4, 5, dtype=torch.long)), "floating point"),
    (dict(student=3), r"student must be a network index in \[0, 3\), got 3"),
    (dict(target="teacher"), "target must be one of dml, peer"),
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(target="peer", peer=0), "peer must differ from student"),
])
def test_state_bad_input(kwargs, match):
    args = dict(logits=cohort(3), student=0, target="dml", temperature=1.0, peer=None) | kwargs
    with pytest.raises(ValueError, match=match):
        kw.dml_explorer_state(**args)


def test_widget_updates_and_stores_no_text():
    z = cohort(3)
    w = kw.DMLPeerExplorer(z, torch.tensor([0, 1, 2, 3]), list("abcde"), names=["student", "peer", "alone"])
    assert w.state["target"] == "dml" and w.state["temperature"] == 1.0
    assert w.last_figure is not None and len(w.output.outputs) == 2
    w.target.value = "peer"
    w.peer.value = 2
    assert w.state["target"] == "peer" and w.state["peer"] == 2
    w.student.value = 2          # the peer equals the trained network: the widget moves it on
    assert w.state["student"] == 2 and w.state["peer"] == 0
    w.temperature.value = 2.0
    w.sample.value = 3
    assert w.state["temperature"] == 2.0
    for out in w.output.outputs:
        assert out["output_type"] == "display_data"
        json.dumps(out)
    with pytest.raises(ValueError, match="class_names has 2 names, expected C = 5"):
        kw.DMLPeerExplorer(z, torch.tensor([0, 1, 2, 3]), ["a", "b"])
    with pytest.raises(ValueError, match="names has 1 names, expected K = 3"):
        kw.DMLPeerExplorer(z, torch.tensor([0, 1, 2, 3]), list("abcde"), names=["x"])
    with pytest.raises(ValueError, match=r"labels must be a \(4,\) integer tensor"):
        kw.DMLPeerExplorer(z, torch.tensor([0.0, 1.0]), list("abcde"))
