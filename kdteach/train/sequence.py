"""The sequence protocol: a chain of ordinary runs in which a trained student becomes the next teacher.

TAKD (teacher -> assistant -> student), BAN's generations and Tf-KD's self-teacher are chains. A link
is an ordinary offline run (:func:`kdteach.train.distill`: one frozen teacher, one student), so it
keeps every guarantee of that path; this module only adds what a chain needs:

* **Cached links.** Link 0 is the zoo's cached teacher. Every later link is a cached run
  (:func:`kdteach.train.runcache.cached_run`, stored like the zoo's teachers by
  :func:`kdteach.zoo.cached_model`: file lock, atomic write, record stored with the weights) under a
  key that covers the whole chain up to it: the first teacher's run id, each link's architecture,
  the method and its hyper-parameters, the student recipe, the seed and the code. Two chains that
  share a prefix share its links; changing anything upstream retrains downstream; a one-link chain
  ``[teacher, student]`` is the same run as :func:`kdteach.train.run_experiment`'s.
* **Resumable link by link.** A chain killed in link i restarts from the cache for links < i and
  from link i's own training checkpoint (bit-exact, as any run), which is deleted once the link is
  cached.
* **Linked records** (:func:`kdteach.train.runcache.link_record`). Link i's record has ``teacher`` = the chain so far joined by ``">"``
  (``"tiny_teacher>tiny_assistant"`` for TAKD's student), so its run id, tables and the dashboard
  tell it from the direct teacher -> student run, and ``chain`` = ``{"archs": [...], "link": i,
  "previous": [run ids of links 1..i-1]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from torch import nn

from ..data import NUM_CLASSES
from ..methods import Method
from .budgets import Budget, get_budget
from .runcache import cached_run, run_key, teacher_key
from .trainer import check_pair

__all__ = ["Link", "Chain", "chain_key", "run_chain", "CHAIN_SEPARATOR"]

#: Joins the architectures of a chain in a link's ``teacher`` field.
CHAIN_SEPARATOR = ">"


@dataclass
class Link:
    """One link of a chain: ``index`` 0 is the teacher; ``model`` is trained (eval mode)."""

    index: int
    arch: str
    model: nn.Module
    record: dict
    source: str
    extras: nn.ModuleDict = field(default_factory=nn.ModuleDict)


@dataclass
class Chain:
    """The outcome of :func:`run_chain`: ``links[0]`` the teacher, ``links[-1]`` the final student."""

    archs: tuple[str, ...]
    method: str
    budget: Budget
    seed: int
    links: list[Link]

    @property
    def student(self) -> nn.Module:
        return self.links[-1].model

    @property
    def records(self) -> list[dict]:
        return [link.record for link in self.links]

    def table(self) -> list[dict]:
        """One row per link: ``link``, ``arch``, ``teacher`` (the chain before it), ``params``,
        ``last_acc`` (percent) and ``run_id``."""
        rows = []
        for link in self.links:
            rows.append({"link": link.index, "arch": link.arch,
                         "teacher": CHAIN_SEPARATOR.join(self.archs[:link.index]) or None,
                         "params": sum(p.numel() for p in link.model.parameters()),
                         "last_acc": link.record["last_acc"], "run_id": link.record["run_id"]})
        return rows


def chain_key(archs: Sequence[str], method: Method, budget: Budget, seed: int, teacher_key: str) -> str:
    """File stem of the cached last link of ``archs`` (:func:`kdteach.train.runcache.run_key`): the
    hash covers the teacher's key, every architecture of the chain, the method and its
    hyper-parameters (except those listed in the method's ``chain_hparams``, which only choose the
    architectures: TAKD's ``assistants``), the student recipe, the data, the seed and the code. So
    ``"auto"`` and the names it stands for share their links, a longer chain reuses the links of its
    prefix, and a one-link chain is the same run as :func:`kdteach.train.run_experiment`'s."""
    return run_key(archs, method, budget, seed, teacher_key)


def _check_archs(archs: Sequence[str], method: Method, k: int) -> tuple[str, ...]:
    from .. import models as kdmodels
    from .api import build_model

    if isinstance(archs, str) or len(archs) < 2:
        raise ValueError(f"archs must list at least a teacher and a student (teacher first), got {archs!r}")
    for a in archs:
        if a not in kdmodels.MODELS:
            raise ValueError(f"unknown model {a!r} in the chain {list(archs)}; available models: "
                             f"{', '.join(kdmodels.list_models())}")
    if not method.needs_teacher:
        raise ValueError(f"method {method.name!r} trains without a teacher; a chain needs a distillation method")
    for t, s in zip(archs[:-1], archs[1:]):   # every pair, on untrained models, before any training
        check_pair(method, build_model(s, k), build_model(t, k))
    return tuple(archs)


def run_chain(archs: Sequence[str], method: str | Method = "kd", *, budget: str | Budget | None = None,
              seed: int = 0, teacher_seed: int = 0, hparams: dict | None = None,
              teacher_budget: str | Budget | None = None, teacher_model: nn.Module | None = None,
              progress: bool = False, verbose: bool = False) -> Chain:
    """Train the chain ``archs[0] -> archs[1] -> ... -> archs[-1]``: each link distils the previous one.

    Args:
        archs: model names, teacher first, the final student last (at least two).
        method: the distillation method of every link (name or Method), e.g. ``"kd"`` for TAKD.
        budget: name / Budget / None (``KDTEACH_BUDGET``); links train the budget's student schedule.
        seed: the seed of every trained link; ``teacher_seed``: the cached teacher's.
        teacher_budget: the budget the cached teacher comes from (default ``budget``; differs when
            the links train a shortened schedule ``"<budget>-<N>ep"``).
        teacher_model: a trained teacher to use as link 0 instead of the zoo's; it must carry its run
            record (``kd_record``, as zoo teachers do) and be an ``archs[0]`` (``kd_arch``), since
            the record's run id keys the chain's cache.
        hparams: the method's hyper-parameter overrides.
        progress: progress bars; verbose: one line per link.

    Returns:
        :class:`Chain`; every trained link is cached and its record saved (see the module doc).

    Raises:
        ValueError: fewer than two architectures, an unknown one, a method without a teacher, or a
            pair the method cannot train (checked for every link before any training).
    """
    from .. import zoo
    from .api import _resolve_method

    m = _resolve_method(method, hparams)
    b = get_budget(budget)
    k = NUM_CLASSES[b.dataset]
    archs = _check_archs(archs, m, k)
    tb = b if teacher_budget is None else get_budget(teacher_budget)
    if teacher_model is None:
        teacher_model = zoo.teacher(archs[0], budget=tb, seed=teacher_seed, progress=progress, verbose=verbose)
    elif not isinstance(getattr(teacher_model, "kd_record", None), dict) or getattr(teacher_model, "kd_arch", None) != archs[0]:
        raise ValueError(f"teacher_model must be a trained {archs[0]} carrying its run record (kd_record, "
                         f"kd_arch), as the zoo's teachers do; got {type(teacher_model).__name__}")
    links = [Link(0, archs[0], teacher_model, teacher_model.kd_record, "cached")]
    first = teacher_key(teacher_model)
    for i in range(1, len(archs)):
        prev = links[-1]

        # link i: a cached run whose teacher is link i-1; keyed by the chain's first teacher and archs[:i+1]
        run, source = cached_run(m, b, teacher=prev.model, student=archs[i], seed=seed, archs=archs[:i + 1],
                                 progress=progress, key_teacher=first,
                                 previous=[link.record["run_id"] for link in links[1:]],
                                 label=f"link {i} of {CHAIN_SEPARATOR.join(archs)}")
        if verbose:
            print(f"link {i} {archs[i]} (from {prev.arch}): test accuracy {run.record['last_acc']:.2f}% [{source}]",
                  flush=True)
        links.append(Link(i, archs[i], run.student, run.record, source, run.extras))
    return Chain(archs=archs, method=m.name, budget=b, seed=seed, links=links)
