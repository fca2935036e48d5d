"""Distillation methods, one file per paper, and their registry.

The registry is the plain dict :data:`METHODS` (name -> class). :func:`get_method` builds one with
hyper-parameter overrides; :func:`list_methods` gives the names. See :mod:`kdteach.methods.base` for
what a method declares.
"""

from __future__ import annotations

from typing import Any

from .base import LossContext, Method, StagePlan, Student, area_rescaled
from .ab import AB
from .at import AT
from .byot import BYOT
from .crd import CRD
from .dafl import DAFL
from .dkd import DKD
from .dml import DML
from .dot import DOT
from .fitnet import FitNet, FitNet1Stage
from .fsp import FSP
from .kd import KD
from .kdsvd import KDSVD
from .mlkd import MLKD
from .nst import NST
from .ofd import OFD
from .reviewkd import ReviewKD
from .rkd import RKD
from .sp import SP
from .sskd import SSKD
from .takd import TAKD
from .tfkd import TfKDReg, TfKDSelf
from .understanding_kd import KDLabelSmoothing, KDPermuted

METHODS: dict[str, type[Method]] = {
    "student": Student,
    "kd": KD,
    "at": AT,
    "fsp": FSP,
    "fitnet": FitNet,
    "fitnet_1stage": FitNet1Stage,
    "nst": NST,
    "ab": AB,
    "ofd": OFD,
    "reviewkd": ReviewKD,
    "rkd": RKD,
    "sp": SP,
    "crd": CRD,
    "sskd": SSKD,
    "kdsvd": KDSVD,
    "dml": DML,
    "byot": BYOT,
    "takd": TAKD,
    "dafl": DAFL,
    "dot": DOT,
    "dkd": DKD,
    "kd_ls": KDLabelSmoothing,
    "kd_permuted": KDPermuted,
    "tfkd_self": TfKDSelf,
    "tfkd_reg": TfKDReg,
    "mlkd": MLKD,
}


def list_methods() -> list[str]:
    """Names accepted by :func:`get_method` (``"student"`` is the no-teacher baseline)."""
    return list(METHODS)


def get_method(name: str, **hparams: Any) -> Method:
    """The method called ``name`` with ``hparams`` overriding its defaults.

    Raises:
        ValueError: unknown method (the message lists the valid names) or unknown hyper-parameter.
    """
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__}")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(list_methods())}")
    return METHODS[name](**hparams)


__all__ = ["METHODS", "area_rescaled", "Method", "StagePlan", "LossContext", "Student", "get_method", "list_methods"]
