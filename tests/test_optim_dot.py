"""kdteach.optim.DistillationOrientedSGD: DOT's update checked by hand, against SGD at Δ = 0,
for parameters that get only one of the two gradients, and through a state_dict round trip."""

from __future__ import annotations

import pytest
import torch

from kdteach.optim import DistillationOrientedSGD, dot_momenta


def one_param(values, **kw):
    p = torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))
    return p, DistillationOrientedSGD([p], **kw)


def dot_step(p, opt, g_task, g_distill):
    """One DOT step with given gradients (as the two backward passes would leave them)."""
    opt.zero_grad(set_to_none=True)
    if g_distill is not None:
        p.grad = torch.tensor(g_distill, dtype=p.dtype, device=p.device)
        assert opt.collect_distillation_grads() == 1
        assert p.grad is None
    if g_task is not None:
        p.grad = torch.tensor(g_task, dtype=p.dtype, device=p.device)
    opt.step()


def test_two_steps_equal_the_hand_computed_update():
    # theta0 = (1, -2), lr 0.1, weight decay 0.01, mu 0.9, delta 0.075: momenta 0.825 (task), 0.975 (distillation)
    p, opt = one_param([1.0, -2.0], lr=0.1, momentum=0.9, delta=0.075, weight_decay=0.01)
    dot_step(p, opt, g_task=[0.5, 0.25], g_distill=[-1.0, 2.0])
    # v_t = g_t + 0.01 theta0 = (0.51, 0.23); v_d = g_d = (-1, 2); theta1 = theta0 - 0.1 (v_t + v_d)
    assert torch.allclose(p.detach(), torch.tensor([1.049, -2.223], dtype=torch.float64), atol=1e-12)
    dot_step(p, opt, g_task=[0.1, 0.1], g_distill=[0.2, -0.2])
    # v_t = 0.825 (0.51, 0.23) + (0.1, 0.1) + 0.01 theta1 = (0.53124, 0.26752)
    # v_d = 0.975 (-1, 2) + (0.2, -0.2) = (-0.775, 1.75); theta2 = theta1 - 0.1 (v_t + v_d)
    assert torch.allclose(p.detach(), torch.tensor([1.073376, -2.424752], dtype=torch.float64), atol=1e-12)
    st = opt.state[p]
    assert torch.allclose(st["task_momentum_buffer"], torch.tensor([0.53124, 0.26752], dtype=torch.float64))
    assert torch.allclose(st["distillation_momentum_buffer"], torch.tensor([-0.775, 1.75], dtype=torch.float64))
    assert "distillation_grad" not in st                     # consumed by the step


def test_one_gradient_only_uses_the_base_momentum():
    # a parameter only the task loss reaches, and one only the distillation loss reaches
    for which in ("task", "distill"):
        p, opt = one_param([2.0], lr=0.5, momentum=0.9, delta=0.075, weight_decay=0.1)
        grads = [[1.0], [3.0]]
        for g in grads:
            dot_step(p, opt, g if which == "task" else None, g if which == "distill" else None)
        # step 1: v = 1 + 0.1*2 = 1.2, theta = 2 - 0.6 = 1.4; step 2: v = 0.9*1.2 + 3 + 0.1*1.4 = 4.22, theta = 1.4 - 2.11
        assert p.item() == pytest.approx(1.4 - 2.11, abs=1e-12), which
        key = "task_momentum_buffer" if which == "task" else "distillation_momentum_buffer"
        other = "distillation_momentum_buffer" if which == "task" else "task_momentum_buffer"
        assert opt.state[p][key].item() == pytest.approx(4.22) and other not in opt.state[p]


