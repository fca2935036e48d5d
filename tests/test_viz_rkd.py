"""kdteach.viz.plot_relation_matrices (the RKD figure) and plot_similarity_pairs' shared colour scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kdteach.viz import plot_relation_matrices, plot_similarity_pairs


def _heatmaps(fig):
    return [ax for ax in fig.axes if ax.images]


def test_sorted_by_class_with_the_mean_normalised_distances_on_one_scale():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    teacher = torch.randn(7, 5, generator=g)
    alone, distilled = torch.randn(7, 3, generator=g), 10.0 * teacher[:, :3]     # other dimensions and scale
    fig = plot_relation_matrices(teacher, {"student alone": alone, "RKD student": distilled}, labels,
                                 class_names=["cat", "dog", "ship"], title="RKD")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "RKD"
    maps = _heatmaps(fig)
    assert len(maps) == 6                                                  # 2 rows x (teacher, student, |diff|)
    order = [1, 3, 6, 2, 5, 0, 4]                                          # stable sort by class
    t = teacher[order].double()
    want = torch.cdist(t, t)
    want = want / want[~torch.eye(7, dtype=bool)].mean()
    assert np.allclose(maps[0].images[0].get_array(), want.numpy(), atol=1e-5)
    s = alone[order].double()
    ws = torch.cdist(s, s)
    ws = ws / ws[~torch.eye(7, dtype=bool)].mean()
    assert np.allclose(maps[1].images[0].get_array(), ws.numpy(), atol=1e-5)
    assert np.allclose(maps[2].images[0].get_array(), (want - ws).abs().numpy(), atol=1e-5)
    # one colour scale for the four matrices of both rows, another for the two differences
    clims = [m.images[0].get_clim() for m in maps]
    assert clims[0] == clims[1] == clims[3] == clims[4] and clims[2] == clims[5]
    assert clims[0][0] == 0.0 and clims[2][0] == 0.0
    assert [x.get_text() for x in maps[0].get_xticklabels()] == ["cat", "dog", "ship"]
    assert len(maps[0].lines) == 4                                         # two class boundaries, both axes


def test_similarity_pairs_rows_keep_their_own_scale_by_default():
    m = np.array([[0.0, 1.0], [1.0, 0.0]])
    own = plot_similarity_pairs({"a": (m, m), "b": (3 * m, 3 * m)}, difference=False)
    shared = plot_similarity_pairs({"a": (m, m), "b": (3 * m, 3 * m)}, difference=False, shared_scale=True)
    assert [ax.images[0].get_clim() for ax in _heatmaps(own)] == [(0.0, 1.0)] * 2 + [(0.0, 3.0)] * 2
    assert [ax.images[0].get_clim() for ax in _heatmaps(shared)] == [(0.0, 3.0)] * 4


@pytest.mark.parametrize("kwargs, match", [
    ({"students": {}}, "students must be a non-empty dict"),
    ({"labels": torch.zeros(4)}, r"labels must be a \(B,\) tensor of integer class labels"),
    ({"students": {"s": torch.randn(3, 2)}}, r"students\['s'\] must be a \(4, D\) tensor"),
    ({"teacher": torch.randn(4, 2, 2)}, r"teacher must be a \(4, D\) tensor"),
])
def test_bad_inputs(kwargs, match):
    args = {"teacher": torch.randn(4, 3), "students": {"s": torch.randn(4, 2)}, "labels": torch.tensor([0, 1, 0, 1])}
    with pytest.raises(ValueError, match=match):
        plot_relation_matrices(**(args | kwargs))
