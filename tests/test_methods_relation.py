"""kdteach.methods.rkd and kdteach.methods.crd: the authors' weights, the loss terms, CRD's memory bank
(sampling, momentum update, Z, checkpointed state: a resumed run equals an uninterrupted one), the CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import kdteach.train as T
from kdteach.losses import crd_nce_loss, rkd_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.crd import CRD, CRDMemory, bank_bytes
from kdteach.methods.rkd import RKD
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture
def tiny_budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=2)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))


def make_trainer(method, budget, checkpoint=None, student_seed=0, **hp):
    return T.Trainer(get_method(method, **hp), T.build_model("tiny_student", 10, student_seed),
                     T.build_model("tiny_teacher", 10, 123), budget, seed=0, progress=False,
                     checkpoint=checkpoint, device="cpu")


# ------------------------------------------------------------------------------------------------ RKD

def test_rkd_registered_with_the_benchmarks_weights():
    assert "rkd" in list_methods()
    m = get_method("rkd")
    assert isinstance(m, RKD) and "1904.05068" in m.paper
    # run_cifar_distill.sh: --distill rkd -a 0 -b 1; RKDLoss(w_d=25, w_a=50)
    assert dict(m.hparams) == {"ce_weight": 1.0, "rkd_weight": 1.0, "distance_weight": 25.0, "angle_weight": 50.0,
                               "kd_weight": 0.0, "temperature": 4.0}
    assert m.student_features(None) == ["pool"]


def test_rkd_terms_on_a_batch(batch, pair):
    student, teacher = pair
    terms = batch_losses(get_method("rkd", rkd_weight=2.0), student, teacher, *batch)
    assert list(terms) == ["ce"] + ["rkd"]
    from kdteach.features import extract
    fs = extract(student, batch[0], ["pool"])[1]["pool"]
    ft = extract(teacher, batch[0], ["pool"])[1]["pool"]
    assert terms["rkd"].item() == pytest.approx(2.0 * rkd_loss(fs, ft).item(), rel=1e-4)
    with_kd = batch_losses(get_method("rkd", kd_weight=0.9), student, teacher, *batch)
    assert list(with_kd) == ["ce", "rkd", "kd"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(angle_weight=-1.0), ValueError, "'angle_weight' of method 'rkd' must be >= 0"),
    (dict(temperature=0.0), ValueError, "'temperature' of method 'rkd'"),
    (dict(w_d=1.0), ValueError, r"unknown hyper-parameter\(s\) \['w_d'\]"),
])
def test_rkd_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("rkd", **kwargs)


def test_rkd_training_reduces_its_term(tiny_budget):
    history = make_trainer("rkd", tiny_budget.replace(epochs=3)).fit()
    assert history[-1]["loss"]["rkd"] < history[0]["loss"]["rkd"]


def test_kdteach_distill_method_rkd(distill_cli):
    rec, _ = distill_cli("rkd")
    assert rec["hparams"]["rkd_weight"] == 1.0 and "rkd" in rec["history"][0]["loss"]


# ------------------------------------------------------------------------------------------------ CRD

def test_crd_registered_with_the_authors_defaults():
    assert "crd" in list_methods()
    m = get_method("crd")
    assert isinstance(m, CRD) and "1910.10699" in m.paper and m.needs_index
    # run_cifar_distill.sh: --distill crd -a 0 -b 0.8; train_student.py: feat_dim 128, nce_k 16384, nce_t 0.07,
    # nce_m 0.5
    assert dict(m.hparams) == {"ce_weight": 1.0, "crd_weight": 0.8, "kd_weight": 0.0, "temperature": 4.0,
                               "feat_dim": 128, "nce_k": 16384, "nce_t": 0.07, "nce_m": 0.5}
    assert bank_bytes(50_000) == 51_200_000                    # full CIFAR-100: 51.2 MB


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(nce_k=0), ValueError, "'nce_k' of method 'crd' must be an int >= 1"),
    (dict(nce_m=1.0), ValueError, r"'nce_m' of method 'crd' \(bank momentum\) must be in \[0, 1\)"),
    (dict(nce_t=-0.1), ValueError, "'nce_t' of method 'crd' must be > 0"),
    (dict(crd_weight=-1.0), ValueError, "'crd_weight' of method 'crd' must be >= 0"),
])
def test_crd_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("crd", **kwargs)


def test_crd_needs_the_training_labels(pair):
    with pytest.raises(ValueError, match="needs the training labels"):
        get_method("crd").build_extras(*pair, None)


def test_sampling_positive_first_then_only_other_classes():
    labels = torch.tensor([0, 1, 1, 2, 0, 2, 2, 1, 0, 0])
    memory = CRDMemory(labels, feat_dim=4)
    index = torch.arange(10)
    idx = memory.sample(index, 500, epoch=3, step=1)
    assert torch.equal(idx, memory.sample(index, 500, epoch=3, step=1))            # a function of (seed, epoch, step)
    assert not torch.equal(idx, memory.sample(index, 500, epoch=3, step=2))
    assert idx.shape == (10, 501) and torch.equal(idx[:, 0], index)
    neg = idx[:, 1:]
    assert (labels[neg] != labels[index].unsqueeze(1)).all()
    # every other-class image is drawn, about uniformly (1 / (N - n_c) each)
    for i in range(10):
        others = (labels != labels[i]).nonzero().flatten()
        counts = torch.bincount(neg[i], minlength=10)[others].float()
        assert (counts > 0).all() and counts.max() / counts.min() < 2.5
    with pytest.raises(ValueError, match="two classes"):
        CRDMemory(torch.zeros(5, dtype=torch.long))


def test_memory_update_is_the_normalised_momentum_average():
    memory = CRDMemory(torch.tensor([0, 1, 0, 1]), feat_dim=3)
    before_s, before_t = memory.bank_s.clone(), memory.bank_t.clone()
    v_s, v_t = F.normalize(torch.randn(2, 3), dim=1), F.normalize(torch.randn(2, 3), dim=1)
    index = torch.tensor([2, 0])
    memory.update(index, v_s, v_t, 0.5)
    assert torch.allclose(memory.bank_s[2], F.normalize(0.5 * before_s[2] + 0.5 * v_s[0], dim=0))
    assert torch.allclose(memory.bank_t[0], F.normalize(0.5 * before_t[0] + 0.5 * v_t[1], dim=0))
    assert torch.equal(memory.bank_s[[1, 3]], before_s[[1, 3]])                # untouched rows
    assert set(memory.state_dict()) == {"bank_s", "bank_t", "z", "labels", "seed"}


def test_crd_terms_recomputed_by_hand(batch, pair):
    """One step of CRD through batch_losses, redone from the module doc with the same random draw."""
    student, teacher = pair
    x, y = batch
    method = get_method("crd", nce_k=7)
    method.train_labels = torch.cat([y, (y + 1) % 10])             # a 32-image "training split"
    torch.manual_seed(0)
    extras = method.build_extras(student, teacher, None)
    bank_s, bank_t = extras["memory"].bank_s.clone(), extras["memory"].bank_t.clone()
    index = torch.arange(16)
    terms = batch_losses(method, student, teacher, x, y, extras=extras, index=index)
    from kdteach.features import extract
    with torch.no_grad():
        v_s = F.normalize(extras["embed_s"](extract(student, x, ["pool"])[1]["pool"]), dim=1)
        v_t = F.normalize(extras["embed_t"](extract(teacher, x, ["pool"])[1]["pool"]), dim=1)
    idx = extras["memory"].sample(index, 7, epoch=0, step=0)
    out_s = torch.exp(torch.einsum("bkd,bd->bk", bank_t[idx], v_s) / 0.07)
    out_t = torch.exp(torch.einsum("bkd,bd->bk", bank_s[idx], v_t) / 0.07)
    out_s, out_t = out_s / (out_s.mean() * 32), out_t / (out_t.mean() * 32)
    want = 0.8 * (crd_nce_loss(out_s, 32) + crd_nce_loss(out_t, 32))
    assert list(terms) == ["ce", "crd"]
    assert terms["crd"].item() == pytest.approx(want.item(), rel=1e-4)
    z = extras["memory"].z
    assert (z > 0).all()                                             # fixed from the first batch
    assert not torch.equal(extras["memory"].bank_s[:16], bank_s[:16])   # the batch's entries moved
    assert torch.equal(extras["memory"].bank_s[16:], bank_s[16:])
    terms["crd"].backward()
    assert extras["embed_s"].weight.grad.abs().sum() > 0 and extras["embed_t"].weight.grad.abs().sum() > 0


def test_crd_training_reduces_its_term_once_the_bank_holds_embeddings(tiny_budget):
    """Epoch 1 scores against the random initial bank (every score about the same, a low NCE loss); from
    epoch 2 on the bank holds the networks' embeddings and training lowers the loss."""
    history = make_trainer("crd", tiny_budget.replace(train_subset=512, epochs=6), nce_k=64).fit()
    crd = [h["loss"]["crd"] for h in history]
    assert crd[-1] < crd[1] and crd[-1] < max(crd) - 2.0


