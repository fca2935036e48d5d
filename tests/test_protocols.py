"""Protocols beyond one frozen teacher (DESIGN §9): online / mutual (DML) through the trainer's
extension points (peers are extras, :meth:`Method.heads` evaluates them), with the guarantees of the
offline path: seeded, bit-exact resume, NaN stop, records with every network's accuracy."""

from __future__ import annotations

import pytest
import torch

import kdteach.train as T
from kdteach.losses import kd_loss
from kdteach.methods import get_method
from kdteach.methods.base import batch_losses
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture
def tiny_budget():
    return get_budget("ci").replace(name="unit", train_subset=256, test_subset=128, batch_size=64, epochs=3,
                                    teacher_epochs=1, init_epochs=1)


@pytest.fixture(autouse=True)
def _tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results"))


def dml_trainer(budget, checkpoint=None, student_seed=0, seed=0, **hp):
    student = T.build_model("tiny_student", 10, student_seed)
    return T.Trainer(get_method("dml", **hp), student, None, budget, seed=seed, progress=False,
                     checkpoint=checkpoint, device="cpu")


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


# ---------------------------------------------------------------------------------------------- DML

def test_dml_trains_every_peer_and_records_their_curves(tiny_budget):
    tr = dml_trainer(tiny_budget, peers=2)
    assert sorted(tr.extras) == ["peer1", "peer2"]
    s0 = tr.student.state_dict()
    p0 = {n: {k: v.clone() for k, v in tr.extras[n].state_dict().items()} for n in tr.extras}
    # peers start from their own initialisation, not as copies of the student or of each other
    assert not torch.equal(s0["fc.weight"], p0["peer1"]["fc.weight"])
    assert not torch.equal(p0["peer1"]["fc.weight"], p0["peer2"]["fc.weight"])
    history = tr.fit()
    assert list(history[0]["loss"]) == ["ce", "kl", "ce_peer1", "kl_peer1", "ce_peer2", "kl_peer2", "total"]
    for name in ("ce", "ce_peer1", "ce_peer2"):
        assert history[-1]["loss"][name] < history[0]["loss"][name], name
    for e in history:
        assert set(e["heads"]) == {"peer1", "peer2", "ensemble"}
        assert all(0.0 <= v <= 100.0 for v in e["heads"].values())
    for n in tr.extras:   # every peer was trained
        assert not torch.equal(p0[n]["fc.weight"], tr.extras[n].state_dict()["fc.weight"])
    rec = tr.record()
    assert rec["heads"] == history[-1]["heads"] and rec["teacher"] is None and rec["method"] == "dml"
    # the recorded head accuracies are what evaluating each peer gives
    assert tr.evaluate(tr.extras["peer1"]) == pytest.approx(history[-1]["heads"]["peer1"])


def test_dml_loss_is_ce_plus_kl_to_detached_peers(tiny_budget):
    torch.manual_seed(0)
    method = get_method("dml", peers=2, kl_weight=0.5)
    student = T.build_model("tiny_student", 10, 0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        extras = method.build_extras(student, None, tiny_budget)
    x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 10, (6,))
    terms = batch_losses(method, student, None, x, y, extras=extras)
    z = [student(x), extras["peer1"](x), extras["peer2"](x)]
    want_kl = 0.5 * (kd_loss(z[0], z[1].detach(), 1.0) + kd_loss(z[0], z[2].detach(), 1.0)) / 2
    assert torch.allclose(terms["kl"], want_kl, atol=1e-6)
    want_kl2 = 0.5 * (kd_loss(z[2], z[0].detach(), 1.0) + kd_loss(z[2], z[1].detach(), 1.0)) / 2
    assert torch.allclose(terms["kl_peer2"], want_kl2, atol=1e-6)
    assert torch.allclose(terms["ce_peer1"], torch.nn.functional.cross_entropy(z[1], y), atol=1e-6)
    # the peer targets are detached: the student's KL term moves only the student
    grads = torch.autograd.grad(terms["kl"], list(extras.parameters()) + list(student.parameters()),
                                allow_unused=True)
    n_peer = len(list(extras.parameters()))
    assert all(g is None or not g.any() for g in grads[:n_peer])
    assert any(g is not None and g.abs().sum() > 0 for g in grads[n_peer:])


