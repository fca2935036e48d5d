"""The peer-target explorer (section 7 of the dml notebook): DML's mutual-learning term over a pure function.

Zhang, Xiang, Hospedales, Lu, "Deep Mutual Learning", CVPR 2018. In a cohort of K networks, network i
learns from the others' softened predictions p_j = softmax(z_j / T), held fixed (detached). Which
target it learns from is a choice: one peer, the mean of the KL terms to every other network (DML,
as :class:`kdteach.methods.dml.DML` computes it), one KL to the mean of the others' probabilities (an
ensemble teacher), to the mean of all K networks' probabilities (the ``ensemble`` head, network i
included), or to the softmax of the others' mean logits. :class:`DMLPeerExplorer` shows, for a few
images, the networks' softened predictions, the chosen target, the loss term and its gradient on
network i's logits, next to DML's; the logic is :func:`dml_explorer_state`. No model runs inside.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["TARGETS", "dml_explorer_state", "DMLPeerExplorer"]

#: The targets network i can learn from, and what each one is.
TARGETS = {
    "dml": "DML: mean over j != i of KL(p_j || p_i)",
    "peer": "one peer j: KL(p_j || p_i)",
    "mean_others": "ensemble of the others: KL(mean_{j != i} p_j || p_i)",
    "ensemble_all": "ensemble of all K (the 'ensemble' head): KL(mean_j p_j || p_i)",
    "logit_mean": "others' mean logits: KL(softmax(mean_{j != i} z_j / T) || p_i)",
}


def _as_cohort(logits: Any) -> torch.Tensor:
    if isinstance(logits, (list, tuple)):
        parts = [torch.as_tensor(z) for z in logits]
        shapes = {tuple(z.shape) for z in parts}
        if len(shapes) > 1:
            raise ValueError(f"logits must hold K (B, C) tensors of one shape, got shapes {sorted(shapes)}")
        t = torch.stack(parts) if parts else torch.empty(0)
    else:
        t = torch.as_tensor(logits)
    if t.dim() != 3 or t.shape[0] < 2 or t.shape[1] == 0 or t.shape[2] < 2:
        raise ValueError(f"logits must have shape (K, B, C) with K >= 2 networks, B >= 1 images and C >= 2 "
                         f"classes, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"logits must be floating point, got dtype {t.dtype}")
    return t.detach().float().cpu()


def _index(value: Any, name: str, k: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < k:
        raise ValueError(f"{name} must be a network index in [0, {k}), got {value!r}")
    return value


def _target_logits(z: torch.Tensor, i: int, target: str, peer: int, t: float) -> list[torch.Tensor]:
    """The detached target(s) of network i as logits for :func:`kdteach.losses.kd_loss` (which
    softens them with softmax(· / T)): a probability target q is passed as T · log q."""
    others = [j for j in range(z.shape[0]) if j != i]
    p = torch.softmax(z / t, dim=2)                                  # (K, B, C) at temperature T
    if target == "dml":
        return [z[j] for j in others]
    if target == "peer":
        return [z[peer]]
    if target == "mean_others":
        return [t * torch.log(p[others].mean(0))]
    if target == "ensemble_all":
        return [t * torch.log(p.mean(0))]
    return [z[others].mean(0)]                                       # "logit_mean"


def _term(z: torch.Tensor, i: int, target: str, peer: int, t: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, gradient on z_i (B, C), target probabilities (B, C)) of one target, as DML weights it:
    the mean of kd_loss over the target list (kd_loss carries the T² factor, 1 at DML's T = 1)."""
    from kdteach.losses import kd_loss

    zi = z[i].clone().requires_grad_(True)
    targets = _target_logits(z, i, target, peer, t)
    loss = sum(kd_loss(zi, zt, t) for zt in targets) / len(targets)
    (grad,) = torch.autograd.grad(loss, zi)
    q = torch.stack([torch.softmax(zt / t, dim=1) for zt in targets]).mean(0)
    return loss.detach(), grad, q