def two_loss_model(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    with torch.no_grad():
        for q in net.parameters():
            q.copy_(torch.randn(q.shape, generator=g, dtype=torch.float64))
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    target = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return net, x, y, target


def losses(net, x, y, target):
    z = net(x)
    return torch.nn.functional.cross_entropy(z, y), ((z - target) ** 2).mean()


def test_delta_zero_is_sgd_with_one_momentum():
    net_a, x, y, target = two_loss_model()
    net_b, *_ = two_loss_model()
    dot = DistillationOrientedSGD(net_a.parameters(), lr=0.05, momentum=0.9, delta=0.0, weight_decay=5e-4)
    sgd = torch.optim.SGD(net_b.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(6):
        task, distill = losses(net_a, x, y, target)
        dot.zero_grad(set_to_none=True)
        distill.backward(retain_graph=True)
        dot.collect_distillation_grads()
        task.backward()
        dot.step()
        sgd.zero_grad(set_to_none=True)
        sum(losses(net_b, x, y, target)).backward()
        sgd.step()
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.allclose(a, b, atol=1e-12)


def test_fixed_point_weights_each_loss_by_one_over_one_minus_its_momentum():
    # L_t = |w - a|^2 / 2, L_d = |w - b|^2 / 2: at a fixed point each buffer is g / (1 - m), so DOT stops where
    # (w - a) / (1 - m_t) + (w - b) / (1 - m_d) = 0, not at SGD's (a + b) / 2
    a, b = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64)
    m_t, m_d = dot_momenta(0.9, 0.075)
    w_t, w_d = 1 / (1 - m_t), 1 / (1 - m_d)
    want = (w_t * a + w_d * b) / (w_t + w_d)
    w, opt = one_param([3.0, -1.0], lr=0.002, momentum=0.9, delta=0.075)
    for _ in range(3000):
        dot_step(w, opt, (w.detach() - a).tolist(), (w.detach() - b).tolist())
    assert torch.allclose(w.detach(), want, atol=1e-8)
    assert not torch.allclose(w.detach(), (a + b) / 2, atol=1e-2)


def test_state_dict_round_trip_resumes_exactly():
    net_a, x, y, target = two_loss_model()
    net_b, *_ = two_loss_model()

    def train(net, opt, steps):
        for _ in range(steps):
            task, distill = losses(net, x, y, target)
            opt.zero_grad(set_to_none=True)
            distill.backward(retain_graph=True)
            opt.collect_distillation_grads()
            task.backward()
            opt.step()

    full = DistillationOrientedSGD(net_a.parameters(), lr=0.05, delta=0.075, weight_decay=5e-4)
    train(net_a, full, 5)
    part = DistillationOrientedSGD(net_b.parameters(), lr=0.05, delta=0.075, weight_decay=5e-4)
    train(net_b, part, 3)
    saved = part.state_dict()
    assert {"task_momentum_buffer", "distillation_momentum_buffer"} <= set(saved["state"][0])
    resumed = DistillationOrientedSGD(net_b.parameters(), lr=1.0, delta=0.0)   # hyper-parameters come back too
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["delta"] == 0.075 and resumed.param_groups[0]["lr"] == 0.05
    train(net_b, resumed, 2)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)


def test_schedule_writes_lr_into_param_groups():
    p, opt = one_param([0.0], lr=1.0, delta=0.05)
    opt.param_groups[0]["lr"] = 0.25                     # what the trainer's schedule does each epoch
    dot_step(p, opt, [1.0], [2.0])
    assert p.item() == pytest.approx(-0.25 * 3.0)


def test_collecting_twice_adds_and_no_gradient_is_no_step():
    p, opt = one_param([1.0], lr=1.0, momentum=0.5, delta=0.0)
    opt.step()                                           # no gradient at all: nothing moves
    assert p.item() == 1.0 and not opt.state[p]
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.collect_distillation_grads()
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.collect_distillation_grads()
    assert opt.collect_distillation_grads() == 0        # nothing left in .grad
    opt.step()
    assert p.item() == pytest.approx(1.0 - 3.0)


def test_momenta():
    assert dot_momenta(0.9, 0.075) == pytest.approx((0.825, 0.975))
    assert dot_momenta(0.9, -0.05) == pytest.approx((0.95, 0.85))


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -0.1}, r"lr must be >= 0, got -0.1"),
    ({"lr": float("nan")}, r"lr must be a finite number"),
    ({"lr": 0.1, "delta": 0.1}, r"momentum - delta and momentum \+ delta must both lie in \[0, 1\).*delta=0.1"),
    ({"lr": 0.1, "momentum": 0.05, "delta": 0.075}, r"task momentum -0.025"),
    ({"lr": 0.1, "weight_decay": -1e-4}, r"weight_decay must be >= 0"),
    ({"lr": 0.1, "delta": True}, r"delta must be a finite number, got True"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationOrientedSGD([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_bad_delta_set_later_is_caught_at_step():
    p, opt = one_param([0.0], lr=0.1)
    opt.param_groups[0]["delta"] = 0.5
    p.grad = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="delta=0.5"):
        opt.step()


@pytest.mark.cuda
def test_cuda_step_matches_cpu():
    for device in ("cpu", "cuda"):
        p = torch.nn.Parameter(torch.tensor([1.0, -2.0], device=device))
        opt = DistillationOrientedSGD([p], lr=0.1, delta=0.075, weight_decay=0.01)
        dot_step(p, opt, [0.5, 0.25], [-1.0, 2.0])
        dot_step(p, opt, [0.1, 0.1], [0.2, -0.2])
        assert torch.allclose(p.detach().cpu(), torch.tensor([1.073376, -2.424752]), atol=1e-5), device
