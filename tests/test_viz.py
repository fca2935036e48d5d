"""Tests of kdteach.viz: each function returns a Figure with the expected axes, English text only."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from kdteach import viz  # noqa: E402
from kdteach.losses import attention_map, fsp_matrix, svd_features  # noqa: E402

CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@pytest.fixture
def figures():
    """Collects the figures a test makes; checks they stay out of pyplot, then closes them."""
    made: list[Figure] = []
    before = set(plt.get_fignums())
    yield made
    assert set(plt.get_fignums()) == before, "viz functions must not register figures with pyplot"
    for fig in made:
        plt.close(fig)


def check(fig: Figure, n_axes: int, made: list[Figure]) -> Figure:
    made.append(fig)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert not any(CJK.search(t) for t in texts), [t for t in texts if CJK.search(t)]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)       # renders without error
    assert buf.getvalue()[:4] == b"\x89PNG"
    return fig


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def history(n, start=50.0):
    return [{"epoch": e, "test_acc": start + e, "train_acc": start + 2 * e, "lr": 0.1 / e, "seconds": 1.5 * e,
             "loss": {"ce": 1.0 / e, "kd": 0.5 / e}} for e in range(1, n + 1)]


def test_softened_distributions(figures):
    names = [f"class {i}" for i in range(10)]
    fig = check(viz.plot_softened_distributions(torch.randn(10, generator=gen(0)), (1, 4, 20), names), 3, figures)
    assert titles(fig) == ["T = 1", "T = 4", "T = 20"]
    heights = [sum(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert heights == pytest.approx([1.0, 1.0, 1.0])          # each panel is a distribution
    tallest = [max(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert tallest[0] > tallest[1] > tallest[2]                # softer as T grows
    check(viz.plot_softened_distributions(np.random.default_rng(0).normal(size=(2, 5)), [2.0]), 2, figures)
    with pytest.raises(ValueError, match="temperatures must be finite numbers > 0"):
        viz.plot_softened_distributions(torch.zeros(3), [0.0])
    with pytest.raises(ValueError, match=r"class_names must have 3 names"):
        viz.plot_softened_distributions(torch.zeros(3), [1.0], ["a"])
    with pytest.raises(ValueError, match=r"logits must have shape \(C,\) or \(N, C\)"):
        viz.plot_softened_distributions(torch.zeros(1, 2, 3), [1.0])


def test_attention_maps(figures):
    images = torch.rand(3, 3, 16, 16, generator=gen(1))
    f1 = torch.randn(3, 8, 16, 16, generator=gen(2)).relu()
    f2 = torch.randn(3, 16, 8, 8, generator=gen(3)).relu()
    maps = {"teacher": {"layer1": attention_map(f1), "layer2": attention_map(f2)},
            "student": {"layer1": attention_map(f1, mode="max_p"), "layer2": attention_map(f2, mode="sum")}}
    fig = check(viz.plot_attention_maps(images, maps, row_labels=["cat", "dog", "ship"], title="Attention"),
                3 * 5, figures)
    assert titles(fig)[:5] == ["image", "teacher\nlayer1", "teacher\nlayer2", "student\nlayer1", "student\nlayer2"]
    assert {ax.images[0].get_interpolation() for ax in fig.axes[1:5]} == {"nearest"}   # true resolution by default
    smooth = check(viz.plot_attention_maps(None, {"teacher": {"layer1": attention_map(f1)}}, normalize=False,
                                           interpolation="bilinear"), 3, figures)
    assert smooth.axes[0].images[0].get_interpolation() == "bilinear"
    with pytest.raises(ValueError, match=r"maps\['teacher'\]\['layer1'\] must hold one map per image \(3\)"):
        viz.plot_attention_maps(images, {"teacher": {"layer1": attention_map(f1)[:2]}})
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, H, W\)"):
        viz.plot_attention_maps(torch.rand(2, 5, 4, 4), maps)
    with pytest.raises(TypeError, match=r"maps must be a dict"):
        viz.plot_attention_maps(images, [attention_map(f1)])


def test_cam_overlays(figures):
    images = torch.rand(2, 3, 32, 32, generator=gen(4))
    cam = torch.randn(2, 4, 4, generator=gen(5))
    fig = check(viz.plot_cam_overlays(images, {"CAM": cam, "Grad-CAM": cam / 16, "zero": torch.zeros(2, 4, 4)},
                                      row_labels=["a", "b"]), 2 * 4, figures)
    assert titles(fig)[:4] == ["image", "CAM", "Grad-CAM", "zero"]
    overlay = fig.axes[1].get_images()[1].get_array()
    assert overlay.shape == (32, 32)                           # up-sampled to the image size
    assert float(overlay.min()) == 0.0 and float(overlay.max()) == pytest.approx(1.0)
    assert np.all(np.asarray(fig.axes[3].get_images()[1].get_array()) == 0)  # constant map: no NaN
    with pytest.raises(ValueError, match="alpha must lie in"):
        viz.plot_cam_overlays(images, {"CAM": cam}, alpha=2)


def test_fsp_matrices(figures):
    f1 = torch.randn(4, 8, 8, 8, generator=gen(6))
    f2 = torch.randn(4, 16, 4, 4, generator=gen(7))
    mats = {"teacher 1-2": fsp_matrix(f1, f2), "student 1-2": fsp_matrix(f1 * 2, f2)[0],
            "teacher 2-2": fsp_matrix(f2, f2)}
    fig = check(viz.plot_fsp_matrices(mats), 3 + 1, figures)
    clims = {im.get_clim() for ax in fig.axes[:3] for im in ax.get_images()}
    assert len(clims) == 1                                     # one shared colour scale
    check(viz.plot_fsp_matrices(mats, ncols=2), 3 + 1, figures)
    with pytest.raises(ValueError, match=r"must have shape \(C1, C2\) or \(B, C1, C2\)"):
        viz.plot_fsp_matrices({"x": torch.zeros(3)})


def test_singular_vectors(figures):
    feats = [torch.randn(2, c, h, h, generator=gen(c)).relu() for c, h in [(8, 8), (16, 4), (16, 2)]]
    svd = {"teacher": [svd_features(f, 1) for f in feats], "student": [svd_features(f * 0.5, 4) for f in feats]}
    fig = check(viz.plot_singular_vectors(svd, stage_names=["layer1", "layer2", "layer3"]), 3 * 3 + 1, figures)
    assert titles(fig)[:3] == ["layer1", "layer2", "layer3"]
    raw = {"teacher": [svd_features(f) for f in feats[:2]]}
    check(viz.plot_singular_vectors(raw, sample=1), 2 * 2 + 1, figures)
    with pytest.raises(ValueError, match="same number of stages"):
        viz.plot_singular_vectors({"teacher": svd["teacher"], "student": svd["student"][:2]})
    with pytest.raises(ValueError, match="sample=5 is out of range"):
        viz.plot_singular_vectors(raw, sample=5)


def test_similarity_matrix(figures):
    m = torch.softmax(torch.randn(10, 10, generator=gen(8)), 1)
    fig = check(viz.plot_similarity_matrix(m, [f"c{i}" for i in range(10)], "Dark knowledge"), 2, figures)
    assert fig.axes[0].get_title() == "Dark knowledge"
    assert len(fig.axes[0].texts) == 100                       # annotated cells
    check(viz.plot_similarity_matrix(np.eye(20)), 2, figures)
    with pytest.raises(ValueError, match=r"matrix must be square"):
        viz.plot_similarity_matrix(torch.zeros(3, 4))


def test_curves(figures):
    runs = {"student": history(5), "KD": history(5, start=52.0), "partial": [{"epoch": 1, "lr": 0.1}]}
    fig = check(viz.plot_curves(runs, ["train_acc", "test_acc", "loss", "loss.kd"]), 4, figures)
    lines = fig.axes[1].get_lines()
    assert [ln.get_label() for ln in lines] == ["student", "KD"]  # "partial" has no test_acc
    assert list(lines[1].get_ydata()) == [53.0, 54.0, 55.0, 56.0, 57.0]
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == pytest.approx([1.5 / e for e in range(1, 6)])
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 4
    check(viz.plot_curves({"a": history(3)}, "lr"), 1, figures)
    assert viz.history_values([{"epoch": 2, "loss": {"total": 3.0, "ce": 1.0}}], "loss") == ([2.0], [3.0])
    with pytest.raises(ValueError, match=r"no history .* has values for metric 'bogus'"):
        viz.plot_curves(runs, "bogus")
    with pytest.raises(TypeError, match=r"histories_by_label\['x'\] must be a list of per-epoch dicts"):
        viz.plot_curves({"x": {"epoch": 1}}, "lr")


def test_bars(figures):
    fig = check(viz.plot_bars([61.2, 62.5, 60.1], [0.4, 0.3, 0.8], ["student", "KD", "AT"], "test accuracy (%)"),
                1, figures)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([61.2, 62.5, 60.1])
    assert ax.get_ylabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["student", "KD", "AT"]
    check(viz.plot_bars(torch.tensor([1.0, 2.0]), ylabel="loss"), 1, figures)
    long = ["takd / tiny_student / tiny_teacher>tiny_assistant", "kd / tiny_student / tiny_teacher", "student"]
    fig = check(viz.plot_bars([50.1, 51.7, 49.0], [0.3, 1.0, 0.0], long, "accuracy (%)", horizontal=True), 1, figures)
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == pytest.approx([50.1, 51.7, 49.0])
    assert [t.get_text() for t in ax.get_yticklabels()] == long and ax.get_xlabel() == "accuracy (%)"
    assert ax.get_ylim() == (2.5, -0.5)   # the first bar on top
    # every label lies inside the figure once drawn (nothing cut off at the left edge)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for t in ax.get_yticklabels():
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (t.get_text(), box)
    with pytest.raises(ValueError, match=r"stds must have 3 values like means"):
        viz.plot_bars([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"labels must have 3 entries"):
        viz.plot_bars([1, 2, 3], None, ["a"])


def test_figure_png_and_ipython_registration():
    from matplotlib.figure import Figure

    from kdteach.viz import figure_png, register_notebook_display

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    registered = {}

    class _Formatter:
        def for_type(self, typ, func):
            registered[typ] = func

    class _Shell:
        class display_formatter:  # noqa: N801 - mimics IPython's attribute
            formatters = {"image/png": _Formatter()}

    assert register_notebook_display(_Shell()) is True
    assert registered[Figure](fig)[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="Figure"):
        figure_png("not a figure")


def test_plot_curves_with_many_runs_puts_one_legend_beside_the_axes():
    import io
    import warnings

    from kdteach.viz import plot_curves

    runs = {f"method{i} / tiny_student / tiny_teacher / setting={i} s0": [{"epoch": e, "test_acc": 10.0 + i + e}
                                                                          for e in range(1, 6)] for i in range(26)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no "constrained_layout not applied" warning
        fig = plot_curves(runs, "test_acc", title="test accuracy during training")
        fig.savefig(io.BytesIO(), format="png", dpi=40)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert len(fig.legends[0].get_texts()) == 26
    few = plot_curves(dict(list(runs.items())[:3]), "test_acc")
    assert few.axes[0].get_legend() is not None and not few.legends
