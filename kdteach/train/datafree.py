"""The data-free protocol: batches come from a generator trained against the frozen teacher.

DAFL, and later DeepInversion-style methods, never see a training image. :class:`DataFreeTrainer`
is the offline :class:`~kdteach.train.trainer.Trainer` with one step replaced; everything else is
the trainer's own (seeded construction, stages and schedule, the student's optimiser, test-split
evaluation, NaN stops naming the term, epoch and step, atomic checkpoints and bit-exact resume,
the tqdm bar, bf16 autocast and channels_last on CUDA, run records). Per step:

1. z ~ N(0, I) (B, latent_dim) from a CPU generator seeded by (run seed, epoch), as the offline
   loader's order is, so a run is reproducible from its seed and an epoch replays on its own,
   whatever else used the global RNG; x = G(z);
2. the generator's terms (:meth:`Method.generator_loss`) on the teacher's outputs for x, with
   gradients through the frozen teacher; one step of the generator's own optimiser
   (:meth:`Method.generator_optimizer`);
3. the student's terms (:meth:`Method.loss`) on x detached, with the teacher's detached logits and
   their arg-max as labels, back-propagated by :meth:`Method.backward` (default: one backward pass
   of their sum; a DOT-style method splits it); one step of the student's optimiser
   (:meth:`Method.optimizer`).

An epoch is ``iters_per_epoch`` steps (a method hyper-parameter: there is no dataset to sweep).
The real test split is used only for evaluation. The checkpoint also holds the generator and its
optimiser (:meth:`_protocol_state`). Each history entry adds ``generated_classes``: how many
generated images of the epoch the teacher put in each class (the class histogram DAFL's
information-entropy term flattens); ``train_acc`` is the student's agreement with the teacher on the
generated images.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..methods.base import LossContext, StagePlan
from .trainer import Trainer, num_classes_of

__all__ = ["DataFreeTrainer"]


class DataFreeTrainer(Trainer):
    """A :class:`~kdteach.train.trainer.Trainer` whose batches come from the method's generator.

    The method must define ``build_generator(budget, num_classes)``, ``generator_optimizer(G)``,
    ``generator_loss(teacher_logits, teacher_features)`` and the hyper-parameter
    ``iters_per_epoch`` (see :class:`kdteach.methods.dafl.DAFL`). Arguments as for ``Trainer``;
    ``train_split`` is not used.
    """

    uses_training_images = False

    def __init__(self, method, student, teacher=None, budget=None, **kwargs):
        super().__init__(method, student, teacher, budget, **kwargs)
        for hook in ("build_generator", "generator_optimizer", "generator_loss"):
            if not callable(getattr(method, hook, None)):
                raise TypeError(f"method {method.name!r} uses the data-free protocol but has no {hook}()")
        k = num_classes_of(student)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1_000_003)      # not the student's initialisation stream
            generator = method.build_generator(self.budget, k)
        if not isinstance(generator, nn.Module):
            raise TypeError(f"{type(method).__name__}.build_generator must return an nn.Module, got "
                            f"{type(generator).__name__}")
        self.generator = generator.to(self.device, memory_format=torch.channels_last)
        self.latent_dim = int(method.hparams["latent_dim"])
        self._check_generator(k)
        self.g_optimizer = method.generator_optimizer(self.generator)
        self._generator_call = torch.compile(self.generator) if self.compile else self.generator

    def _check_generator(self, k: int) -> None:
        r = self.budget.resolution
        was = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            x = self.generator(torch.zeros(2, self.latent_dim, device=self.device))
            if tuple(x.shape) != (2, 3, r, r):
                raise ValueError(f"the generator makes images of shape {tuple(x.shape[1:])} but the teacher "
                                 f"{type(self.teacher).__name__} of budget {self.budget.name!r} takes (3, {r}, {r})")
            out = self.teacher(x)
        self.generator.train(was)
        if tuple(out.shape) != (2, k):
            raise ValueError(f"the teacher's output on generated images has shape {tuple(out.shape)}, expected (2, {k})")

    @property
    def steps_per_epoch(self) -> int:
        return int(self.method.hparams["iters_per_epoch"])

    def _protocol_state(self) -> dict:
        return {"generator": self.generator.state_dict(), "generator_optimizer": self.g_optimizer.state_dict()}

    def _load_protocol_state(self, state: dict) -> None:
        if "generator" not in state:
            raise ValueError("the checkpoint holds no generator: it was not written by a data-free run")
        self.generator.load_state_dict(state["generator"])
        self.g_optimizer.load_state_dict(state["generator_optimizer"])

    def trained_extras(self) -> nn.ModuleDict:
        """The method's extras and the trained ``generator``."""
        return nn.ModuleDict({**dict(self.extras.items()), "generator": self.generator})

    def benchmark(self, *args, **kwargs):
        raise NotImplementedError("DataFreeTrainer.benchmark: the throughput benchmark times loader batches; "
                                  "time a data-free run with fit() instead")

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images (n, 3, r, r), normalised like the teacher's inputs, from latent
        vectors drawn with their own ``seed`` (the run's RNG is left untouched); eval mode."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
        was = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z).float()
        finally:
            self.generator.train(was)

    def _run_epoch(self, stage: StagePlan, s_store: dict, t_store: dict, bar) -> dict:
        t0 = time.perf_counter()
        lr, warmup = self._begin_epoch(stage)
        self.generator.train()
        n_steps, batch = self.steps_per_epoch, self.budget.batch_size
        k = num_classes_of(self.student)
        eager_check = self.device.type != "cuda"
        names: list[str] | None = None
        rows: list[torch.Tensor] = []
        agree = torch.zeros((), dtype=torch.int64, device=self.device)
        classes = torch.zeros(k, dtype=torch.int64, device=self.device)
        epoch_no = self.epochs_done + 1
        last_post = time.perf_counter()
        z_gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epochs_done + 17)
        for step in range(n_steps):
            z = torch.randn(batch, self.latent_dim, generator=z_gen).to(self.device)
            # 1-2. the generator, through the frozen teacher (gradients flow to G only)
            with self._autocast():
                x = self._generator_call(z)
                t_logits = self._teacher_call(x)
                g_terms = self.method.generator_loss(t_logits, {n: t_store[n] for n in self.teacher_feature_names})
            # 3. the student, on the same images, detached, with the teacher's detached outputs
            x_s, t_det = x.detach(), t_logits.detach()
            y = t_det.argmax(1)
            with self._autocast():
                s_logits = self._student_call(x_s)
                ctx = LossContext(x=x_s, y=y, student_logits=s_logits, teacher_logits=t_det,
                                  student_features={n: s_store[n] for n in self.student_feature_names},
                                  teacher_features={n: t_store[n].detach() for n in self.teacher_feature_names},
                                  extras=self.extras, stage=stage.name, epoch=self.stage_epoch, step=step,
                                  warmup=warmup, hparams=self.method.hparams)
                s_terms = self.method.loss(ctx)
            terms = {**g_terms, **s_terms}
            if names is None:
                names = self._check_terms(terms)
                if set(g_terms) & set(s_terms):
                    raise ValueError(f"method {self.method.name!r}: generator and student terms share names "
                                     f"{sorted(set(g_terms) & set(s_terms))}")
            g_total, s_total = sum(g_terms.values()), sum(s_terms.values())
            rows.append(torch.stack([t.detach().float() for t in terms.values()]
                                    + [(g_total + s_total).detach().float()]))
            if eager_check and not bool(torch.isfinite(rows[-1]).all()):
                self._raise_nonfinite(rows, names, stage, epoch_no, n_steps)   # before either player steps
            self.g_optimizer.zero_grad(set_to_none=True)
            g_total.backward()
            self.g_optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.method.backward(s_terms, self.optimizer)   # default: s_total.backward(); DOT-style methods split it
            self.optimizer.step()
            agree += (s_logits.detach().argmax(1) == y).sum()
            classes += torch.bincount(y, minlength=k)
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_post > 0.5 or step == n_steps - 1:
                    last_post = now
                    self._post_progress(bar, rows, names, stage, epoch_no, n_steps)
        table = torch.stack(rows).cpu()
        if not bool(torch.isfinite(table).all()):
            self._raise_nonfinite(rows, names, stage, epoch_no, n_steps)
        means = table.double().mean(0).tolist()
        test_acc = self.evaluate()
        entry = {"epoch": epoch_no, "stage": stage.name, "lr": lr,
                 "train_acc": 100.0 * agree.item() / (n_steps * batch), "test_acc": test_acc,
                 "seconds": time.perf_counter() - t0,
                 "loss": {n: v for n, v in zip(names + ["total"], means)},
                 "generated_classes": classes.cpu().tolist()}
        if bar is not None:
            bar.set_postfix({"ep": f"{epoch_no}/{self.total_epochs}", "loss": f"{means[-1]:.3f}",
                             "test": f"{test_acc:.1f}"})
        return entry
