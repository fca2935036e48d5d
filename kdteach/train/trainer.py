"""The training loop: one loop for every offline method, generic over a :class:`~kdteach.methods.base.Method`.

Per batch: the teacher runs in eval mode under ``torch.inference_mode()`` with its features captured
in the same pass (:func:`kdteach.features.capture`), the student runs with gradients, the method
turns logits and features into named loss terms, and SGD (momentum, weight decay) steps the student
and the method's extras together. On CUDA the forward passes run under bf16 autocast; models and
batches are channels_last on every device. Data come from :class:`kdteach.data.DeviceLoader`
(whole split on the device, batched crop/flip), seeded per epoch so that a resumed run sees exactly
the batches an uninterrupted one would.

Checkpoints (optional) are written atomically after every epoch and hold the student, the extras,
the optimiser, the schedule position, the history and the RNG states: resuming gives the same
weights and metrics, bit for bit on the same device, as never stopping. A NaN or inf loss stops
training with :class:`NonFiniteLossError` naming the term, epoch and step; the last checkpoint written
is the last good one.

Optimisation follows the CRD benchmark (Tian et al., ICLR 2020; github.com/HobbitLong/RepDistiller):
SGD with momentum over student + extras, step or cosine schedule per budget, two-stage methods get a
fresh optimiser for each stage. A method may supply its own optimiser and the way its terms are
back-propagated (:meth:`Method.optimizer`, :meth:`Method.backward`: DOT's two momenta); the schedule,
the checkpointed optimiser state and the NaN stop apply to it unchanged.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import config
from .. import data as kdata
from .. import results
from ..features import capture, feature_names
from ..methods.base import LossContext, Method, StagePlan
from .budgets import Budget, get_budget

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the message names the term, the epoch and the step."""


# ---------------------------------------------------------------------------------------------- data

_SPLIT_CACHE: dict[tuple, kdata.ImageSplit] = {}


def budget_splits(budget: Budget) -> tuple[kdata.ImageSplit, kdata.ImageSplit]:
    """Train and test splits for ``budget`` (dataset, subset sizes, resolution), cached per process.

    Returns:
        ``(train, test)`` :class:`kdteach.data.ImageSplit` with uint8 images (N, 3, r, r).
    """
    out = []
    for train, n in ((True, budget.train_subset), (False, budget.test_subset)):
        key = (budget.dataset, train, n, budget.resolution, str(config.offline_data_dir()))
        split = _SPLIT_CACHE.get(key)
        if split is None:
            split = kdata.load_split(budget.dataset, train=train).subset(n)
            if budget.resolution != split.resolution:
                split = split.resized(budget.resolution)
            _SPLIT_CACHE[key] = split
        out.append(split)
    return out[0], out[1]


def data_signature(budget: Budget) -> dict:
    """What identifies the training data of ``budget`` beyond its recipe: where the images come from
    (``offline`` subsets, whose content the SHA-256 checks pin, or ``torchvision``'s full CIFAR).
    Known without loading any data, so a cached model can be found offline."""
    return {"source": "offline" if config.offline_data_dir() is not None else "torchvision"}


class _ShuffleLoader(kdata.DeviceLoader):
    """A :class:`~kdteach.data.DeviceLoader` that shuffles but does not augment (budgets with augment=False)."""

    def __iter__(self):
        n = self.num_samples
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=gen).to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size: min((i + 1) * self.batch_size, n)]
            xb, yb = self._to_float(self.images[idx]), self.labels[idx]
            yield (xb, yb, idx) if self.with_index else (xb, yb)
        self.epoch += 1


# ---------------------------------------------------------------------------------------------- helpers

def autocast_for(device: torch.device):
    """The autocast kdteach's forwards run under: bfloat16 on CUDA, none elsewhere."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def top1_accuracy(model: nn.Module, loader: kdata.DeviceLoader) -> float:
    """Top-1 accuracy (percent) of ``model`` over ``loader``'s (x (B, 3, H, W), y (B,)) batches.

    The model runs in eval mode under :func:`autocast_for` of the loader's device (its mode is restored).
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    try:
        with torch.inference_mode(), autocast_for(loader.device):
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum()
    finally:
        model.train(was_training)
    return 100.0 * correct.item() / loader.num_samples


