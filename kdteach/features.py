"""Capture named intermediate features with forward hooks.

Usage::

    with capture(model, ["layer1", "layer2", "layer3"]) as feats:
        logits = model(x)
    feats["layer2"]            # (B, C, H, W) post-activation output of stage "layer2"

    with capture(teacher, ["layer3", "pool"], preact=True) as feats, torch.inference_mode():
        teacher(x)

Names are a model's declared stage names (:attr:`kdteach.models.KDModel.stages`) plus ``"pool"``,
the pooled penultimate feature (B, feature_dim) that enters the classifier ``fc``. With
``preact=True`` a stage feature is the input of the stage's activation module (before the ReLU),
else its output. The hooks are always removed when the ``with`` block ends, even on error.
Captured tensors are not detached: the student's features carry gradients.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

POOL = "pool"


def feature_names(model: nn.Module) -> list[str]:
    """The names :func:`capture` accepts for ``model``: its stage names, then ``"pool"``."""
    stages = getattr(model, "stages", None)
    if stages is None:
        raise TypeError(f"{type(model).__name__} declares no stages; use a kdteach.models model")
    return [s.name for s in stages] + [POOL]


def _resolve(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """Module to hook for feature ``name`` and which side of it holds the feature."""
    if name == POOL:
        return model.fc, "input"
    for s in model.stages:
        if s.name == name:
            return model.get_submodule(s.module), "stage"
    raise KeyError(f"{type(model).__name__} has no feature {name!r}; valid names: {feature_names(model)}")


@contextmanager
def capture(model: nn.Module, names: Iterable[str] | str, preact: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Context manager that records features during forward passes of ``model``.

    Args:
        model: a kdteach model (declares ``stages`` and has ``fc``).
        names: feature names (see :func:`feature_names`), or a single name.
        preact: capture stage features before their activation (ignored for ``"pool"``).

    Yields:
        A dict name -> tensor, filled (and overwritten) by every forward pass inside the block.
        Stage features are (B, C, H, W); ``"pool"`` is (B, feature_dim).

    Raises:
        KeyError: a name is not a feature of the model (the message lists the valid names).
    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    targets = [(n, *_resolve(model, n)) for n in names]  # validate all before hooking any
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(feat_name: str, side: str):
        def hook(_module, inputs, output):
            if side == "input" or preact:
                store[feat_name] = inputs[0]
            else:
                store[feat_name] = output
        return hook

    try:
        for feat_name, module, side in targets:
            handles.append(module.register_forward_hook(make_hook(feat_name, side)))
        yield store
    finally:
        for h in handles:
            h.remove()


def extract(model: nn.Module, x: torch.Tensor, names: Iterable[str] | str, preact: bool = False,
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass under :func:`capture`: returns ``(logits, features)``."""
    with capture(model, names, preact=preact) as feats:
        logits = model(x)
    return logits, dict(feats)
