"""Load CRD-benchmark checkpoints into kdteach models.

The CIFAR zoo reproduces the CRD benchmark's architectures (Tian et al., "Contrastive
Representation Distillation", ICLR 2020; repo HobbitLong/RepDistiller, ``models/``) with the same
parameter names, shapes and registration order, so a benchmark ``state_dict`` maps onto ours key
for key. What differs is only around the tensors:

* the benchmark's teacher checkpoints are dicts ``{"model": state_dict, "epoch": ..., ...}``;
* weights saved from ``nn.DataParallel`` carry a ``module.`` prefix;
* model names: the benchmark's ``vgg8``..``vgg19`` are its ``vgg8_bn``..``vgg19_bn`` (ours too),
  ``ResNet50`` is our ``resnet50``, ``mobile_half`` our ``mobilenetv2``, ``ShuffleV1``/``ShuffleV2``
  our ``shufflenetv1``/``v2``.

:func:`load_benchmark_state_dict` handles these and then loads strictly, with an error that lists
missing keys, unexpected keys and shape mismatches.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

#: the benchmark's ``model_dict`` names -> kdteach names (same architecture)
BENCHMARK_NAMES: dict[str, str] = {
    **{n: n for n in ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                      "resnet110", "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1",
                      "wrn_40_2", "vgg8", "vgg11", "vgg13", "vgg16", "vgg19")},
    **{f"vgg{d}_bn": f"vgg{d}" for d in (8, 11, 13, 16, 19)},
    "ResNet50": "resnet50",
    "mobile_half": "mobilenetv2",
    "ShuffleV1": "shufflenetv1",
    "ShuffleV2": "shufflenetv2",
}


def kdteach_name(benchmark_name: str) -> str:
    """kdteach model name for a CRD-benchmark model name (e.g. ``"ShuffleV1"`` -> ``"shufflenetv1"``).

    Also accepts the benchmark's checkpoint folder names, e.g. ``"resnet32x4_vanilla"`` or
    ``"wrn_40_2_cifar100_lr_0.05_decay_0.0005_trial_0"`` (the longest known prefix wins).
    """
    if not isinstance(benchmark_name, str):
        raise TypeError(f"benchmark_name must be a str, got {type(benchmark_name).__name__}")
    if benchmark_name in BENCHMARK_NAMES:
        return BENCHMARK_NAMES[benchmark_name]
    prefixes = [n for n in BENCHMARK_NAMES if benchmark_name.startswith(n + "_")]
    if not prefixes:
        raise ValueError(f"unknown CRD-benchmark model name {benchmark_name!r}; known: "
                         f"{', '.join(sorted(BENCHMARK_NAMES))}")
    return BENCHMARK_NAMES[max(prefixes, key=len)]


def _unwrap(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """Plain ``{key: tensor}`` from a benchmark checkpoint or state_dict (``module.`` prefix removed)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping (a state_dict or a checkpoint dict), "
                        f"got {type(state_dict).__name__}")
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]  # the benchmark's {"model": ..., "epoch": ..., ...} checkpoints
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict must map str keys to tensors; key {key!r} holds {type(value).__name__}")
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def first_mismatch(model: nn.Module, state_dict: Mapping) -> str | None:
    """The first tensor (in the model's order) where ``state_dict`` does not fit ``model``, or None.

    Args:
        model: a kdteach zoo model.
        state_dict: a benchmark state_dict or checkpoint, as :func:`load_benchmark_state_dict` takes.

    Returns:
        E.g. ``"layer1.0.conv1.weight: checkpoint (32, 32, 3, 3) vs model (16, 16, 3, 3)"``; a key the
        checkpoint lacks reads ``"<key>: checkpoint has none vs model (...)"``, a key the model lacks
        ``"<key>: checkpoint (...) vs model has none"``. None when every key and shape fits.
    """
    sd = _unwrap(state_dict)
    own = model.state_dict()
    for k, v in own.items():
        if k not in sd or sd[k].shape != v.shape:
            ours = "has none" if k not in sd else tuple(sd[k].shape)
            return f"{k}: checkpoint {ours} vs model {tuple(v.shape)}"
    extra = next((k for k in sd if k not in own), None)
    return None if extra is None else f"{extra}: checkpoint {tuple(sd[extra].shape)} vs model has none"


def load_benchmark_state_dict(model: nn.Module, state_dict: Mapping) -> nn.Module:
    """Load CRD-benchmark weights into a kdteach model of the same architecture, strictly.

    Args:
        model: a kdteach zoo model, e.g. ``create("resnet32x4", num_classes=100)``.
        state_dict: the benchmark model's ``state_dict()`` (keys like ``layer1.0.conv1.weight``),
            possibly with ``module.`` prefixes, or a benchmark checkpoint ``{"model": state_dict, ...}``.

    Returns:
        ``model`` with the weights loaded (in place).

    Raises:
        ValueError: keys missing or unexpected, or shapes that differ (all of them listed), e.g. a
            checkpoint of another architecture or another number of classes.
        TypeError: ``state_dict`` is not a mapping of str to tensors.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    sd = _unwrap(state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
        parts = [f"{name}: {show(items)}" for name, items in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                 if items]
        raise ValueError(f"state_dict does not fit {type(model).__name__} "
                         f"({len(own)} tensors); " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)
    return model