def model_name(model: nn.Module | None) -> str | None:
    """The zoo name of a model (``model.kd_arch`` set by kdteach), else its class name."""
    if model is None:
        return None
    return getattr(model, "kd_arch", None) or type(model).__name__


def num_classes_of(model: nn.Module) -> int:
    """Output classes of a kdteach model (its ``fc.out_features``)."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise TypeError(f"{type(model).__name__} has no linear classifier 'fc'; use a kdteach.models model")
    return int(fc.out_features)


def _check_features(model: nn.Module, names: list[str], role: str, method: str) -> None:
    valid = feature_names(model)
    missing = [n for n in names if n not in valid]
    if missing:
        raise ValueError(f"method {method!r} needs {role} features {missing} that {model_name(model)} does not "
                         f"have; its features are {valid}")


def check_pair(method: Method, student: nn.Module, teacher: nn.Module | None) -> int:
    """Raise a clear error unless ``method`` can train ``student`` from ``teacher``; return the classes K.

    Checks: both are modules with a linear ``fc`` and the same number of classes, the features the
    method asks for exist in each model, and the method's own pairing rules (:meth:`Method.check_models`).
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
    k_s = num_classes_of(student)
    _check_features(student, list(method.student_features(student)), "student", method.name)
    if teacher is not None:
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module or None, got {type(teacher).__name__}")
        k_t = num_classes_of(teacher)
        if k_t != k_s:
            raise ValueError(f"teacher {model_name(teacher)} predicts {k_t} classes but student "
                             f"{model_name(student)} predicts {k_s}; they must match")
        _check_features(teacher, list(method.teacher_features(teacher)), "teacher", method.name)
        method.check_models(student, teacher)
    return k_s


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the target folder, fsync, then ``os.replace``: readers see
    either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, results.FILE_MODE)  # mkstemp makes 0600 files; give them the usual umask-based mode
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------------------------------------- trainer

