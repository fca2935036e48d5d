"""Budgets and the trainer.

* :mod:`kdteach.train.budgets`: named recipes ``ci``, ``quick``, ``gpu``, ``paper`` (:func:`get_budget`).
* :mod:`kdteach.train.trainer`: :class:`Trainer`, one loop generic over a method, with exact resume.
* :func:`distill` / :func:`train_model`: the small entry points notebooks and the CLI call.
* :func:`run_chain` (:mod:`kdteach.train.sequence`): the sequence protocol, a chain of cached runs in
  which a trained student becomes the next teacher (TAKD).
* :func:`run_experiment`: a notebook's section 5 in one call (teacher, student alone, student with
  the method, per seed), reported by :meth:`Experiment.card` with its :class:`Mechanism` check.
"""

from .api import build_model, distill, train_model
from .budgets import BUDGETS, Budget, get_budget, list_budgets
from .experiment import Experiment, Mechanism, ResultCard, binomial_se, run_experiment
from .datafree import DataFreeTrainer
from .sequence import Chain, Link, run_chain
from .trainer import NonFiniteLossError, RunResult, Trainer, atomic_torch_save, budget_splits, model_name

__all__ = ["Budget", "BUDGETS", "get_budget", "list_budgets", "Trainer", "RunResult", "NonFiniteLossError",
           "distill", "train_model", "build_model", "budget_splits", "atomic_torch_save", "model_name",
           "Chain", "Link", "run_chain", "DataFreeTrainer", "Experiment", "Mechanism", "ResultCard", "binomial_se", "run_experiment"]