def dml_explorer_state(logits: Any, student: int = 0, target: str = "dml", temperature: float = 1.0,
                       peer: int | None = None) -> dict:
    """Everything the peer-target explorer shows for one choice of network, target and T.

    For network ``student`` = i of a cohort with logits z_1..z_K, the term it minimises towards its
    (detached) target, with p = softmax(z / T) and kd_loss(z_i, z_t, T) = T² (1/B) Σ_b KL(p_t,b ‖ p_i,b)
    (:func:`kdteach.losses.kd_loss`; T = 1 in DML, Zhang et al., CVPR 2018, Sec. 3):

    * ``"dml"``: (1/(K−1)) Σ_{j≠i} kd_loss(z_i, z_j, T), the ``kl`` term of :class:`kdteach.methods.dml.DML`;
    * ``"peer"``: kd_loss(z_i, z_peer, T), one peer only;
    * ``"mean_others"``: KL to q = mean_{j≠i} p_j (an ensemble of the other networks);
    * ``"ensemble_all"``: KL to q = mean_j p_j over all K networks, i included (the ``ensemble`` head);
    * ``"logit_mean"``: KL to softmax(mean_{j≠i} z_j / T).

    Because the targets are fixed, the gradient on z_i of "mean_others" equals DML's, T (p_i − q)/B
    either way: the two losses differ by a constant, T² times the mean over images of
    H(q) − mean_j H(p_j) (the spread of the other networks), which does not depend on z_i. Including
    network i in the ensemble scales that gradient by (K−1)/K. ``grad_gap`` reports the largest
    difference from DML's gradient.

    Args:
        logits: (K, B, C) logits of K >= 2 networks on B images (or a list of K (B, C) tensors).
        student: the index i of the network being trained.
        target: one of :data:`TARGETS`.
        temperature: T > 0.
        peer: for ``target="peer"``, the peer's index j != i (default: the first network other than i).

    Returns:
        dict with ``student``, ``target``, ``temperature``, ``peer`` (None unless ``"peer"``), ``k``;
        ``probs`` (K, B, C) softened predictions of every network; ``target_probs`` (B, C);
        ``loss`` (float, the batch term), ``per_image`` (B,) the term of each image (T² KL, the
        mean over the target list); ``grad`` (B, C), the gradient of ``loss`` on z_i, and
        ``grad_per_image`` = B · grad (each image's own term); ``dml_loss``, ``dml_grad`` (DML's,
        for comparison); ``grad_gap`` (max |grad − dml_grad|); ``table``: per target name
        ``{"loss", "grad_gap"}`` for every target of :data:`TARGETS` (``"peer"`` with ``peer``).

    Raises:
        ValueError: logits not (K, B, C) floating point with K >= 2, an index out of range or
            ``peer`` equal to ``student``, an unknown target, or temperature not a finite number > 0.
    """
    z = _as_cohort(logits)
    k = z.shape[0]
    i = _index(student, "student", k)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    t = float(temperature)
    j = next(n for n in range(k) if n != i) if peer is None else _index(peer, "peer", k)
    if j == i:
        raise ValueError(f"peer must differ from student (a network is not its own peer), got both {i}")

    table = {}
    for name in TARGETS:
        loss, grad, q = _term(z, i, name, j, t)
        table[name] = {"loss": float(loss), "grad": grad, "q": q}
    dml_grad = table["dml"]["grad"]
    for row in table.values():
        row["grad_gap"] = float((row["grad"] - dml_grad).abs().max())
    chosen = table[target]
    b = z.shape[1]
    with torch.no_grad():
        log_pi = torch.log_softmax(z[i] / t, dim=1)
        targets = _target_logits(z, i, target, j, t)
        per_image = torch.stack([(torch.softmax(zt / t, 1) * (torch.log_softmax(zt / t, 1) - log_pi)).sum(1)
                                 for zt in targets]).mean(0) * t * t
    return {
        "student": i, "target": target, "temperature": t, "peer": j if target == "peer" else None, "k": k,
        "probs": torch.softmax(z / t, dim=2), "target_probs": chosen["q"],
        "loss": chosen["loss"], "per_image": per_image, "grad": chosen["grad"], "grad_per_image": b * chosen["grad"],
        "dml_loss": table["dml"]["loss"], "dml_grad": dml_grad, "grad_gap": chosen["grad_gap"],
        "table": {name: {"loss": row["loss"], "grad_gap": row["grad_gap"]} for name, row in table.items()},
    }