class Trainer:
    """Train ``student`` with ``method`` (and ``teacher``) under ``budget``.

    Args:
        method: a :class:`~kdteach.methods.base.Method` instance.
        student: a kdteach model (B, 3, H, W) -> (B, K); trained in place.
        teacher: a kdteach model with the same K, or None for methods without a teacher. It is put
            in eval mode with ``requires_grad=False`` and never updated.
        budget: a :class:`~kdteach.train.budgets.Budget` (or name; None: ``KDTEACH_BUDGET``).
        seed: seeds the extras' initialisation and the data order/augmentation.
        device: default :func:`kdteach.config.default_device`.
        progress: show a ``tqdm.auto`` bar with the live loss terms and accuracy.
        checkpoint: file to write after every ``checkpoint_every`` epochs (atomic); None: none.
        resume: continue from ``checkpoint`` if it exists (it must be from the same run).
        compile: wrap student and teacher in ``torch.compile`` (CUDA only; off by default).
        method_name: the name stored in the history/record (default ``method.name``).
        train_split, test_split: override the budget's data (e.g. tests).
    """

    def __init__(self, method: Method, student: nn.Module, teacher: nn.Module | None = None,
                 budget: Budget | str | None = None, *, seed: int = 0, device: torch.device | str | None = None,
                 progress: bool = True, checkpoint: str | Path | None = None, checkpoint_every: int = 1,
                 resume: bool = True, compile: bool = False, method_name: str | None = None,
                 train_split: kdata.ImageSplit | None = None, test_split: kdata.ImageSplit | None = None):
        if not isinstance(method, Method):
            raise TypeError(f"method must be a kdteach Method instance, got {type(method).__name__}")
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if not isinstance(checkpoint_every, int) or checkpoint_every <= 0:
            raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
        self.method = method
        self.method_name = method_name or method.name
        self.budget = get_budget(budget)
        self.seed = seed
        self.device = torch.device(device) if device is not None else config.default_device()
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.compile = bool(compile) and self.device.type == "cuda"

        # ---- models and their compatibility
        if method.needs_teacher and teacher is None:
            raise ValueError(f"method {method.name!r} needs a teacher, got teacher=None")
        self.teacher = teacher if method.needs_teacher else None
        self.student = student
        k_s = check_pair(method, student, self.teacher)
        self.student_feature_names = list(method.student_features(student))
        self.teacher_feature_names = list(method.teacher_features(self.teacher)) if self.teacher is not None else []

        # ---- data
        if train_split is None or test_split is None:
            tr, te = budget_splits(self.budget)
            train_split = tr if train_split is None else train_split
            test_split = te if test_split is None else test_split
        n_data = len(test_split.class_names)
        if n_data != k_s:
            raise ValueError(f"{test_split.name} has {n_data} classes but the student {model_name(student)} "
                             f"predicts {k_s}; build it with num_classes={n_data}")
        self.dataset = test_split.name
        self.train_loader = None
        if self.uses_training_images:
            loader_cls = kdata.DeviceLoader if self.budget.augment else _ShuffleLoader
            self.train_loader = loader_cls(train_split, self.budget.batch_size, self.device, train=True, seed=seed,
                                           with_index=method.needs_index)
            if len(self.train_loader) == 0:
                raise ValueError(f"the training split has {len(train_split)} images, fewer than one batch of "
                                 f"{self.budget.batch_size}")
        self.test_loader = kdata.DeviceLoader(test_split, self.budget.test_batch_size, self.device, train=False)

        # ---- stages and extras (seeded, so a run is reproducible from its seed)
        self.stages: list[StagePlan] = list(method.stages(self.budget))
        if not self.stages:
            raise ValueError(f"method {method.name!r} returned no training stages")
        if method.needs_index:
            if self.train_loader is None:
                raise ValueError(f"method {method.name!r} needs per-sample indices of the training images "
                                 f"(needs_index), but {type(self).__name__} trains without them")
            method.train_labels = self.train_loader.labels       # e.g. CRD's memory bank and its negatives
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            extras = method.build_extras(student, self.teacher, self.budget)
        if not isinstance(extras, nn.ModuleDict):
            raise TypeError(f"{type(method).__name__}.build_extras must return an nn.ModuleDict, got "
                            f"{type(extras).__name__}")
        self.extras = extras

        fmt = torch.channels_last
        self.student.to(self.device, memory_format=fmt)
        self.extras.to(self.device, memory_format=fmt)
        if self.teacher is not None:
            self.teacher.to(self.device, memory_format=fmt)
            self.teacher.eval()
            self.teacher.requires_grad_(False)
        self._student_call = torch.compile(self.student) if self.compile else self.student
        self._teacher_call = (torch.compile(self.teacher) if self.compile and self.teacher is not None
                              else self.teacher)

        # ---- state
        self.stage_index = 0
        self.stage_epoch = 0
        self.epochs_done = 0
        self.history: list[dict] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self._resumed_from: int | None = None
        self._last_checkpoint_epoch: int | None = None

    #: whether batches come from the training split (a data-free trainer sets False: its batches
    #: come from a generator, and the real images are used only to evaluate)
    uses_training_images: bool = True

    # ------------------------------------------------------------------ run identity
    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps per epoch (batches of the training split)."""
        return len(self.train_loader)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def recipe(self) -> dict:
        """The budget's recipe plus the method's stages (stored in checkpoints and records)."""
        r = self.budget.recipe()
        r["stages"] = [{"name": s.name, "epochs": s.epochs, "trainable": s.trainable} for s in self.stages]
        return r

    def _signature(self) -> dict:
        return {"method": self.method_name, "hparams": dict(self.method.hparams), "recipe": self.recipe(),
                "seed": self.seed, "student": model_name(self.student), "teacher": model_name(self.teacher),
                "dataset": self.dataset}

    # ------------------------------------------------------------------ optimisation
    def _base_lr(self) -> float:
        return self.budget.lr_for(model_name(self.student))

    def _lr(self, stage: StagePlan, stage_epoch: int) -> float:
        base = self._base_lr()
        return self.budget.lr_at(stage_epoch, stage.epochs, base) if stage.schedule else base

    def _make_optimizer(self, stage: StagePlan) -> torch.optim.Optimizer:
        if stage.trainable == "features":
            fc_ids = {id(p) for p in self.student.fc.parameters()}
            params = [p for p in self.student.parameters() if id(p) not in fc_ids]
        else:
            params = list(self.student.parameters())
        params += list(self.extras.parameters())
        opt = self.method.optimizer(params, self.budget, self._base_lr())   # default: the budget's SGD
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"{type(self.method).__name__}.optimizer must return a torch.optim.Optimizer, got "
                            f"{type(opt).__name__}")
        held = [p for g in opt.param_groups for p in g["params"]]
        if len(held) != len(params) or {id(p) for p in held} != {id(p) for p in params}:
            raise ValueError(f"{type(self.method).__name__}.optimizer must optimise exactly the {len(params)} "
                             f"trainable parameters it is given (student and extras), got {len(held)}")
        return opt

    def _autocast(self):
        return autocast_for(self.device)

    def _warmup(self, stage: StagePlan, stage_epoch: int) -> float:
        w = self.budget.warmup_epochs
        if not self.method.uses_warmup or w <= 0 or stage.name != "main":
            return 1.0
        return min(1.0, (stage_epoch + 1) / w)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the full training state atomically (default: the ``checkpoint`` path)."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise ValueError("no checkpoint path: pass checkpoint= to Trainer or a path here")
        state = {
            "format": CHECKPOINT_FORMAT,
            "run": self._signature(),
            "student": self.student.state_dict(),
            "extras": self.extras.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": {"stage_index": self.stage_index, "stage_epoch": self.stage_epoch,
                          "schedule": self.budget.schedule, "base_lr": self._base_lr()},
            "epoch": self.epochs_done,
            "history": self.history,
            "rng": _rng_state(),
            "protocol": self._protocol_state(),
        }
        atomic_torch_save(state, path)
        self._last_checkpoint_epoch = self.epochs_done
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore the state written by :meth:`save_checkpoint` (same run only)."""
        path = Path(path) if path is not None else self.checkpoint
        state = torch.load(path, map_location=self.device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a kdteach training checkpoint (format {CHECKPOINT_FORMAT})")
        if state["run"] != self._signature():
            mine, theirs = self._signature(), state["run"]
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"checkpoint {path} belongs to a different run (differs in {diff}); delete it "
                             f"or pass resume=False to start over")
        self.student.load_state_dict(state["student"])
        self.extras.load_state_dict(state["extras"])
        self._load_protocol_state(state.get("protocol") or {})
        sched = state["scheduler"]
        self.stage_index, self.stage_epoch = int(sched["stage_index"]), int(sched["stage_epoch"])
        self.epochs_done = int(state["epoch"])
        self.history = list(state["history"])
        self.optimizer = None
        if state["optimizer"] is not None and self.stage_index < len(self.stages):
            self.optimizer = self._make_optimizer(self.stages[self.stage_index])
            self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        self._resumed_from = self.epochs_done
        self._last_checkpoint_epoch = self.epochs_done

    def trained_extras(self) -> nn.ModuleDict:
        """The trained modules a run returns besides the student (the method's extras)."""
        return self.extras

    def _protocol_state(self) -> dict:
        """Extension point: what else a protocol's trainer must checkpoint (a generator and its
        optimiser); saved with the run and given back to :meth:`_load_protocol_state` on resume."""
        return {}

    def _load_protocol_state(self, state: dict) -> None:
        """Extension point: restore what :meth:`_protocol_state` saved."""

    # ------------------------------------------------------------------ loop
    def fit(self, stop_after: int | None = None) -> list[dict]:
        """Train through every stage (resuming from the checkpoint when there is one).

        Args:
            stop_after: stop once this many epochs (in total, over all stages) are done, as if the
                run had been interrupted there; None trains to the end.

        Returns:
            The history: one dict per epoch (``epoch`` 1-based over all stages, ``stage``, ``lr``,
            ``train_acc``, ``test_acc`` in percent, ``seconds``, ``loss``: term -> mean, ``total``).
        """
        if self.resume and self.checkpoint is not None and self.checkpoint.is_file() and self._resumed_from is None:
            self.load_checkpoint()
        total = self.total_epochs
        steps_per_epoch = self.steps_per_epoch
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=total * steps_per_epoch, initial=self.epochs_done * steps_per_epoch,
                       desc=f"{self.method_name} {model_name(self.student)}", unit="step", leave=True,
                       dynamic_ncols=True)
        s_ctx = capture(self.student, self.student_feature_names, preact=self.method.preact)
        t_ctx = (capture(self.teacher, self.teacher_feature_names, preact=self.method.preact)
                 if self.teacher is not None else contextlib.nullcontext({}))
        try:
            with s_ctx as s_store, t_ctx as t_store:
                while self.stage_index < len(self.stages):
                    stage = self.stages[self.stage_index]
                    if self.optimizer is None:
                        self.optimizer = self._make_optimizer(stage)
                    while self.stage_epoch < stage.epochs:
                        if stop_after is not None and self.epochs_done >= stop_after:
                            return self.history
                        entry = self._run_epoch(stage, s_store, t_store, bar)
                        self.history.append(entry)
                        self.stage_epoch += 1
                        self.epochs_done += 1
                        if self.stage_epoch == stage.epochs:  # next stage starts with a fresh optimiser
                            self.stage_index += 1
                            self.stage_epoch = 0
                            self.optimizer = None
                        if self.checkpoint is not None and (self.epochs_done % self.checkpoint_every == 0
                                                            or self.epochs_done == total):
                            self.save_checkpoint()
                        if self.optimizer is None:
                            break
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _losses(self, x: torch.Tensor, y: torch.Tensor, stage: StagePlan, use_teacher: bool, s_store: dict,
                t_store: dict, step: int, warmup: float, index: torch.Tensor | None = None
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Forward passes and the method's loss terms for one batch (the hot path); ``index`` (B,) holds
        the batch's positions in the training split when the method asks for them (``needs_index``)."""
        with self._autocast():
            t_logits, t_feats = None, {}
            if use_teacher:
                with torch.inference_mode():
                    t_out = self._teacher_call(x)
                # inference tensors cannot be saved for backward: plain copies for the losses
                t_logits = t_out.clone()
                t_feats = {n: t_store[n].clone() for n in self.teacher_feature_names}
            s_logits = self._student_call(x)
            ctx = LossContext(x=x, y=y, student_logits=s_logits, teacher_logits=t_logits,
                              student_features={n: s_store[n] for n in self.student_feature_names},
                              teacher_features=t_feats, extras=self.extras, stage=stage.name,
                              epoch=self.stage_epoch, step=step, warmup=warmup, hparams=self.method.hparams,
                              index=index)
            return self.method.loss(ctx), s_logits

    def benchmark(self, steps: int = 20, warmup: int = 3, stage: str | None = None, clock=time.perf_counter
                  ) -> dict:
        """Throughput of the training step (images/s), without changing the trainer's state.

        Runs ``warmup`` + ``steps`` optimisation steps of ``stage`` (default: the last, ``"main"``)
        on copies of the student and extras, timing the last ``steps`` with ``clock`` (wall time;
        ``time.process_time`` gives this process's CPU time, robust to other load on the machine).

        Returns:
            ``{"images_per_s", "seconds", "steps", "batch_size"}``.
        """
        import copy

        plan = self.stages[-1] if stage is None else next((s for s in self.stages if s.name == stage), None)
        if plan is None:
            raise ValueError(f"stage {stage!r} is not one of {[s.name for s in self.stages]}")
        saved = (self.student, self.extras, self.optimizer, self._student_call)
        self.student, self.extras = copy.deepcopy(self.student), copy.deepcopy(self.extras)
        self._student_call = torch.compile(self.student) if self.compile else self.student
        self.optimizer = self._make_optimizer(plan)
        use_teacher = plan.teacher and self.teacher is not None
        s_ctx = capture(self.student, self.student_feature_names, preact=self.method.preact)
        t_ctx = (capture(self.teacher, self.teacher_feature_names, preact=self.method.preact)
                 if self.teacher is not None else contextlib.nullcontext({}))
        self.student.train()
        self.extras.train()
        done, t0 = 0, None
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        try:
            with s_ctx as s_store, t_ctx as t_store:
                epoch = 0
                while done < warmup + steps:
                    self.train_loader.set_epoch(epoch)
                    for x, y, *index in self.train_loader:
                        if done == warmup:
                            sync()
                            t0 = clock()
                        terms, _ = self._losses(x, y, plan, use_teacher, s_store, t_store, done, 1.0,
                                                index[0] if index else None)
                        self.optimizer.zero_grad(set_to_none=True)
                        self.method.backward(terms, self.optimizer)
                        self.optimizer.step()
                        done += 1
                        if done == warmup + steps:
                            break
                    epoch += 1
                sync()
                seconds = clock() - t0
        finally:
            self.student, self.extras, self.optimizer, self._student_call = saved
        n = steps * self.train_loader.batch_size
        return {"images_per_s": n / seconds, "seconds": seconds, "steps": steps,
                "batch_size": self.train_loader.batch_size}

    def _begin_epoch(self, stage: StagePlan) -> tuple[float, float]:
        """Set the epoch's learning rate and train mode; return ``(lr, warmup factor)``. Every
        protocol's ``_run_epoch`` starts with it."""
        lr = self._lr(stage, self.stage_epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.student.train()
        self.extras.train()
        return lr, self._warmup(stage, self.stage_epoch)

    def _run_epoch(self, stage: StagePlan, s_store: dict, t_store: dict, bar) -> dict:
        t0 = time.perf_counter()
        lr, warmup = self._begin_epoch(stage)
        use_teacher = stage.teacher and self.teacher is not None
        loader = self.train_loader
        loader.set_epoch(self.epochs_done)
        n_steps = len(loader)
        eager_check = self.device.type != "cuda"
        names: list[str] | None = None
        rows: list[torch.Tensor] = []
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        last_post = time.perf_counter()
        test_acc_prev = self.history[-1]["test_acc"] if self.history else None
        epoch_no = self.epochs_done + 1
        for step, (x, y, *index) in enumerate(loader):
            terms, s_logits = self._losses(x, y, stage, use_teacher, s_store, t_store, step, warmup,
                                           index[0] if index else None)
            if names is None:
                names = self._check_terms(terms)
            elif list(terms) != names:
                raise RuntimeError(f"method {self.method.name!r} returned loss terms {list(terms)} at step {step + 1}"
                                   f" but {names} before; the set of terms must not change within an epoch")
            total = sum(terms.values())
            row = torch.stack([t.detach().float() for t in terms.values()] + [total.detach().float()])
            rows.append(row)
            if eager_check and not bool(torch.isfinite(row).all()):
                self._raise_nonfinite(rows, names, stage, epoch_no, n_steps)
            self.optimizer.zero_grad(set_to_none=True)
            self.method.backward(terms, self.optimizer)   # default: total.backward()
            self.optimizer.step()
            correct += (s_logits.detach().argmax(1) == y).sum()
            seen += int(y.shape[0])
            if bar is not None:
                bar.update(1)
                now = time.perf_counter()
                if now - last_post > 0.5 or step == n_steps - 1:
                    last_post = now
                    extra = {"acc": f"{100.0 * correct.item() / seen:.1f}"}
                    if test_acc_prev is not None:
                        extra["test"] = f"{test_acc_prev:.1f}"
                    self._post_progress(bar, rows, names, stage, epoch_no, n_steps, extra)
        table = torch.stack(rows).cpu()
        if not bool(torch.isfinite(table).all()):
            self._raise_nonfinite(rows, names, stage, epoch_no, n_steps)
        means = table.double().mean(0).tolist()
        train_acc = 100.0 * correct.item() / seen
        test_acc = self.evaluate()
        heads = self.evaluate_heads()
        entry = {"epoch": epoch_no, "stage": stage.name, "lr": lr, "train_acc": train_acc, "test_acc": test_acc,
                 "seconds": time.perf_counter() - t0,
                 "loss": {n: v for n, v in zip(names + ["total"], means)}}
        if heads:
            entry["heads"] = heads
        if bar is not None:
            bar.set_postfix({"ep": f"{epoch_no}/{self.total_epochs}", "loss": f"{means[-1]:.3f}",
                             "acc": f"{train_acc:.1f}", "test": f"{test_acc:.1f}"})
        return entry

    def _post_progress(self, bar, rows: list[torch.Tensor], names: list[str], stage: StagePlan, epoch_no: int,
                       n_steps: int, extra: dict | None = None) -> None:
        """Show the epoch's running mean of every term on the bar (and stop on a non-finite one)."""
        means = torch.stack(rows).mean(0).tolist()
        if not all(math.isfinite(v) for v in means):
            self._raise_nonfinite(rows, names, stage, epoch_no, n_steps)
        post = {"ep": f"{epoch_no}/{self.total_epochs}"}
        post.update({n: f"{v:.3f}" for n, v in zip(names + ["total"], means)})
        post.update(extra or {})
        bar.set_postfix(post, refresh=False)

    def _check_terms(self, terms: Any) -> list[str]:
        if not isinstance(terms, dict) or not terms:
            raise TypeError(f"{type(self.method).__name__}.loss must return a non-empty dict name -> scalar tensor, "
                            f"got {type(terms).__name__}")
        for k, v in terms.items():
            if not isinstance(v, torch.Tensor) or v.dim() != 0:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise TypeError(f"{type(self.method).__name__}.loss term {k!r} must be a scalar tensor, got {shape}")
            if k == "total":
                raise ValueError(f"{type(self.method).__name__}.loss must not return a 'total' term; the trainer adds it")
        return list(terms)

    def _raise_nonfinite(self, rows: list[torch.Tensor], names: list[str], stage: StagePlan, epoch_no: int,
                         n_steps: int):
        table = torch.stack(rows).cpu()
        bad = (~torch.isfinite(table)).nonzero()
        step, col = int(bad[0, 0]), int(bad[0, 1])
        term = (names + ["total"])[col]
        value = float(table[step, col])
        if self._last_checkpoint_epoch is not None and self.checkpoint is not None:
            kept = f"the last good checkpoint {self.checkpoint} (after epoch {self._last_checkpoint_epoch}) is kept"
        elif self.checkpoint is not None:
            kept = f"no checkpoint had been written yet to {self.checkpoint}"
        else:
            kept = "no checkpoint was requested"
        raise NonFiniteLossError(
            f"loss term {term!r} of method {self.method_name!r} is {value} at epoch {epoch_no} (stage "
            f"{stage.name!r}), step {step + 1}/{n_steps}; training stopped and {kept}. Lower the learning rate "
            f"or the term's weight.")

    @torch.no_grad()
    def evaluate(self, model: nn.Module | None = None) -> float:
        """Top-1 accuracy (percent) of ``model`` (default: the student) on the budget's test split."""
        return top1_accuracy(self.student if model is None else model, self.test_loader)

    @torch.no_grad()
    def evaluate_heads(self) -> dict[str, float]:
        """Top-1 accuracy (percent) on the test split of every head of :meth:`Method.heads` (peers,
        exits, ensembles); ``{}`` for a method without heads."""
        was = (self.student.training, self.extras.training)
        self.student.eval()
        self.extras.eval()
        correct: dict[str, torch.Tensor] = {}
        k = num_classes_of(self.student)
        try:
            with torch.inference_mode(), self._autocast():
                for x, y in self.test_loader:
                    out = self.method.heads(x, self.student, self.extras)
                    if not out:
                        return {}
                    for name, scores in out.items():
                        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (x.shape[0], k):
                            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                            raise ValueError(f"{type(self.method).__name__}.heads()[{name!r}] must be ({x.shape[0]}, {k}) "
                                             f"scores, got {shape}")
                        hit = (scores.argmax(1) == y).sum()
                        correct[name] = correct[name] + hit if name in correct else hit
        finally:
            self.student.train(was[0])
            self.extras.train(was[1])
        return {name: 100.0 * c.item() / self.test_loader.num_samples for name, c in correct.items()}

    # ------------------------------------------------------------------ record
    def record(self, device_label: str | None = None) -> dict:
        """The run record of the history so far (:func:`kdteach.results.new_record`)."""
        return results.new_record(
            method=self.method_name, teacher=model_name(self.teacher), student=model_name(self.student),
            dataset=self.dataset, budget=self.budget.name, seed=self.seed, hparams=dict(self.method.hparams),
            recipe=self.recipe(), history=self.history, wall_time=sum(h["seconds"] for h in self.history),
            device=device_label or str(self.device))


@dataclass
class RunResult:
    """What :func:`kdteach.train.distill` and :func:`kdteach.train.train_model` return.

    Attributes:
        student: the trained model (eval mode).
        extras: the method's trained extra modules (``nn.ModuleDict``, may be empty).
        record: the run record (saved to ``KDTEACH_RESULTS`` when ``record=True``).
        history: the per-epoch history (same as ``record["history"]``).
    """

    student: nn.Module
    extras: nn.ModuleDict
    record: dict
    history: list[dict]

    @property
    def best_acc(self) -> float:
        return self.record["best_acc"]

    @property
    def last_acc(self) -> float:
        return self.record["last_acc"]
