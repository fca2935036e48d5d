"""kdteach.widgets.understanding_kd driven headlessly: the soft-target explorer's state and its widget."""

from __future__ import annotations

import pytest
import torch

from kdteach import widgets as kw
from kdteach.losses import kd_loss, permute_nontarget, smoothed_targets, softened_probs


def batch(b=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=g), 3.0 * torch.randn(b, k, generator=g), torch.arange(b) % k


def test_state_is_the_library_losses_and_gradients():
    z_s, z_t, y = batch()
    st = kw.kd_effects_state(z_s, z_t, y, temperature=4.0, epsilon=0.3, permute=False)
    assert st["kd_teacher"] == pytest.approx(float(kd_loss(z_s, z_t, 4.0)), rel=1e-5)
    assert torch.allclose(st["target_probs"], softened_probs(z_t, 4.0))
    assert torch.allclose(st["smoothed_probs"], smoothed_targets(y, 5, 0.3))
    # per-image gradient of the KD term: T (p_s - q)
    want = 4.0 * (softened_probs(z_s, 4.0) - softened_probs(z_t, 4.0))
    assert torch.allclose(st["grad_teacher"], want.norm(dim=1), atol=1e-6)
    assert torch.allclose(st["teacher_confidence"], softened_probs(z_t, 1.0)[torch.arange(12), y])
    assert torch.allclose(st["push_teacher"], want[torch.arange(12), y], atol=1e-6)
    assert torch.allclose(st["push_ce"], softened_probs(z_s, 1.0)[torch.arange(12), y] - 1, atol=1e-6)
    # the matched epsilon gives the uniform target the teacher's mean true-class probability
    eps = st["matched_epsilon"]
    assert (1 - eps + eps / 5) == pytest.approx(float(softened_probs(z_t, 4.0)[torch.arange(12), y].mean()), rel=1e-5)


def test_permute_changes_the_target_but_not_its_true_class_probability():
    z_s, z_t, y = batch()
    plain = kw.kd_effects_state(z_s, z_t, y, 4.0, 0.3, permute=False)
    perm = kw.kd_effects_state(z_s, z_t, y, 4.0, 0.3, permute=True, seed=3)
    rows = torch.arange(12)
    assert torch.equal(perm["target_probs"][rows, y], plain["target_probs"][rows, y])
    assert not torch.allclose(perm["target_probs"], plain["target_probs"])
    assert torch.allclose(perm["target_probs"], permute_nontarget(softened_probs(z_t, 4.0), y,
                                                                  torch.Generator().manual_seed(3)))
    assert torch.equal(perm["push_teacher"], plain["push_teacher"])          # the same push on the true class
    assert torch.equal(perm["grad_ce"], plain["grad_ce"])                    # the CE does not see the teacher
    assert torch.equal(perm["grad_smoothed"], plain["grad_smoothed"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(epsilon=1.5), r"epsilon must be a number in \[0, 1\]"),
    (dict(permute="yes"), "permute must be True or False"),
])
def test_state_bad_input(kwargs, match):
    z_s, z_t, y = batch()
    args = dict(temperature=4.0, epsilon=0.2, permute=False) | kwargs
    with pytest.raises(ValueError, match=match):
        kw.kd_effects_state(z_s, z_t, y, **args)
    with pytest.raises(ValueError, match="must have the same shape"):
        kw.kd_effects_state(z_s, z_t[:, :4], y, 4.0, 0.2, False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        kw.kd_effects_state(z_s, z_t, y + 5, 4.0, 0.2, False)


def test_widget_driven_headlessly():
    z_s, z_t, y = batch()
    names = [f"c{i}" for i in range(5)]
    w = kw.KDEffectsExplorer(z_s, z_t, y, names, temperature=4.0, epsilon=0.5)
    assert w.state["permute"] is False and len(w.output.outputs) == 3
    assert all(o["data"].get("image/png") for o in w.output.outputs[:2])
    before = w.state["kd_teacher"]
    w.permute.value = True                                   # the toggle recomputes
    assert w.state["permute"] is True and w.state["kd_teacher"] != pytest.approx(before)
    w.epsilon.value = 0.0
    assert torch.equal(w.state["smoothed_probs"], torch.nn.functional.one_hot(y, 5).float())
    w.temperature.value = 8.0
    w.sample.value = 3
    assert w.state["temperature"] == 8.0 and "example 3" in w.figures[0].axes[0].get_title()
    with pytest.raises(ValueError, match="class_names has 4 names"):
        kw.KDEffectsExplorer(z_s, z_t, y, names[:4])


def test_viz_figures_and_their_bad_input():
    from matplotlib.figure import Figure

    from kdteach.viz import plot_gradient_scale, plot_target_distributions

    z_s, z_t, y = batch()
    st = kw.kd_effects_state(z_s, z_t, y, 4.0, 0.3, permute=True)
    fig = plot_target_distributions({"teacher": st["teacher_probs"][:3], "smoothed": st["smoothed_probs"][:3]},
                                    [f"c{i}" for i in range(5)], labels=y[:3].tolist())
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 10                                     # 2 targets x 5 classes
    fig = plot_gradient_scale(st["teacher_confidence"], {"KD": st["grad_teacher"], "CE": st["grad_ce"]},
                              {"KD": st["push_teacher"], "CE": st["push_ce"]}, bins=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].collections) == 2
    with pytest.raises(ValueError, match="targets must all have the same shape"):
        plot_target_distributions({"a": st["teacher_probs"], "b": st["teacher_probs"][:2]})
    with pytest.raises(ValueError, match="class_names must have 5 names"):
        plot_target_distributions({"a": st["teacher_probs"]}, ["x"])
    with pytest.raises(ValueError, match=r"gradient_norms\['KD'\] must have 12 values"):
        plot_gradient_scale(st["teacher_confidence"], {"KD": st["grad_teacher"][:3]})
    with pytest.raises(ValueError, match="bins must be an integer >= 1"):
        plot_gradient_scale(st["teacher_confidence"], {"KD": st["grad_teacher"]}, bins=0)
