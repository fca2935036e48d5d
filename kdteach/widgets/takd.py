"""The TAKD chain explorer (section 7 of the takd notebook): the KD targets along a chain, over a pure function.

TAKD (Mirzadeh, Farajtabar, Li, Levine, Matsukawa, Ghasemzadeh, "Improved Knowledge Distillation via
Teacher Assistant", AAAI 2020) trains teacher -> assistant -> student, each link with KD's loss on the
previous link's logits. :func:`takd_explorer_state` takes the logits of trained models on a few
images and a chain of their names and returns, per link, the softened target the link's student is
trained towards and the KD loss (:func:`kdteach.losses.kd_loss`) between the two; no training.
:class:`TAKDChainExplorer` puts a direct chain (teacher -> student) beside a chosen chained one, with
sliders for the temperature and the example shown.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["takd_explorer_state", "TAKDChainExplorer"]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """(B,) Shannon entropy in nats of the rows of (B, C) probabilities."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)


def _check_logits(logits: Any) -> dict[str, torch.Tensor]:
    if not isinstance(logits, Mapping) or not logits:
        raise ValueError(f"logits must be a non-empty dict name -> (B, C) logits, got {type(logits).__name__}")
    out, shape = {}, None
    for name, z in logits.items():
        t = torch.as_tensor(z)
        if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] < 2 or not t.is_floating_point():
            raise ValueError(f"logits[{name!r}] must be a floating-point (B, C) tensor with B >= 1 and C >= 2, "
                             f"got shape {tuple(t.shape)} dtype {t.dtype}")
        if shape is not None and t.shape != shape:
            raise ValueError(f"logits[{name!r}] has shape {tuple(t.shape)}, expected {tuple(shape)} like the others")
        shape = t.shape
        out[str(name)] = t.detach().float()
    return out


