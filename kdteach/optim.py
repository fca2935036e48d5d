"""Optimisers that methods supply to the trainer (:meth:`kdteach.methods.base.Method.optimizer`).

:class:`DistillationOrientedSGD` is the optimiser of DOT: B. Zhao, Q. Cui, R. Song, J. Liang,
"DOT: A Distillation-Oriented Trainer", ICCV 2023 (arXiv:2307.08436; the authors' code is
``mdistiller/engine/dot.py`` in github.com/megvii-research/mdistiller). It is SGD with two momentum
buffers per parameter: one for the gradient of the task loss (cross-entropy) with momentum
``μ − Δ`` and one for the gradient of the distillation loss with momentum ``μ + Δ``.

One training step takes two backward passes through the same forward graph::

    optimizer.zero_grad(set_to_none=True)
    loss_kd.backward(retain_graph=True)
    optimizer.collect_distillation_grads()   # p.grad -> the optimiser's distillation gradient; p.grad = None
    loss_task.backward()
    optimizer.step()                         # p.grad is the task gradient

(inside the trainer, :meth:`kdteach.methods.dot.DOT.backward` does the middle three lines; the trainer
zero-grads and steps, as for every method.)
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import torch

__all__ = ["DistillationOrientedSGD", "dot_momenta"]

_DISTILL_GRAD = "distillation_grad"     # transient: collected, then consumed by the next step()
_TASK_BUF = "task_momentum_buffer"
_DISTILL_BUF = "distillation_momentum_buffer"


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def dot_momenta(momentum: float, delta: float) -> tuple[float, float]:
    """``(μ − Δ, μ + Δ)``: the task and distillation momenta of DOT for base momentum μ and Δ.

    Raises:
        ValueError: either momentum falls outside [0, 1) (the message names ``momentum`` and ``delta``).
    """
    m = _number(momentum, "momentum")
    d = _number(delta, "delta")
    task, distill = m - d, m + d
    if not (0.0 <= task < 1.0 and 0.0 <= distill < 1.0):
        raise ValueError(f"momentum - delta and momentum + delta must both lie in [0, 1), got momentum={m!r}, "
                         f"delta={d!r} (task momentum {task:g}, distillation momentum {distill:g})")
    return task, distill


class DistillationOrientedSGD(torch.optim.Optimizer):
    r"""SGD with separate momenta for the task and the distillation gradients (DOT, Zhao et al., ICCV 2023).

    For a parameter θ with task gradient g_t (in ``θ.grad`` at :meth:`step`) and distillation gradient
    g_d (moved into the optimiser by :meth:`collect_distillation_grads`), with learning rate η,
    weight decay λ, base momentum μ and Δ:

    .. math::

        v_t \leftarrow (\mu - \Delta)\, v_t + g_t + \lambda\theta, \qquad
        v_d \leftarrow (\mu + \Delta)\, v_d + g_d, \qquad
        \theta \leftarrow \theta - \eta\, v_t - \eta\, v_d .

    A buffer starts as its first gradient (as ``torch.optim.SGD`` does, no dampening). Weight decay
    is added once, to the task gradient. A parameter that receives only one of the two gradients in
    a step (e.g. a module only the task loss reaches) updates that buffer with the base momentum μ
    (λθ then goes with whichever gradient it has); the other buffer is left as it is. This is the
    authors' rule, so with Δ = 0 every parameter takes exactly the step of SGD with momentum μ
    (the two buffers then sum to SGD's single buffer).

    Where the authors' code differs: it keeps one parameter group only (here any number, each with
    its own ``lr``, ``momentum``, ``delta``, ``weight_decay``), names the distillation call
    ``step_kd()`` and keeps references to the gradients (here they are moved into the optimiser's
    state, so ``zero_grad(set_to_none=False)`` cannot erase them); on the very first step it adds no
    weight decay to a parameter that has only a distillation gradient (here it does, like every
    later step). Nesterov momentum and dampening are not part of DOT and are not offered.

    Args:
        params: parameters or parameter groups (as for any ``torch.optim.Optimizer``).
        lr: learning rate η >= 0 (the trainer's schedule sets ``group["lr"]`` each epoch).
        momentum: base momentum μ; the task momentum is μ − Δ and the distillation momentum μ + Δ,
            both in [0, 1).
        delta: Δ (the authors' CIFAR and ImageNet configs: 0.075, so 0.825 and 0.975 for μ = 0.9).
        weight_decay: L2 coefficient λ >= 0.

    The state of a parameter holds ``task_momentum_buffer`` and ``distillation_momentum_buffer``
    (and, between :meth:`collect_distillation_grads` and :meth:`step`, ``distillation_grad``), so
    ``state_dict()`` / ``load_state_dict()`` restore the optimiser exactly.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, delta: float = 0.075,
                 weight_decay: float = 0.0):
        lr = _number(lr, "lr")
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr!r}")
        weight_decay = _number(weight_decay, "weight_decay")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        dot_momenta(momentum, delta)
        super().__init__(params, {"lr": lr, "momentum": float(momentum), "delta": float(delta),
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def collect_distillation_grads(self) -> int:
        """Move every parameter's ``.grad`` into the optimiser as its distillation gradient and set
        ``.grad`` to None, so the next backward pass (the task loss) writes fresh gradients.

        Call it after the distillation loss's backward pass and before the task loss's. Calling it
        twice before a :meth:`step` adds the second gradients to the first.

        Returns:
            The number of parameters that had a gradient.
        """
        n = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                g = p.grad
                p.grad = None
                state[_DISTILL_GRAD] = g if _DISTILL_GRAD not in state else state[_DISTILL_GRAD].add_(g)
                n += 1
        return n

    @torch.no_grad()
    def step(self, closure=None):
        """One DOT update of every parameter with a task gradient (``.grad``) and/or a collected
        distillation gradient; the collected gradients are consumed.

        Args:
            closure: optional callable re-evaluating the loss (returned, as ``torch.optim`` does).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            base = group["momentum"]
            m_task, m_distill = dot_momenta(base, group["delta"])
            for p in group["params"]:
                state = self.state[p]
                g_task = p.grad
                g_distill = state.pop(_DISTILL_GRAD, None)
                if g_task is None and g_distill is None:
                    continue
                if g_task is not None and g_task.is_sparse:
                    raise RuntimeError("DistillationOrientedSGD does not support sparse gradients")
                both = g_task is not None and g_distill is not None
                if g_task is not None:
                    d = g_task.add(p, alpha=wd) if wd != 0 else g_task
                    self._accumulate(state, _TASK_BUF, d, m_task if both else base)
                if g_distill is not None:
                    d = g_distill.add(p, alpha=wd) if (wd != 0 and not both) else g_distill
                    self._accumulate(state, _DISTILL_BUF, d, m_distill if both else base)
                # buffers are updated from the same θ; the step then subtracts both
                if g_task is not None:
                    p.add_(state[_TASK_BUF], alpha=-lr)
                if g_distill is not None:
                    p.add_(state[_DISTILL_BUF], alpha=-lr)
        return loss

    @staticmethod
    def _accumulate(state: dict, key: str, d: torch.Tensor, momentum: float) -> None:
        buf = state.get(key)
        if buf is None:
            state[key] = torch.clone(d).detach()
        else:
            buf.mul_(momentum).add_(d)
