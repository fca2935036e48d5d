"""The DKD figure: one softened distribution split into its target-class and non-target parts.

Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, Sec. 3: p = softmax(z / T) over C
classes is carried by the binary probabilities b = [p_t, 1 − p_t] (target class against the rest)
and the non-target distribution p̂ (the wrong classes among themselves, renormalised); TCKD compares
the b's, NCKD the p̂'s. The probabilities come from :mod:`kdteach.losses` (one home for the maths).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ._common import new_figure

__all__ = ["plot_decoupled_distributions"]


def _logits(x: object, name: str) -> torch.Tensor:
    z = torch.as_tensor(x).detach().cpu()
    if z.dim() == 1:
        z = z[None]
    if z.dim() != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"{name} must have shape (C,) or (N, C) with C >= 2, got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {z.dtype}")
    return z.float()


def plot_decoupled_distributions(teacher_logits: object, target: object, temperature: float = 4.0,
                                 class_names: Sequence[str] | None = None, student_logits: object = None, *,
                                 title: str | None = None) -> Figure:
    """Bars of p = softmax(z / T), of b = [p_t, 1 − p_t] and of p̂ (non-target), one row per image.

    Args:
        teacher_logits: (N, C) or (C,) teacher logits (C >= 2).
        target: (N,) integer labels (the target class of each row), or an int for one row.
        temperature: T > 0 for all three panels.
        class_names: optional C class names (x tick labels of the first and third panels).
        student_logits: optional logits of the same shape, drawn next to the teacher's.
        title: optional figure title.

    Returns:
        Figure with N x 3 axes. All panels share the y range [0, 1] (probabilities on one scale);
        the target class is outlined in black in the first panel and empty in the third.

    Raises:
        ValueError: logits not (N, C) with C >= 2, shapes that differ, labels out of range,
            temperature not > 0, or class_names of the wrong length.
    """
    from kdteach.losses import binary_probs, nontarget_probs, softened_probs

    z_t = _logits(teacher_logits, "teacher_logits")
    n, c = z_t.shape
    z_s = None if student_logits is None else _logits(student_logits, "student_logits")
    if z_s is not None and z_s.shape != z_t.shape:
        raise ValueError(f"student_logits {tuple(z_s.shape)} and teacher_logits {tuple(z_t.shape)} must have the same shape")
    y = torch.as_tensor(target).reshape(-1).cpu()
    if y.shape[0] != n or y.is_floating_point():
        raise ValueError(f"target must hold {n} integer labels (one per row), got {tuple(y.shape)} of dtype {y.dtype}")
    y = y.long()
    if class_names is not None and len(class_names) != c:
        raise ValueError(f"class_names must have {c} names (one per logit), got {len(class_names)}")
    names = [str(s) for s in class_names] if class_names is not None else [str(i) for i in range(c)]
    nets = [("teacher", z_t, "tab:blue")] + ([("student", z_s, "tab:orange")] if z_s is not None else [])
    probs = {label: (softened_probs(z, temperature).numpy(), binary_probs(z, y, temperature).numpy(),
                     nontarget_probs(z, y, temperature).numpy()) for label, z, _ in nets}
    fig = new_figure(n, 3, cell=(max(2.4, 0.3 * c), 2.2))
    axes = fig.subplots(n, 3, squeeze=False, width_ratios=[c, 2.5, c])
    width = 0.8 / len(nets)
    x = np.arange(c)
    for r in range(n):
        t = int(y[r])
        for k, (label, _z, color) in enumerate(nets):
            p, b, q = (a[r] for a in probs[label])
            shift = (k - (len(nets) - 1) / 2) * width
            bars = axes[r, 0].bar(x + shift, p, width=width, color=color, label=label)
            bars[t].set_edgecolor("black")
            bars[t].set_linewidth(1.5)
            axes[r, 1].bar(np.arange(2) + shift, b, width=width, color=color, label=label)
            axes[r, 2].bar(x + shift, q, width=width, color=color, label=label)
        axes[r, 0].set_xticks(x, names, rotation=90 if c > 4 else 0, fontsize=7)
        axes[r, 1].set_xticks([0, 1], [f"p_t\n({names[t]})", "1 - p_t"], fontsize=7)
        axes[r, 2].set_xticks(x, names, rotation=90 if c > 4 else 0, fontsize=7)
        for ax in axes[r]:
            ax.set_ylim(0.0, 1.0)
        axes[r, 0].set_ylabel(f"row {r}, label {names[t]}", fontsize=8)
    axes[0, 0].set_title(f"p = softmax(z / T), T = {temperature:g}", fontsize=9)
    axes[0, 1].set_title("b (TCKD)", fontsize=9)
    axes[0, 2].set_title("p-hat: non-target classes (NCKD)", fontsize=9)
    if len(nets) > 1:
        axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