def test_dml_ensemble_head_is_the_mean_softmax():
    method = get_method("dml", peers=1)
    student = T.build_model("tiny_student", 10, 0)
    extras = method.build_extras(student, None, None)
    student.eval(), extras.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        heads = method.heads(x, student, extras)
        want = (student(x).softmax(1) + extras["peer1"](x).softmax(1)) / 2
    assert torch.allclose(heads["ensemble"], want, atol=1e-6)
    assert torch.allclose(heads["peer1"], extras["peer1"](x), atol=1e-6)


@pytest.mark.parametrize("stop", [1, 2])
def test_dml_resume_is_bitwise_exact(tiny_budget, tmp_path, stop):
    budget = tiny_budget.replace(epochs=3)
    full = dml_trainer(budget, tmp_path / "full.pt")
    full_history = full.fit()
    part = dml_trainer(budget, tmp_path / "part.pt")
    part.fit(stop_after=stop)
    # a new process: other initial weights for the student (and so other peers), restored from the checkpoint
    resumed = dml_trainer(budget, tmp_path / "part.pt", student_seed=99, seed=0)
    assert strip_times(resumed.fit()) == strip_times(full_history)
    for a, b in ((full.student, resumed.student), (full.extras, resumed.extras)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k


def test_dml_other_peer_architecture(tiny_budget):
    tr = dml_trainer(tiny_budget.replace(epochs=1), peer_arch="tiny_teacher")
    assert type(tr.extras["peer1"]).__name__ != type(tr.student).__name__ or \
        sum(p.numel() for p in tr.extras["peer1"].parameters()) != sum(p.numel() for p in tr.student.parameters())
    assert set(tr.fit()[0]["heads"]) == {"peer1", "ensemble"}


def test_dml_bad_inputs(tiny_budget):
    with pytest.raises(ValueError, match="'peers' of method 'dml' must be an int >= 1"):
        get_method("dml", peers=0)
    with pytest.raises(ValueError, match="'peers'"):
        get_method("dml", peers=1.5)
    with pytest.raises(ValueError, match="peer_arch='resnet_x'"):
        dml_trainer(tiny_budget, peer_arch="resnet_x")
    with pytest.raises(ValueError, match="temperature"):
        get_method("dml", temperature=0.0)


def test_dml_nan_stops_with_the_peer_term_named(tiny_budget, tmp_path, monkeypatch):
    from kdteach.methods.dml import DML

    real = DML.loss

    def poisoned(self, ctx):
        terms = real(self, ctx)
        if ctx.epoch == 1 and ctx.step == 1:
            terms["kl_peer1"] = terms["kl_peer1"] * float("nan")
        return terms

    monkeypatch.setattr(DML, "loss", poisoned)
    tr = dml_trainer(tiny_budget, tmp_path / "run.pt")
    with pytest.raises(T.NonFiniteLossError, match=r"'kl_peer1' .* epoch 2 .* step 2/4.*after epoch 1"):
        tr.fit()
    assert (tmp_path / "run.pt").is_file()


def test_heads_must_have_the_right_shape(tiny_budget, monkeypatch):
    from kdteach.methods.dml import DML

    monkeypatch.setattr(DML, "heads", lambda self, x, s, e: {"bad": torch.zeros(x.shape[0], 3)})
    tr = dml_trainer(tiny_budget.replace(epochs=1))
    with pytest.raises(ValueError, match=r"heads\(\)\['bad'\] must be \(\d+, 10\) scores, got \(\d+, 3\)"):
        tr.fit()


def test_distill_dml_records_the_run(tiny_budget):
    from kdteach import results

    run = T.distill("dml", budget=tiny_budget.replace(epochs=1), progress=False)
    assert run.record["teacher"] is None and set(run.record["heads"]) == {"peer1", "ensemble"}
    assert [r["run_id"] for r in results.load_records(method="dml")] == [run.record["run_id"]]


# ---------------------------------------------------------------------------------------------- BYOT (self)

def byot_trainer(budget, checkpoint=None, student_seed=0, arch="tiny_student", **hp):
    student = T.build_model(arch, 10, student_seed)
    return T.Trainer(get_method("byot", **hp), student, None, budget, seed=0, progress=False,
                     checkpoint=checkpoint, device="cpu")


@pytest.mark.parametrize("arch", ["tiny_student", "resnet8"])
def test_byot_exits_match_the_deepest_stage(arch):
    method = get_method("byot")
    student = T.build_model(arch, 10, 0)
    extras = method.build_extras(student, None, None)
    names = method.student_features(student)
    assert sorted(extras) == [f"exit{k}" for k in range(1, len(names))]
    from kdteach.features import capture

    x = torch.randn(2, 3, 16, 16)
    with capture(student, names) as store:
        student(x)
    for k, n in enumerate(names[:-1], start=1):
        z, feat = extras[f"exit{k}"](store[n])
        assert z.shape == (2, 10) and feat.shape == store[names[-1]].shape


def test_byot_loss_terms_by_hand():
    method = get_method("byot", alpha=0.4, temperature=2.0, feature_weight=0.1)
    student = T.build_model("tiny_student", 10, 0)
    extras = method.build_extras(student, None, None)
    x, y = torch.randn(5, 3, 16, 16), torch.randint(0, 10, (5,))
    terms = batch_losses(method, student, None, x, y, extras=extras)
    from kdteach.features import capture

    names = method.student_features(student)
    with capture(student, names) as store:
        z_c = student(x)
    z1, f1 = extras["exit1"](store[names[0]])
    p_c, log_p1 = (z_c / 2.0).softmax(1), (z1 / 2.0).log_softmax(1)
    kl = (p_c * (p_c.log() - log_p1)).sum(1).mean()
    assert torch.allclose(terms["kl_exit1"], 0.4 * kl, atol=1e-6)
    assert torch.allclose(terms["ce_exit1"], 0.6 * torch.nn.functional.cross_entropy(z1, y), atol=1e-6)
    assert torch.allclose(terms["feat_exit1"], 0.1 * (f1 - store[names[-1]]).pow(2).mean(), atol=1e-6)
    assert torch.allclose(terms["ce"], torch.nn.functional.cross_entropy(z_c, y), atol=1e-6)
    # the deepest classifier is the teacher of the KL and hint terms: they do not move it
    fc = list(student.fc.parameters())
    for name in ("kl_exit1", "feat_exit1"):
        grads = torch.autograd.grad(terms[name], fc + list(extras["exit1"].parameters()), allow_unused=True,
                                    retain_graph=True)
        assert all(g is None or not g.any() for g in grads[:len(fc)]), name
        assert any(g is not None and g.abs().sum() > 0 for g in grads[len(fc):]), name


def test_byot_trains_and_records_every_exit(tiny_budget):
    tr = byot_trainer(tiny_budget)
    history = tr.fit()
    assert list(history[0]["loss"])[:4] == ["ce", "ce_exit1", "kl_exit1", "feat_exit1"]
    assert history[-1]["loss"]["ce_exit1"] < history[0]["loss"]["ce_exit1"]
    assert set(history[-1]["heads"]) == {"exit1", "exit2", "ensemble"} and tr.record()["heads"]
    student, extras = tr.student.eval(), tr.extras.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        heads = tr.method.heads(x, student, extras)
        assert torch.allclose(heads["ensemble"], (student(x) + heads["exit1"] + heads["exit2"]) / 3, atol=1e-5)


def test_byot_resume_is_bitwise_exact(tiny_budget, tmp_path):
    budget = tiny_budget.replace(epochs=2)
    full = byot_trainer(budget, tmp_path / "full.pt")
    full_history = full.fit()
    part = byot_trainer(budget, tmp_path / "part.pt")
    part.fit(stop_after=1)
    resumed = byot_trainer(budget, tmp_path / "part.pt", student_seed=99)
    assert strip_times(resumed.fit()) == strip_times(full_history)
    for a, b in ((full.student, resumed.student), (full.extras, resumed.extras)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k


def test_byot_bad_inputs():
    with pytest.raises(ValueError, match="'alpha' of method 'byot' must be in \\[0, 1\\]"):
        get_method("byot", alpha=1.5)
    with pytest.raises(ValueError, match="'temperature'"):
        get_method("byot", temperature=0.0)
    with pytest.raises(ValueError, match="feature_weight"):
        get_method("byot", feature_weight=-1.0)
    student = T.build_model("tiny_student", 10, 0)
    student.stages = student.stages[:2]     # stem + one stage: no room for an exit
    with pytest.raises(ValueError, match="at least 2 stages after the stem"):
        get_method("byot").build_extras(student, None, None)


# ---------------------------------------------------------------------------------------------- sequence (TAKD)

CHAIN = ["tiny_teacher", "tiny_assistant", "tiny_student"]


@pytest.fixture
def chain_budget(tiny_budget):
    return tiny_budget.replace(epochs=2, teacher_epochs=1)


def _states_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_chain_trains_caches_and_links_records(chain_budget, monkeypatch):
    from kdteach import results
    from kdteach.train import sequence

    chain = T.run_chain(CHAIN, "kd", budget=chain_budget)
    assert [link.arch for link in chain.links] == CHAIN and [link.index for link in chain.links] == [0, 1, 2]
    ta, st = chain.links[1].record, chain.links[2].record
    assert ta["teacher"] == "tiny_teacher" and st["teacher"] == "tiny_teacher>tiny_assistant"
    assert st["chain"] == {"archs": CHAIN, "link": 2, "previous": [ta["run_id"]]}
    assert ta["chain"]["previous"] == [] and st["student"] == "tiny_student" and st["method"] == "kd"
    saved = {r["run_id"] for r in results.load_records(method="kd")}
    assert {ta["run_id"], st["run_id"]} <= saved
    rows = chain.table()
    assert [r["teacher"] for r in rows] == [None, "tiny_teacher", "tiny_teacher>tiny_assistant"]
    assert rows[0]["params"] > rows[1]["params"] > rows[2]["params"]
    # the direct teacher -> student run is a different record, never confused with the chain's
    direct = T.distill("kd", budget=chain_budget, student="tiny_student", progress=False)
    assert direct.record["run_id"] != st["run_id"] and direct.record["teacher"] == "tiny_teacher"
    # a second call loads every link from the cache: nothing trains
    monkeypatch.setattr("kdteach.train.api.distill_offline", lambda *a, **k: pytest.fail("retrained a cached link"))
    again = T.run_chain(CHAIN, "kd", budget=chain_budget)
    assert [link.source for link in again.links] == ["cached"] * 3
    assert _states_equal(again.student, chain.student) and again.links[2].record == st
    # anything upstream changes the key: another temperature is another chain
    m4, m8 = get_method("kd"), get_method("kd", temperature=8.0)
    key = lambda m: sequence.chain_key(CHAIN, m, chain_budget, 0, "t")
    assert key(m4) != key(m8) and key(m4) == key(get_method("kd"))
    assert sequence.chain_key(CHAIN[:2], m4, chain_budget, 0, "t") != key(m4)
    assert sequence.chain_key(CHAIN, m4, chain_budget, 0, "other-teacher") != key(m4)
    # TAKD's "auto" and the names it stands for are the same chain: one cache entry per link
    auto, named = get_method("takd"), get_method("takd", assistants="tiny_assistant")
    assert sequence.chain_key(CHAIN, auto, chain_budget, 0, "t") == sequence.chain_key(CHAIN, named, chain_budget, 0, "t")


def test_chain_resumes_link_by_link(chain_budget, tmp_path, monkeypatch):
    from kdteach.train import trainer as trainer_mod

    real_fit = trainer_mod.Trainer.fit

    def killed_in_link_2(self, stop_after=None):
        if T.model_name(self.student) == "tiny_student":
            real_fit(self, stop_after=1)
            raise KeyboardInterrupt("killed after one epoch of link 2")
        return real_fit(self, stop_after)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", killed_in_link_2)
    with pytest.raises(KeyboardInterrupt):
        T.run_chain(CHAIN, "kd", budget=chain_budget)
    ckpts = list((tmp_path / "cache" / "runs").glob("tiny_student-*.ckpt.pt"))
    assert len(ckpts) == 1                      # link 2's training checkpoint, after its first epoch
    monkeypatch.setattr(trainer_mod.Trainer, "fit", real_fit)
    resumed = T.run_chain(CHAIN, "kd", budget=chain_budget)
    assert resumed.links[1].source == "cached" and resumed.links[2].source.startswith("trained")
    assert not ckpts[0].exists()                # removed once the link is cached
    # the same chain, uninterrupted, in a fresh cache: the same weights and history bit for bit
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setenv("KDTEACH_RESULTS", str(tmp_path / "results2"))
    fresh = T.run_chain(CHAIN, "kd", budget=chain_budget)
    assert _states_equal(fresh.student, resumed.student)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert strip(fresh.links[2].record["history"]) == strip(resumed.links[2].record["history"])


def test_chain_bad_inputs(chain_budget):
    with pytest.raises(ValueError, match="at least a teacher and a student"):
        T.run_chain(["tiny_teacher"], "kd", budget=chain_budget)
    with pytest.raises(ValueError, match="unknown model 'tiny_x'"):
        T.run_chain(["tiny_teacher", "tiny_x"], "kd", budget=chain_budget)
    with pytest.raises(ValueError, match="trains without a teacher"):
        T.run_chain(CHAIN, "dml", budget=chain_budget)
    # every pair is checked before anything trains: KD-SVD needs equal stage widths
    with pytest.raises(ValueError, match="equal channels"):
        T.run_chain(["tiny_teacher", "resnet8", "tiny_student"], "kdsvd", budget=chain_budget)


def test_takd_through_distill(chain_budget):
    run = T.distill("takd", budget=chain_budget, progress=False)
    assert run.record["method"] == "takd" and run.record["teacher"] == "tiny_teacher>tiny_assistant"
    assert run.record["hparams"]["assistants"] == "auto" and run.record["chain"]["archs"] == CHAIN
    method = get_method("takd", assistants="resnet56, resnet32")
    assert method.chain("resnet110", "resnet20") == ["resnet110", "resnet56", "resnet32", "resnet20"]
    with pytest.raises(ValueError, match="no automatic assistant for resnet32x4 -> resnet8x4"):
        get_method("takd").chain("resnet32x4", "resnet8x4")
    with pytest.raises(ValueError, match="'assistants'"):
        get_method("takd", assistants=" ")
    with pytest.raises(ValueError, match="carrying its run record"):   # an unrecorded model cannot key the cache
        T.distill("takd", budget=chain_budget, teacher=T.build_model("tiny_teacher", 10), progress=False)
    with pytest.raises(TypeError, match="model name or None"):
        T.distill("takd", budget=chain_budget, student=T.build_model("tiny_student", 10), progress=False)
    # run_experiment passes the zoo's teacher model: the chain starts from it
    exp = T.run_experiment("takd", budget=chain_budget.replace(seeds=(0,)))
    assert exp.runs[0].record["run_id"] == run.record["run_id"]      # the same cached chain


# ---------------------------------------------------------------------------------------------- data-free (DAFL)

def dafl_trainer(budget, checkpoint=None, student_seed=0, **hp):
    hp = {"iters_per_epoch": 3, "latent_dim": 32, **hp}
    student = T.build_model("tiny_student", 10, student_seed)
    teacher = T.build_model("tiny_teacher", 10, 123)
    return T.DataFreeTrainer(get_method("dafl", **hp), student, teacher, budget, seed=0, progress=False,
                             checkpoint=checkpoint, device="cpu")


def test_dafl_trains_generator_and_student_without_training_images(tiny_budget):
    tr = dafl_trainer(tiny_budget.replace(epochs=2))
    assert tr.train_loader is None                     # no training image is ever loaded into a batch
    g0 = {k: v.clone() for k, v in tr.generator.state_dict().items()}
    s0 = {k: v.clone() for k, v in tr.student.state_dict().items()}
    t0 = {k: v.clone() for k, v in tr.teacher.state_dict().items()}
    history = tr.fit()
    assert list(history[0]["loss"]) == ["onehot", "activation", "entropy", "kd", "total"]
    for e in history:
        assert sum(e["generated_classes"]) == 3 * tiny_budget.batch_size and len(e["generated_classes"]) == 10
    assert not torch.equal(g0["fc.weight"], tr.generator.state_dict()["fc.weight"])
    assert not torch.equal(s0["fc.weight"], tr.student.state_dict()["fc.weight"])
    assert all(torch.equal(v, tr.teacher.state_dict()[k]) for k, v in t0.items())     # frozen
    rec = tr.record()
    assert rec["method"] == "dafl" and rec["teacher"] == "tiny_teacher" and 0 <= rec["last_acc"] <= 100
    # samples: their own seed, the run's RNG untouched
    state = torch.get_rng_state()
    a, b = tr.sample(4, seed=1), tr.sample(4, seed=1)
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, tr.sample(4, seed=2))
    assert torch.equal(state, torch.get_rng_state())


def test_dafl_generator_terms_match_the_losses(tiny_budget):
    from kdteach.features import capture
    from kdteach.losses import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss

    tr = dafl_trainer(tiny_budget)
    x = tr.sample(8)
    with capture(tr.teacher, ["pool"]) as store:
        z = tr.teacher(x)
    terms = tr.method.generator_loss(z, {"pool": store["pool"]})
    assert torch.allclose(terms["onehot"], 0.05 * dafl_onehot_loss(z))
    assert torch.allclose(terms["activation"], 0.01 * dafl_activation_loss(store["pool"]))
    assert torch.allclose(terms["entropy"], 5.0 * dafl_entropy_loss(z))


def test_dafl_resume_is_bitwise_exact(tiny_budget, tmp_path):
    budget = tiny_budget.replace(epochs=2)
    full = dafl_trainer(budget, tmp_path / "full.pt")
    full_history = full.fit()
    part = dafl_trainer(budget, tmp_path / "part.pt")
    part.fit(stop_after=1)
    resumed = dafl_trainer(budget, tmp_path / "part.pt", student_seed=99)
    assert strip_times(resumed.fit()) == strip_times(full_history)
    for a, b in ((full.student, resumed.student), (full.generator, resumed.generator)):
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), k
    # the generator's optimiser state is part of the checkpoint too
    sa, sb = full.g_optimizer.state_dict()["state"], resumed.g_optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_dafl_student_steps_through_the_methods_backward(tiny_budget):
    """The data-free loop back-propagates the student's terms through ``Method.backward`` (the
    extension point of DOT-style optimisers), once per step, with the student's terms only; the
    default (one backward pass of their sum) trains exactly as before."""
    from kdteach.methods.dafl import DAFL

    calls = []

    class Recording(DAFL):
        def backward(self, terms, optimizer):
            calls.append((sorted(terms), optimizer))
            super().backward(terms, optimizer)

    hp = {"iters_per_epoch": 3, "latent_dim": 32}
    budget = tiny_budget.replace(epochs=2)
    ref = dafl_trainer(budget)
    ref.fit()
    tr = T.DataFreeTrainer(Recording(**hp), T.build_model("tiny_student", 10, 0), T.build_model("tiny_teacher", 10, 123),
                           budget, seed=0, progress=False, device="cpu")
    tr.fit()
    student_params = {id(q) for q in tr.student.parameters()}
    assert len(calls) == 2 * 3 and all(names == ["kd"] for names, _ in calls)
    for _, opt in calls:                             # the student's optimiser, never the generator's
        assert {id(q) for g in opt.param_groups for q in g["params"]} == student_params
    for (k, va), vb in zip(ref.student.state_dict().items(), tr.student.state_dict().values()):
        assert torch.equal(va, vb), k


