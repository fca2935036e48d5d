"""The sskd notebook's figure (kdteach.viz.plot_contrastive_similarity) and widget (kdteach.widgets.sskd)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from kdteach.losses import error_rank_keep, sskd_ss_loss, view_targets
from kdteach.viz import plot_contrastive_similarity
from kdteach.widgets.sskd import SSKDSelectionExplorer, sskd_selection_state


def matrices(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(3 * n, n, generator=g) * 2 - 1
    t[torch.arange(3 * n), view_targets(n)] += 0.8                  # the teacher mostly right
    return t.clamp(-1, 1), torch.rand(3 * n, n, generator=g) * 2 - 1


def test_figure_one_panel_per_network_and_bad_shapes():
    t, s = matrices()
    fig = plot_contrastive_similarity({"teacher": t, "student": s}, kept=[0, 1, 5], title="x")
    assert isinstance(fig, Figure) and len(fig.axes) == 3                # two panels and the colour bar
    with pytest.raises(ValueError, match="one shape"):
        plot_contrastive_similarity({"teacher": t, "student": s[:, :5]})
    with pytest.raises(ValueError, match="one shape"):
        plot_contrastive_similarity({"teacher": torch.rand(5, 2)})


def test_selection_state_matches_the_library():
    t, s = matrices(1)
    st = sskd_selection_state(t, s, 0.5, 0.5)
    assert st["kept"] == error_rank_keep(t, view_targets(6), 0.5).tolist()
    assert st["loss"] == pytest.approx(sskd_ss_loss(s, t, 0.5, 0.5).item(), rel=1e-6)
    wrong = (t.argmax(1) != view_targets(6)).sum().item()
    assert len(st["wrong"]) == wrong and len(st["kept"]) == 18 - wrong + int(wrong * 0.5)
    assert 0 <= st["student_accuracy"] <= 100 and st["teacher_accuracy"] > st["student_accuracy"]
    with pytest.raises(ValueError):
        sskd_selection_state(t, s[:, :5])


def test_explorer_updates_without_printing(capsys):
    t, s = matrices(2)
    w = SSKDSelectionExplorer(t, s)
    n_before = len(w.state["kept"])
    w.keep_ratio.value = 0.0
    assert len(w.state["kept"]) <= n_before and w.state["keep_ratio"] == 0.0
    assert isinstance(w.last_figure, Figure) and len(w.output.outputs) == 2
    assert capsys.readouterr().out == ""
