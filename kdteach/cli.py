"""The ``kdteach`` command (also ``python -m kdteach``).

Commands::

    kdteach models                      list the model zoo
    kdteach methods                     list the distillation methods and their defaults
    kdteach train-teacher --arch resnet32x4 --dataset cifar100 --budget gpu --seed 0
    kdteach distill --method kd --teacher resnet32x4 --student resnet8x4 --budget gpu --seed 0 [--epochs N]
    kdteach results [--method kd] [--budget ci] [--metric best_acc]
    kdteach zoo warm [--quiet] [--seeds 0 1] [--budget ci]
    kdteach zoo import FILE --arch NAME [--dataset cifar100] [--budget paper] [--seed 0] [--no-eval]
    kdteach notebooks export --lang en|zh DIR [NOTEBOOKS...]
    kdteach notebooks run [PATHS...]
    kdteach notebooks check [PATHS...]
    kdteach notebooks readme [--readme README.md] [--notebooks notebooks]

A user mistake (unknown method, budget, model, bad number) prints one line on stderr and exits
with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in the command line or its values: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _hparam(text: str) -> tuple[str, float | int | str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``kdteach`` command."""
    from .train.budgets import list_budgets

    budgets = ", ".join(list_budgets())
    p = _Parser(prog="kdteach", description="kdteach: knowledge distillation course tools (models, methods, "
                                            "training, results, notebooks).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("models", help="list the model zoo", description="List the model zoo with parameter counts.")
    sub.add_parser("methods", help="list the distillation methods",
                   description="List the distillation methods, their papers and default hyper-parameters.")

    q = sub.add_parser("train-teacher", help="train (or load) a cached teacher",
                       description="Train a teacher with the budget's recipe and cache it (loads it if cached).")
    q.add_argument("--arch", help="architecture (default: the budget's teacher)")
    q.add_argument("--dataset", choices=("cifar10", "cifar100"), help="default: the budget's dataset")
    q.add_argument("--budget", help=f"one of {budgets} (default: KDTEACH_BUDGET)")
    q.add_argument("--seed", type=_int, default=0)
    q.add_argument("--quiet", action="store_true", help="no progress bar")

    q = sub.add_parser("distill", help="train a student with a method and record the run",
                       description="Train a student with a distillation method; the run record goes to "
                                   "KDTEACH_RESULTS.")
    q.add_argument("--method", required=True, help="a method name (see `kdteach methods`)")
    q.add_argument("--teacher", help="teacher architecture (default: the budget's; cached teacher)")
    q.add_argument("--student", help="student architecture (default: the budget's)")
    q.add_argument("--budget", help=f"one of {budgets} (default: KDTEACH_BUDGET)")
    q.add_argument("--seed", type=_int, default=0)
    q.add_argument("--epochs", type=_positive_int, help="override the budget's number of epochs (recorded as budget <budget>-<N>ep)")
    q.add_argument("--set", dest="hparams", type=_hparam, action="append", default=[], metavar="NAME=VALUE",
                   help="override a hyper-parameter of the method (repeatable)")
    q.add_argument("--checkpoint", help="checkpoint file (resumes if it exists)")
    q.add_argument("--no-record", action="store_true", help="do not save the run record")
    q.add_argument("--quiet", action="store_true", help="no progress bar")

    q = sub.add_parser("results", help="table of recorded runs",
                       description="Summarise recorded runs: mean ± std over seeds per group.")
    q.add_argument("--method", action="append", help="only these methods (repeatable)")
    q.add_argument("--budget", action="append", help="only these budgets (repeatable)")
    q.add_argument("--student", action="append", help="only these students (repeatable)")
    q.add_argument("--teacher", action="append", help="only these teachers (repeatable)")
    q.add_argument("--metric", default="best_acc", choices=("best_acc", "last_acc", "wall_time"))
    q.add_argument("--by", nargs="+", default=["method", "student", "teacher", "budget"],
                   help="fields that define a row (default: method student teacher budget)")
    q.add_argument("--dir", help="results folder (default: KDTEACH_RESULTS)")

    q = sub.add_parser("zoo", help="cached teachers and baseline students",
                       description="Manage the cache of teachers and baseline students.")
    zsub = q.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", parser_class=_Parser)
    zsub.required = True
    w = zsub.add_parser("warm", help="train/load what the budget's notebooks share",
                        description="Train (or load) the budget's default teacher (seed 0), its baseline "
                                    "students for the given seeds and, unless --teachers-only, the shared runs: "
                                    "the KD students and the teacher -> assistant links (kdteach.zoo.warm).")
    w.add_argument("--budget", help=f"one of {budgets} (default: KDTEACH_BUDGET)")
    w.add_argument("--seeds", type=_int, nargs="+", default=None,
                   help="baseline student seeds (default: the budget's seeds)")
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    w.add_argument("--teachers-only", action="store_true",
                   help="only the teacher and the students alone, not the shared KD and assistant runs")
    i = zsub.add_parser("import", help="register a CRD-benchmark teacher checkpoint as the cached teacher",
                        description="Load a teacher checkpoint (the CRD benchmark's {'model': state_dict, ...} or "
                                    "a bare state dict) with weights_only=True, check every key and shape against "
                                    "--arch, report its test accuracy next to the benchmark's published one, and "
                                    "cache it as the budget's teacher so that `kdteach distill` uses it "
                                    "(kdteach.zoo.import_teacher).")
    i.add_argument("file", help="the checkpoint, e.g. save/models/resnet56_vanilla/ckpt_epoch_240.pth")
    i.add_argument("--arch", required=True, help="its architecture (a zoo name or the benchmark's, e.g. ResNet50)")
    i.add_argument("--dataset", choices=("cifar10", "cifar100"), default="cifar100",
                   help="the classes it predicts (default: cifar100, the benchmark's)")
    i.add_argument("--budget", default="paper", help=f"one of {budgets}: whose teacher it becomes (default: paper)")
    i.add_argument("--seed", type=_int, default=0, help="the teacher seed it is cached under (default 0, "
                                                        "the one distill uses)")
    i.add_argument("--no-eval", action="store_true", help="do not measure the test accuracy")

    q = sub.add_parser("notebooks", help="export, run or check the course notebooks",
                       description="Export monolingual copies of the notebooks, re-execute them, check them, "
                                   "or rewrite README's notebook table.")
    nsub = q.add_subparsers(dest="nb_command", metavar="NB_COMMAND", parser_class=_Parser)
    nsub.required = True
    e = nsub.add_parser("export", help="write monolingual (en or zh) copies",
                        description="Write copies keeping only one language's prose cells.")
    e.add_argument("--lang", required=True, choices=("en", "zh"))
    e.add_argument("dir", help="destination folder (outside notebooks/)")
    e.add_argument("notebooks", nargs="*", default=["notebooks"], help="notebooks or folders (default: notebooks)")
    r = nsub.add_parser("run", help="re-execute notebooks in place",
                        description="Re-execute notebooks in place (records ci run times).")
    r.add_argument("paths", nargs="*", default=["notebooks"], help="notebooks or folders (default: notebooks)")
    r.add_argument("--timeout", type=_positive_int, default=600, help="seconds per cell")
    c = nsub.add_parser("check", help="list the problems of notebooks (exit 1 if any)",
                        description="Run the notebook checker (en/zh pairing, template sections, outputs, "
                                    "execution counts, widget state, size).")
    c.add_argument("paths", nargs="*", default=["notebooks"], help="notebooks or folders (default: notebooks)")
    m = nsub.add_parser("readme", help="rewrite README's notebook table",
                        description="Rewrite the notebook table of README.md from the notebooks' metadata "
                                    "and notebooks/run_times.json.")
    m.add_argument("--readme", default="README.md", help="the README to update (default: README.md)")
    m.add_argument("--notebooks", default="notebooks", help="the notebooks folder (default: notebooks)")
    return p


# ---------------------------------------------------------------------------------------------- commands

def _cmd_models(args) -> int:
    import torch

    from . import models

    rows = []
    for name in models.list_models():
        with torch.device("meta"):   # shapes only: no memory, no initialisation cost (resnet50, vgg19)
            m = models.create(name, num_classes=100)
        rows.append((name, models.count_parameters(m), ", ".join(f"{s.name}:{s.channels}" for s in m.stages)))
    w = max(len(r[0]) for r in rows)
    print(f"{'model'.ljust(w)}  params (100 classes)  stages (name:channels)")
    for name, n, stages in rows:
        print(f"{name.ljust(w)}  {n:>20,}  {stages}")
    return 0


def _cmd_methods(args) -> int:
    from .methods import METHODS

    w = max(len(n) for n in METHODS)
    for name, cls in METHODS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "-"
        print(f"{name.ljust(w)}  {defaults}")
        print(f"{''.ljust(w)}  {cls.paper}")
    return 0


def _cmd_train_teacher(args) -> int:
    from . import zoo

    model = zoo.teacher(args.arch, dataset=args.dataset, budget=args.budget, seed=args.seed,
                        progress=not args.quiet)
    print(f"{model.kd_arch}: test accuracy {model.kd_test_acc:.2f}%")
    return 0


def _cmd_distill(args) -> int:
    from .train import distill, get_budget

    budget = get_budget(args.budget)
    result = distill(args.method, budget=budget, teacher=args.teacher, student=args.student, seed=args.seed,
                     hparams=dict(args.hparams) or None, record=not args.no_record, progress=not args.quiet,
                     epochs=args.epochs, checkpoint=args.checkpoint)
    rec = result.record
    print(f"{rec['run_id']}: best {rec['best_acc']:.2f}% (epoch {rec['best_epoch']}), last {rec['last_acc']:.2f}%, "
          f"{rec['wall_time']:.1f} s")
    return 0


def _cmd_results(args) -> int:
    from . import results

    filters = {k: v for k, v in (("method", args.method), ("budget", args.budget), ("student", args.student),
                                 ("teacher", args.teacher)) if v}
    records = results.load_records(args.dir, **filters)
    rows = results.comparison_table(records, metric=args.metric, by=tuple(args.by))
    print(results.format_table(rows))
    return 0


def _cmd_zoo(args) -> int:
    from . import zoo

    if args.zoo_command == "import":
        zoo.import_teacher(args.file, args.arch, dataset=args.dataset, budget=args.budget, seed=args.seed,
                           evaluate=not args.no_eval)
        return 0
    summary = zoo.warm(budget=args.budget, seeds=args.seeds, progress=not args.quiet, verbose=True,
                       runs=not args.teachers_only)
    students = ", ".join(f"seed {s}: {a:.2f}%" for s, a in summary["students"].items())
    print(f"teacher {summary['teacher']:.2f}%; students {students}")
    return 0


def _cmd_notebooks(args) -> int:
    from . import nbtools

    if args.nb_command == "export":
        out = []
        for src in args.notebooks:
            path = Path(src)
            if path.is_dir():
                out += nbtools.export_all(path, args.dir, args.lang)
            elif path.is_file():
                out.append(nbtools.export_notebook(path, args.dir, args.lang))
            else:
                raise UsageError(f"kdteach notebooks export: no notebook or folder at {src}")
        for p in out:
            print(p)
        return 0
    if args.nb_command == "readme":
        for what, path in (("--readme", args.readme), ("--notebooks", args.notebooks)):
            if not Path(path).exists():
                raise UsageError(f"kdteach notebooks readme: {what} {path} does not exist")
        return nbtools.main(["readme", "--readme", args.readme, "--notebooks", args.notebooks])
    for src in args.paths:
        if not Path(src).exists():
            raise UsageError(f"kdteach notebooks {args.nb_command}: no notebook or folder at {src}")
    if args.nb_command == "check":
        return nbtools.main(["check", *args.paths])
    return nbtools.main(["run", *args.paths, "--timeout", str(args.timeout)])


COMMANDS = {"models": _cmd_models, "methods": _cmd_methods, "train-teacher": _cmd_train_teacher,
            "distill": _cmd_distill, "results": _cmd_results, "zoo": _cmd_zoo, "notebooks": _cmd_notebooks}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kdteach``; returns the exit status (0 ok, 2 user mistake)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        # user mistakes surface from the library as these, with a message naming the bad value
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        text = " ".join(line.strip() for line in str(msg).strip().splitlines() if line.strip())
        print(f"kdteach: error: {text or type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("kdteach: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