def test_dafl_nan_stops_before_either_player_steps(tiny_budget, tmp_path, monkeypatch):
    from kdteach.methods.dafl import DAFL

    real = DAFL.generator_loss

    def poisoned(self, logits, feats):
        terms = real(self, logits, feats)
        if poisoned.calls == 4:   # epoch 2, step 2
            terms["entropy"] = terms["entropy"] * float("nan")
        poisoned.calls += 1
        return terms

    poisoned.calls = 0
    monkeypatch.setattr(DAFL, "generator_loss", poisoned)
    tr = dafl_trainer(tiny_budget, tmp_path / "run.pt")
    with pytest.raises(T.NonFiniteLossError, match=r"'entropy' .* epoch 2 .* step 2/3.*after epoch 1"):
        tr.fit()


def test_dafl_bad_inputs(tiny_budget, monkeypatch):
    from kdteach.methods.dafl import DAFL
    from kdteach.models.generator import DAFLGenerator

    with pytest.raises(ValueError, match="'latent_dim' of method 'dafl' must be an int >= 1"):
        get_method("dafl", latent_dim=0)
    with pytest.raises(ValueError, match="'iters_per_epoch'"):
        get_method("dafl", iters_per_epoch=1.5)
    monkeypatch.setattr(DAFL, "build_generator", lambda self, budget, k: DAFLGenerator(32, 32, 3))
    with pytest.raises(ValueError, match=r"generator makes images of shape \(3, 32, 32\) .* takes \(3, 16, 16\)"):
        dafl_trainer(tiny_budget)
    with pytest.raises(ValueError, match="needs a teacher"):
        T.DataFreeTrainer(get_method("dafl"), T.build_model("tiny_student", 10), None, tiny_budget, device="cpu")
    with pytest.raises(ValueError, match="divisible by 4"):
        DAFLGenerator(8, 18)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        DAFLGenerator(8, 16)(torch.zeros(2, 7))


def test_distill_dafl_returns_the_generator(tiny_budget):
    run = T.distill("dafl", budget=tiny_budget.replace(epochs=1), hparams={"iters_per_epoch": 2, "latent_dim": 16},
                    progress=False)
    assert "generator" in run.extras and run.record["method"] == "dafl"
    assert run.record["history"][0]["generated_classes"]