def test_crd_resume_is_bitwise_exact_bank_included(tiny_budget, tmp_path):
    budget = tiny_budget.replace(epochs=3)
    full = make_trainer("crd", budget, tmp_path / "full.pt", nce_k=32)
    full_history = full.fit()
    part = make_trainer("crd", budget, tmp_path / "part.pt", nce_k=32)
    part.fit(stop_after=1)
    resumed = make_trainer("crd", budget, tmp_path / "part.pt", student_seed=99, nce_k=32)
    resumed_history = resumed.fit()
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]   # noqa: E731
    assert strip(resumed_history) == strip(full_history)
    for (k, a), b in zip(full.extras.state_dict().items(), resumed.extras.state_dict().values()):
        assert torch.equal(a, b), k
    assert full.extras["memory"].z.min() > 0


def test_kdteach_distill_method_crd(distill_cli):
    rec, _ = distill_cli("crd", "nce_k=256")
    assert rec["hparams"]["nce_k"] == 256 and "crd" in rec["history"][0]["loss"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_crd_trains_on_cuda(tiny_budget):
    tr = T.Trainer(get_method("crd", nce_k=64), T.build_model("tiny_student", 10, 0),
                   T.build_model("tiny_teacher", 10, 1), tiny_budget.replace(epochs=1), seed=0, progress=False,
                   device="cuda")
    history = tr.fit()
    assert tr.extras["memory"].bank_s.device.type == "cuda" and torch.isfinite(torch.tensor(history[0]["loss"]["crd"]))
