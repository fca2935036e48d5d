"""kdteach.viz.plot_similarity_pairs (the MLKD figure) and the shared matrix cell of plot_similarity_matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdteach.viz import plot_similarity_matrix, plot_similarity_pairs


def probs(b, k, seed):
    return torch.randn(b, k, generator=torch.Generator().manual_seed(seed)).softmax(1)


def test_rows_of_teacher_student_and_difference_on_a_shared_scale():
    pt, ps = probs(8, 5, 0), probs(8, 5, 1)
    fig = plot_similarity_pairs({"batch": (pt @ pt.T, ps @ ps.T), "class": (pt.T @ pt, ps.T @ ps)},
                                labels={"class": list("abcde")}, title="MLKD")
    assert isinstance(fig, Figure)
    heat = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(heat) == 6
    titles = [ax.get_title() for ax in heat]
    assert titles[:3] == ["batch\nteacher", "batch\nstudent", "batch\n|teacher - student|"]
    # teacher and student of a row share one colour scale: the row's joint range
    for row, (a, b) in enumerate([(pt @ pt.T, ps @ ps.T), (pt.T @ pt, ps.T @ ps)]):
        lo, hi = float(torch.minimum(a.min(), b.min())), float(torch.maximum(a.max(), b.max()))
        for ax in heat[3 * row:3 * row + 2]:
            assert ax.images[0].get_clim() == pytest.approx((lo, hi))
        diff = heat[3 * row + 2].images[0].get_array()
        assert np.allclose(diff, np.abs(a.numpy() - b.numpy()))
    assert [t.get_text() for t in heat[3].get_xticklabels()] == list("abcde")
    assert len(fig.axes) == 6 + 4                                       # two colour bars per row
    assert fig._suptitle.get_text() == "MLKD"


def test_without_difference_and_annotations():
    m = np.eye(4)
    fig = plot_similarity_pairs({"only": (m, 0.5 * m)}, difference=False, annotate=True, names=("T", "S"))
    heat = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in heat] == ["only\nT", "only\nS"]
    assert len(heat[0].texts) == 16                                     # one value per cell
    # the single-matrix figure draws its cell the same way
    single = plot_similarity_matrix(m, list("wxyz"), "eye")
    assert len(single.axes[0].texts) == 16 and single.axes[0].images[0].get_clim() == (0.0, 1.0)


@pytest.mark.parametrize("pairs, labels, match", [
    ({}, None, "pairs must be a non-empty dict"),
    ({"a": np.eye(3)}, None, r"pairs\['a'\] must be a \(teacher, student\) pair"),
    ({"a": (np.eye(3), np.eye(4))}, None, r"two square matrices of the same shape, got \(3, 3\) and \(4, 4\)"),
    ({"a": (np.ones((2, 3)), np.ones((2, 3)))}, None, "two square matrices"),
    ({"a": (np.ones(3), np.ones(3))}, None, r"pairs\['a'\] must have shape \(n, n\)"),
    ({"a": (np.eye(3), np.eye(3))}, {"a": ["x"]}, r"labels\['a'\] must have 3 names, got 1"),
    ({"a": (np.eye(3), np.eye(3))}, {"b": None}, r"labels names rows that are not in pairs: \['b'\]"),
])
def test_bad_input(pairs, labels, match):
    with pytest.raises(ValueError, match=match):
        plot_similarity_pairs(pairs, labels)
