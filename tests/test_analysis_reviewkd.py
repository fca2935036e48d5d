"""kdteach.analysis.review_residual: the per-stage unexplained variance of the teacher's stages from the
student's same and deeper stages (ReviewKD's review path without trained ABFs)."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach import analysis

pytestmark = pytest.mark.usefixtures("offline_data")

NAMES = ["layer1", "layer2", "layer3"]


def test_the_teacher_explains_itself_and_deeper_stages_help(batch, pair):
    (x, _), (student, teacher) = batch, pair
    same = analysis.review_residual(teacher, teacher, x, NAMES, NAMES, batch_size=5)
    assert same == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    got = analysis.review_residual(student, teacher, x, NAMES, NAMES)
    assert all(0 < v <= 1 for v in got) and len(got) == 3
    # the deepest teacher stage is read from the deepest student stage alone: on post-ReLU features that is
    # hint_residual
    post = analysis.review_residual(student, teacher, x, NAMES, NAMES, preact=False)
    assert post[2] == pytest.approx(analysis.hint_residual(student, teacher, x, "layer3", "layer3"), abs=1e-6)
    # with only the same-depth stage the read-out can only be worse than with the deeper ones added
    only_same = analysis.review_residual(student, teacher, x, ["layer1"], ["layer1"])[0]
    assert got[0] <= only_same + 1e-9


def test_bad_arguments(batch, pair):
    (x, _), (student, teacher) = batch, pair
    with pytest.raises(ValueError, match="the same length"):
        analysis.review_residual(student, teacher, x, NAMES, NAMES[:2])
    with pytest.raises(ValueError, match="batch_size"):
        analysis.review_residual(student, teacher, x, NAMES, NAMES, batch_size=0)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3, H, W\)"):
        analysis.review_residual(student, teacher, x[0], NAMES, NAMES)
