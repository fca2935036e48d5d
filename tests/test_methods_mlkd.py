"""kdteach.methods.mlkd: the authors' defaults, masks and term assembly, the strong view, training, resume, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kdteach.train as T
from kdteach.losses import kd_loss, mlkd_batch_loss, mlkd_class_loss
from kdteach.methods import get_method, list_methods
from kdteach.methods.base import batch_losses
from kdteach.methods.mlkd import MLKD, confidence_masks, median_mask_fraction, temperatures
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")

TERMS = ["ce", "instance_weak", "instance_strong", "batch", "class"]


@pytest.fixture
def tiny_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=2)


def test_registered_with_the_authors_defaults():
    assert "mlkd" in list_methods()
    m = get_method("mlkd")
    assert isinstance(m, MLKD) and m.needs_teacher and m.protocol == "offline" and not m.uses_warmup
    # mdistiller/engine/cfg.py of the MLKD repository: KD.TEMPERATURE 4, KD.LOSS.CE_WEIGHT 0.1, KD_WEIGHT 0.9
    # every level weighted by KD_WEIGHT (batch_weight = class_weight = 1), the strong view on the whole batch
    assert dict(m.hparams) == {"ce_weight": 0.1, "kd_weight": 0.9, "batch_weight": 1.0, "class_weight": 1.0,
                               "temperature": 4.0, "strong_batch": 0}
    assert temperatures(4.0) == (4.0, 3.0, 5.0, 2.0, 6.0)          # KD_ours.py: self.temperature, 3, 5, 2, 6
    assert temperatures(2) == (2.0, 3.0, 5.0, 2.0, 6.0)
    assert "Multi-level Logit Distillation" in m.paper


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=0.0), ValueError, "'temperature' of method 'mlkd' must be > 0"),
    (dict(strong_batch=-1), ValueError, "'strong_batch' of method 'mlkd' must be an int >= 0"),
    (dict(strong_batch=2.5), ValueError, "'strong_batch' of method 'mlkd' must be an int >= 0"),
    (dict(kd_weight=-0.9), ValueError, "'kd_weight' of method 'mlkd' must be >= 0"),
    (dict(class_weight=-0.01), ValueError, "'class_weight' of method 'mlkd' must be >= 0"),
    (dict(temperatures=3), ValueError, r"unknown hyper-parameter\(s\) \['temperatures'\]"),
    (dict(temperature="4"), TypeError, "'temperature' of method 'mlkd' must be a finite number"),
])
def test_hparams_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        get_method("mlkd", **kwargs)


@pytest.mark.parametrize("values", [
    [0.3, 0.9, 0.1, 0.5],                  # even count: np.percentile interpolates, half are at or below
    [0.3, 0.9, 0.1, 0.5, 0.7],             # odd count: the median itself is kept
    [0.2, 0.2, 0.2, 0.9, 0.9, 0.9],        # ties at the median
])
def test_mask_fraction_is_the_authors_percentile_rule(values):
    v = np.array(values)
    want = float((v <= np.percentile(v, 50)).mean())        # KD_ours.py: confidence.le(np.percentile(., 50))
    assert median_mask_fraction(torch.tensor(values)).item() == pytest.approx(want)


def test_confidence_masks_from_the_teachers_weak_view():
    z = 3 * torch.randn(9, 10, generator=torch.Generator().manual_seed(0))
    p = z.softmax(1).numpy()
    conf, cls = p.max(1), p.sum(0)
    m_b, m_c = confidence_masks(z)
    assert m_b.item() == pytest.approx(float((conf <= np.percentile(conf, 50)).mean()))
    assert m_c.item() == pytest.approx(float((cls <= np.percentile(cls, 50)).mean()))
    assert m_b.item() == pytest.approx(5 / 9) and m_c.item() == pytest.approx(0.5)


def test_terms_are_the_authors_sums(batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method("mlkd", strong_batch=10)
    extras = method.build_extras(student, teacher, get_budget("ci"))
    terms = batch_losses(method, student, teacher, x, y, extras=extras)
    assert list(terms) == TERMS
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v) and v.item() > 0, k
    # recompute from the library losses, with the strong view of step 0 (the same generator seed)
    x_s = method.strong_view(x[:10], extras["views"], "main", 0, 0)
    assert x_s.shape == (10, 3, 16, 16) and not torch.allclose(x_s, x[:10])
    with torch.no_grad():
        zs, zt = student(x), teacher(x)
        zs_s, zt_s = student(x_s), teacher(x_s)
    m_b, m_c = confidence_masks(zt)
    taus = (4.0, 3.0, 5.0, 2.0, 6.0)
    want = {
        "ce": 0.1 * (F.cross_entropy(zs, y) + F.cross_entropy(zs_s, y[:10])),
        "instance_weak": 0.9 * m_b * sum(kd_loss(zs, zt, t) for t in taus),
        # the authors' "strong" sum: T, 3, 5 on the strong view, then 2 and 6 on the weak view again
        "instance_strong": 0.9 * (sum(kd_loss(zs_s, zt_s, t) for t in (4.0, 3.0, 5.0))
                                  + kd_loss(zs, zt, 2.0) + kd_loss(zs, zt, 6.0)),
        "batch": 0.9 * m_b * sum(mlkd_batch_loss(zs, zt, t) for t in taus),
        "class": 0.9 * m_c * sum(mlkd_class_loss(zs, zt, t) for t in taus),
    }
    for k in TERMS:
        assert terms[k].item() == pytest.approx(want[k].item(), rel=1e-4), k
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_batch_and_class_weights_scale_only_their_terms(batch, pair):
    x, y = batch
    student, teacher = pair

    def terms(**h):
        method = get_method("mlkd", **h)
        extras = method.build_extras(student, teacher, None)
        with torch.random.fork_rng():
            return {k: v.item() for k, v in batch_losses(method, student, teacher, x, y, extras=extras).items()}

    base, scaled = terms(), terms(batch_weight=0.1, class_weight=0.01)
    assert scaled["batch"] == pytest.approx(0.1 * base["batch"], rel=1e-5)
    assert scaled["class"] == pytest.approx(0.01 * base["class"], rel=1e-5)
    for k in ("ce", "instance_weak", "instance_strong"):
        assert scaled[k] == pytest.approx(base[k], rel=1e-5), k


def test_strong_batch_sets_how_many_images_get_the_strong_view(batch, pair):
    x, y = batch
    student, teacher = pair
    for strong_batch, want in ((0, [16, 16]), (4, [16, 4])):
        seen = []
        hook = student.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].shape[0]))
        try:
            batch_losses(get_method("mlkd", strong_batch=strong_batch), student, teacher, x, y)
        finally:
            hook.remove()
        assert seen == want


def test_the_views_handle_adds_no_parameters_and_refers_to_the_runs_models(pair):
    student, teacher = pair
    extras = get_method("mlkd").build_extras(student, teacher, get_budget("gpu"))
    views = extras["views"]
    assert views.student is student and views.teacher is teacher and views.dataset == "cifar100"
    assert list(extras.parameters()) == [] and extras.state_dict() == {}
    assert len(list(extras.modules())) == 2                          # the dict and the handle, no networks
    assert get_method("mlkd").build_extras(student, teacher, None)["views"].dataset == "cifar10"   # 10 classes
    g1, g2 = views.generator("main", 3, 7), views.generator("main", 3, 7)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    assert not torch.equal(torch.rand(4, generator=views.generator("main", 3, 8)),
                           torch.rand(4, generator=views.generator("main", 3, 7)))


def test_distillation_terms_vanish_for_a_teacher_copy(batch):
    x, y = batch
    t = T.build_model("tiny_teacher", 10, 1).eval()
    s = T.build_model("tiny_teacher", 10, 1).eval()       # eval: BatchNorm as the teacher's
    terms = batch_losses(get_method("mlkd"), s, t, x, y)
    for k in ("instance_weak", "instance_strong", "batch", "class"):
        assert terms[k].item() == pytest.approx(0.0, abs=1e-6), k


def test_a_few_steps_reduce_the_loss(batch, pair):
    x, y = batch
    student, teacher = pair
    method = get_method("mlkd")
    extras = method.build_extras(student, teacher, None)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    first = last = None
    for _ in range(12):
        terms = batch_losses(method, student, teacher, x, y, extras=extras)   # the same strong view each step
        total = sum(terms.values())
        first = first or {k: v.item() for k, v in terms.items()}
        last = {k: v.item() for k, v in terms.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    assert sum(last.values()) < 0.8 * sum(first.values())
    for k in ("instance_weak", "batch", "class"):
        assert last[k] < first[k], k


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


def mlkd_trainer(budget, checkpoint=None, student_seed=0):
    student = T.build_model("tiny_student", 10, student_seed)
    teacher = T.build_model("tiny_teacher", 10, 1)
    return T.Trainer(get_method("mlkd", strong_batch=16), student, teacher, budget, seed=0, progress=False,
                     checkpoint=checkpoint, device="cpu")


def test_trainer_runs_and_resumes_bitwise(tiny_budget, tmp_path):
    full = mlkd_trainer(tiny_budget, tmp_path / "full.pt")
    history = full.fit()
    assert [set(e["loss"]) for e in history] == [set(TERMS) | {"total"}] * 2
    part = mlkd_trainer(tiny_budget, tmp_path / "part.pt")
    part.fit(stop_after=1)
    resumed = mlkd_trainer(tiny_budget, tmp_path / "part.pt", student_seed=99)   # weights come from the checkpoint
    assert strip_times(resumed.fit()) == strip_times(history)
    for (k, a), b in zip(full.student.state_dict().items(), resumed.student.state_dict().values()):
        assert torch.equal(a, b), k


def test_kdteach_distill_method_mlkd(distill_cli):
    rec, _ = distill_cli("mlkd", "strong_batch=16")
    assert rec["hparams"] == {"ce_weight": 0.1, "kd_weight": 0.9, "batch_weight": 1.0, "class_weight": 1.0,
                              "temperature": 4.0, "strong_batch": 16}
    assert set(rec["history"][0]["loss"]) == set(TERMS) | {"total"}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_step_under_bf16_autocast(batch):
    x, y = (t.cuda() for t in batch)
    student = T.build_model("tiny_student", 10, 0).cuda()
    teacher = T.build_model("tiny_teacher", 10, 1).cuda().eval()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        terms = batch_losses(get_method("mlkd"), student, teacher, x, y)
    for k, v in terms.items():
        assert v.device.type == "cuda" and v.dtype == torch.float32 and torch.isfinite(v), k
    sum(terms.values()).backward()