class DMLPeerExplorer(widgets.VBox):
    """Choose the network being trained, its target, the peer (for a one-peer target), T and the
    image; shows the cohort's softened predictions and the target on that image, the gradient of the
    term on the network's logits next to DML's, and a table of every target's loss (Zhang et al.,
    CVPR 2018).

    Args:
        logits: (K, B, C) logits of K >= 2 networks (or a list of K (B, C) tensors).
        labels: (B,) integer labels (figure titles).
        class_names: C class names (tick labels).
        names: K network names (default ``net0`` ...).
        temperature: starting T (default the ``dml`` method's, 1).

    Attributes: ``student``, ``target``, ``peer`` (dropdowns), ``temperature``, ``sample`` (sliders),
    ``output`` (Output), ``state`` (the latest :func:`dml_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, logits: Any, labels: Any, class_names: Sequence[str], names: Sequence[str] | None = None,
                 temperature: float | None = None):
        from kdteach.methods.dml import DML

        super().__init__()
        self._z = _as_cohort(logits)
        k, b, c = self._z.shape
        self._y = torch.as_tensor(labels)
        if self._y.dim() != 1 or self._y.shape[0] != b or self._y.is_floating_point():
            raise ValueError(f"labels must be a ({b},) integer tensor, got shape {tuple(self._y.shape)} "
                             f"dtype {self._y.dtype}")
        self.class_names = [str(n) for n in class_names]
        if len(self.class_names) != c:
            raise ValueError(f"class_names has {len(self.class_names)} names, expected C = {c}")
        self.names = [f"net{n}" for n in range(k)] if names is None else [str(n) for n in names]
        if len(self.names) != k:
            raise ValueError(f"names has {len(self.names)} names, expected K = {k}")
        temperature = DML.defaults["temperature"] if temperature is None else temperature
        dml_explorer_state(self._z, 0, "dml", temperature)           # validate early
        slider = dict(continuous_update=False)
        nets = [(name, n) for n, name in enumerate(self.names)]
        self.student = widgets.Dropdown(options=nets, value=0, description="trained")
        self.peer = widgets.Dropdown(options=nets, value=1, description="peer j")
        self.target = widgets.Dropdown(options=[(v, key) for key, v in TARGETS.items()], value="dml",
                                       description="target", layout=widgets.Layout(width="520px"))
        self.temperature = widgets.FloatSlider(value=float(temperature), min=0.5, max=8.0, step=0.5,
                                               description="T", **slider)
        self.sample = widgets.IntSlider(value=0, min=0, max=b - 1, description="image", **slider)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.student, self.peer, self.target, self.temperature, self.sample):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.student, self.peer, self.temperature]),
                         widgets.HBox([self.target, self.sample]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        i, j = self.student.value, self.peer.value
        if j == i:        # a network is not its own peer: move the peer to the next network
            j = (i + 1) % len(self.names)
        state = dml_explorer_state(self._z, i, self.target.value, self.temperature.value, peer=j)
        n = self.sample.value
        x = list(range(len(self.class_names)))
        fig = Figure(figsize=(11, 3.6))
        ax_p, ax_g = fig.subplots(1, 2, width_ratios=[3, 2])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.24, top=0.88, wspace=0.22)
        k = state["k"]
        width = 0.8 / (k + 1)
        for m in range(k):
            ax_p.bar([v - 0.4 + width * (m + 0.5) for v in x], state["probs"][m, n].tolist(), width=width,
                     label=self.names[m] + (" (trained)" if m == i else ""))
        ax_p.bar([v - 0.4 + width * (k + 0.5) for v in x], state["target_probs"][n].tolist(), width=width,
                 color="black", label="target")
        ax_p.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_p.set_ylabel(f"softmax(z / T), T = {state['temperature']:g}")
        ax_p.set_title(f"image {n}, label: {self.class_names[int(self._y[n])]}", fontsize="medium")
        ax_p.legend(fontsize="x-small")
        ax_g.bar([v - 0.2 for v in x], state["grad_per_image"][n].tolist(), width=0.4, label="this target")
        ax_g.bar([v + 0.2 for v in x], (self._z.shape[1] * state["dml_grad"][n]).tolist(), width=0.4,
                 color="tab:gray", label="DML")
        ax_g.axhline(0.0, color="black", linewidth=0.6)
        ax_g.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_g.set_title(f"gradient of this image's term on z_{self.names[i]}", fontsize="medium")
        ax_g.legend(fontsize="x-small")
        rows = [[TARGETS[name] + (f" (j = {self.names[j]})" if name == "peer" else ""), f"{row['loss']:.4f}",
                 f"{row['grad_gap']:.2e}"] for name, row in state["table"].items()]
        summary = (f"{self.names[i]} learns from {TARGETS[state['target']]}, T = {state['temperature']:g}: "
                   f"term {state['loss']:.4f} over {self._z.shape[1]} images (DML {state['dml_loss']:.4f}); "
                   f"largest gradient difference from DML {state['grad_gap']:.2e}")
        table = _html_table(["target", "term over the batch", "max |grad - DML grad|"], rows)
        self.state, self.last_figure = state, fig
        self.output.outputs = (_figure_output(fig, "Figure: softened predictions, target and gradient"),
                               _html_output(f"<p>{html.escape(summary)}</p>{table}", summary))
        return state