def takd_explorer_state(logits: Mapping[str, Any], chain: Sequence[str], labels: Any, temperature: float) -> dict:
    """The KD targets and losses along ``chain`` (TAKD, Mirzadeh et al., AAAI 2020, Sec. 3).

    Link i (i = 1 .. L-1) trains ``chain[i]`` towards p_{i-1} = softmax(z_{i-1} / T), the softened
    output of ``chain[i-1]``, with KD's soft term T² · (1/B) Σ_b KL(p_{i-1} ‖ p_i)
    (:func:`kdteach.losses.kd_loss`); a chain of two is the direct teacher -> student run.

    Args:
        logits: name -> (B, C) logits of a trained model on the same B images (same shape for all).
        chain: at least two names of ``logits``, teacher first, the final student last.
        labels: (B,) integer labels in [0, C).
        temperature: T > 0.

    Returns:
        dict with ``chain`` (list of names), ``temperature``; ``probs``: name -> (B, C) softened
        probabilities at T for every name of the chain; ``links``: one dict per link with
        ``teacher``, ``student``, ``kd`` (kd_loss of the student's logits against the teacher's, float),
        ``target_entropy`` (mean entropy of the link's softened target, nats) and ``agreement``
        (percent of the B images on which the two pick the same class); ``accuracy``: name -> top-1
        accuracy on the B images (percent).

    Raises:
        ValueError: logits not a dict of equal-shape (B, C) float tensors, a chain shorter than two or
            naming an unknown model, labels not (B,) integers in [0, C), temperature not a finite number > 0.
    """
    from kdteach.losses import kd_loss, softened_probs

    z = _check_logits(logits)
    chain = [chain] if isinstance(chain, str) else [str(c) for c in chain]
    if len(chain) < 2:
        raise ValueError(f"chain must name at least a teacher and a student, got {chain!r}")
    unknown = [c for c in chain if c not in z]
    if unknown:
        raise ValueError(f"chain names {unknown} not in logits (known: {sorted(z)})")
    b, c = next(iter(z.values())).shape
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != b or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be a ({b},) integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= c:
        raise ValueError(f"labels must lie in [0, {c}), got range [{int(y.min())}, {int(y.max())}]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    t = float(temperature)
    with torch.no_grad():
        probs = {name: softened_probs(z[name], t) for name in chain}
        links = []
        for prev, cur in zip(chain[:-1], chain[1:]):
            links.append({"teacher": prev, "student": cur, "kd": float(kd_loss(z[cur], z[prev], t)),
                          "target_entropy": float(_entropy(probs[prev]).mean()),
                          "agreement": 100.0 * float((z[cur].argmax(1) == z[prev].argmax(1)).float().mean())})
        accuracy = {name: 100.0 * float((z[name].argmax(1) == y.long()).float().mean()) for name in chain}
    return {"chain": chain, "temperature": t, "probs": probs, "links": links, "accuracy": accuracy}


class TAKDChainExplorer(widgets.VBox):
    """A direct chain (teacher -> student) beside a chained one (teacher -> assistant -> student): the
    softened target each link's student is trained towards, on one example, and the KD loss of every
    link over the images (Mirzadeh et al., AAAI 2020). Sliders: temperature T and the example; a menu
    picks the chained run.

    Args:
        logits: name -> (B, C) logits of trained models on the same images.
        labels: (B,) integer labels.
        class_names: C class names (figure tick labels).
        direct: the direct chain, e.g. ``["teacher", "student (KD)"]``.
        chains: label -> chained chain, e.g. ``{"via tiny_assistant": ["teacher", "tiny_assistant",
            "student (TAKD)"]}``.
        temperature: starting T (default: the ``takd`` method's, 4).

    Attributes: ``temperature``, ``sample`` (sliders), ``chain`` (dropdown), ``output`` (Output),
    ``state`` (``{"direct": ..., "chained": ...}``, two :func:`takd_explorer_state` dicts), ``last_figure``.
    """

    def __init__(self, logits: Mapping[str, Any], labels: Any, class_names: Sequence[str], direct: Sequence[str],
                 chains: Mapping[str, Sequence[str]], temperature: float | None = None):
        from kdteach.methods.takd import TAKD

        super().__init__()
        temperature = TAKD.defaults["temperature"] if temperature is None else temperature
        self._z = _check_logits(logits)
        self._y = torch.as_tensor(labels)
        self.class_names = [str(c) for c in class_names]
        n, k = next(iter(self._z.values())).shape
        if len(self.class_names) != k:
            raise ValueError(f"class_names has {len(self.class_names)} names, expected C = {k}")
        if not isinstance(chains, Mapping) or not chains:
            raise ValueError(f"chains must be a non-empty dict label -> chain, got {chains!r}")
        self._direct = list(direct)
        self._chains = {str(label): list(ch) for label, ch in chains.items()}
        takd_explorer_state(self._z, self._direct, self._y, temperature)       # validate early
        for ch in self._chains.values():
            takd_explorer_state(self._z, ch, self._y, temperature)
        slider = dict(continuous_update=False)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.5, max=20.0, step=0.5, description="T", **slider)
        self.sample = widgets.IntSlider(value=0, min=0, max=n - 1, description="example", **slider)
        self.chain = widgets.Dropdown(options=list(self._chains), value=next(iter(self._chains)), description="chain")
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.temperature, self.sample, self.chain):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.chain, self.temperature, self.sample]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute both states and the figure for the current controls (the controls call this)."""
        t = self.temperature.value
        direct = takd_explorer_state(self._z, self._direct, self._y, t)
        chained = takd_explorer_state(self._z, self._chains[self.chain.value], self._y, t)
        i = self.sample.value
        fig = Figure(figsize=(11, 3.6))    # fixed margins: a layout engine doubles the draw time
        ax_p, ax_l = fig.subplots(1, 2, width_ratios=[2, 1])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.3, top=0.9, wspace=0.25)
        names = list(dict.fromkeys(direct["chain"] + chained["chain"]))
        probs = {**direct["probs"], **chained["probs"]}
        x = list(range(len(self.class_names)))
        w = 0.8 / len(names)
        for j, name in enumerate(names):
            ax_p.bar([v - 0.4 + w * (j + 0.5) for v in x], probs[name][i].tolist(), width=w, label=name)
        ax_p.set_xticks(x, self.class_names, rotation=30, ha="right")
        ax_p.set_ylabel(f"softmax(z / T), T = {t:g}")
        ax_p.set_title(f"example {i}, label: {self.class_names[int(self._y[i])]}")
        ax_p.legend(fontsize="x-small")
        bars = [(f"{l['teacher']} -> {l['student']}", l["kd"], "tab:blue") for l in direct["links"]]
        bars += [(f"{l['teacher']} -> {l['student']}", l["kd"], "tab:orange") for l in chained["links"]]
        ax_l.bar(range(len(bars)), [b[1] for b in bars], color=[b[2] for b in bars])
        ax_l.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=20, ha="right", fontsize="x-small")
        ax_l.set_title("kd_loss per link (blue: direct, orange: chained)", fontsize="small")
        rows = [["direct" if k == 0 else self.chain.value, l["teacher"], l["student"], f"{l['kd']:.4f}",
                 f"{l['target_entropy']:.3f}", f"{l['agreement']:.0f}"]
                for k, s in enumerate((direct, chained)) for l in s["links"]]
        header = ["run", "link teacher", "link student", "kd_loss", "target entropy (nats)", "agreement (%)"]
        plain = "; ".join(f"{r[1]} -> {r[2]}: kd_loss {r[3]}" for r in rows)
        self.state, self.last_figure = {"direct": direct, "chained": chained}, fig
        self.output.outputs = (_figure_output(fig, "Figure: KD targets along the chains and kd_loss per link"),
                               _html_output(_html_table(header, rows), html.escape(plain)))
        return self.state
