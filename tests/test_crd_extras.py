"""The crd notebook's helpers: linear CKA and pooled features (kdteach.analysis), the PCA embedding figure
(kdteach.viz), the NCE explorer (kdteach.widgets.crd)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import kdteach.train as T
from kdteach.analysis import linear_cka, pooled_features, representation_cka
from kdteach.losses import crd_nce_loss
from kdteach.viz import pca_2d, plot_embeddings
from kdteach.widgets.crd import NCEExplorer, nce_explorer_state


def cka_by_hsic(a: torch.Tensor, b: torch.Tensor) -> float:
    """CKA as HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels and the centring matrix H."""
    n = a.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l = a.double() @ a.double().T, b.double() @ b.double().T

    def hsic(x, y):
        return float(torch.trace(x @ h @ y @ h))

    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_golden_and_invariances():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 5, generator=g), torch.randn(30, 8, generator=g)
    assert linear_cka(a, b) == pytest.approx(cka_by_hsic(a, b), rel=1e-9)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    assert linear_cka(a, 3.0 * (a.double() @ q) + 1.0) == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= linear_cka(a, b) < 0.6


@pytest.mark.parametrize("a,b,match", [
    (torch.randn(5, 3), torch.randn(6, 3), "same N"),
    (torch.randn(5), torch.randn(5, 3), "a"),
    (torch.ones(5, 3), torch.randn(5, 3), "no variance"),
])
def test_linear_cka_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        linear_cka(a, b)


def test_pooled_features_and_representation_cka(batch, pair):
    student, teacher = pair
    x, _ = batch
    f = pooled_features(student, x, batch_size=5)
    assert f.shape == (16, student.feature_dim) and f.dtype == torch.float32
    assert torch.allclose(f, pooled_features(student, x, batch_size=16), atol=1e-5)
    assert representation_cka(student, student, x) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 <= representation_cka(student, teacher, x) <= 1.0


def test_pca_2d_and_embedding_figure():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(60, 2, generator=g) * torch.tensor([5.0, 1.0])
    e = torch.cat([base, 0.01 * torch.randn(60, 3, generator=g)], 1)
    p = pca_2d(e)
    assert p.shape == (60, 2)
    assert abs(np.corrcoef(p[:, 0], base[:, 0].numpy())[0, 1]) > 0.99    # the long axis comes first
    fig = plot_embeddings({"teacher": e, "student": e[:, :4]}, torch.arange(60) % 3, ["a", "b", "c"], title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="rows but labels"):
        plot_embeddings({"x": e}, torch.arange(10))
    with pytest.raises(ValueError, match="embedding must be"):
        pca_2d(torch.randn(2, 5))


def test_nce_state_matches_the_library_and_moves_the_right_way():
    st = nce_explorer_state(0.5, 0.0, 16, 100, 0.1)
    raw_p, raw_n = math.exp(5.0), 1.0
    z = 100 * (raw_p + 16 * raw_n) / 17
    scores = torch.tensor([[raw_p / z] + [raw_n / z] * 16], dtype=torch.float64)
    assert st["loss"] == pytest.approx(float(crd_nce_loss(scores, 100)), rel=1e-9)
    assert st["positive_term"] + st["negative_term"] == pytest.approx(st["loss"], rel=1e-9)
    assert 0 < st["p_data_positive"] < 1 and 0 < st["p_noise_negative"] < 1
    # a closer positive lowers the loss; the curve is the loss over the positive's cosine
    assert nce_explorer_state(0.9, 0.0, 16, 100, 0.1)["loss"] < st["loss"]
    xs, ys = st["curve"]
    assert xs[0] == -1 and xs[-1] == 1 and ys[0] > ys[-1]


@pytest.mark.parametrize("args,match", [
    ((1.5, 0.0, 16, 100), "positive_cos"),
    ((0.5, 0.0, 0, 100), "num_negatives"),
    ((0.5, 0.0, 16, 100, 0.0), "temperature"),
])
def test_nce_state_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        nce_explorer_state(*args)


def test_nce_explorer_updates_without_printing(capsys):
    w = NCEExplorer(num_negatives=256, num_data=5590)
    before = w.state["loss"]
    w.positive.value = 0.95
    assert w.state["loss"] < before and w.state["positive_cos"] == pytest.approx(0.95)
    w.negatives.value = 16384
    assert w.state["num_negatives"] == 16384 and isinstance(w.last_figure, Figure)
    assert len(w.output.outputs) == 2
    assert capsys.readouterr().out == ""


def test_crd_retrieval_is_perfect_for_identical_networks_and_heads(batch, pair):
    import copy

    from kdteach.analysis import crd_retrieval
    from kdteach.methods import get_method

    student, _ = pair
    x, y = batch
    method = get_method("crd", nce_k=4)
    method.train_labels = y
    extras = method.build_extras(student, student, None)
    extras["embed_t"] = copy.deepcopy(extras["embed_s"])
    assert crd_retrieval(student, student, extras, x) == pytest.approx(100.0)
    extras["embed_t"] = torch.nn.Linear(student.feature_dim, 128)      # another head: anything in [0, 100]
    assert 0.0 <= crd_retrieval(student, student, extras, x) <= 100.0
    assert extras["embed_s"].weight.device.type == "cpu"
    with pytest.raises(ValueError, match="embed_s"):
        crd_retrieval(student, student, torch.nn.ModuleDict(), x)
