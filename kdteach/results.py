"""Run records: one JSON file per training run, and the comparison tables the widgets read.

A record (the contract every part of kdteach shares)::

    {"kdteach_version": "0.1.0",
     "run_id": "<method>-<student>-<teacher>-<dataset>-<budget>-s<seed>-<short hash>",
     "method": "kd" | "student" | "teacher" | ..., "teacher": "tiny_teacher" | None,
     "student": "tiny_student", "dataset": "cifar10", "budget": "ci", "seed": 0,
     "hparams": {...}, "recipe": {...},
     "history": [{"epoch": 1, "stage": "main", "lr": 0.05, "train_acc": 31.2, "test_acc": 35.0,
                  "seconds": 1.4, "loss": {"ce": 1.9, "kd": 0.7, "total": 2.6}}, ...],
     "best_acc": 60.1, "best_epoch": 14, "last_acc": 59.8, "wall_time": 12.3, "device": "cpu",
     "created": "2026-11-23T17:00:00Z"}

Methods with more networks than the student (peers, exits: :meth:`kdteach.methods.Method.heads`) add
``"heads": {name: acc}`` to each history entry and, for the last epoch, to the record; ``best_acc``
and ``last_acc`` stay the student's.

Accuracies are percentages (0-100). Files are written atomically (temp file + ``os.replace``), so a
reader never sees half a record; :func:`load_records` still skips unreadable files with a warning.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import __version__, config

REQUIRED_KEYS = ("kdteach_version", "run_id", "method", "teacher", "student", "dataset", "budget", "seed",
                 "hparams", "recipe", "history", "best_acc", "best_epoch", "last_acc", "wall_time", "device",
                 "created")


def _short_hash(payload: Any, n: int = 8) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def make_run_id(method: str, student: str, teacher: str | None, dataset: str, budget: str, seed: int,
                hparams: dict, recipe: dict, device: str = "cpu") -> str:
    """``<method>-<student>-<teacher>-<dataset>-<budget>-s<seed>-<hash>``; the hash covers the
    hyper-parameters, the recipe and the device type, so the same configuration re-run on the same
    kind of device replaces its previous record instead of piling up copies."""
    h = _short_hash({"hparams": hparams, "recipe": recipe, "device": str(device).split(":")[0]})
    return f"{method}-{student}-{teacher or 'none'}-{dataset}-{budget}-s{seed}-{h}"


def new_record(*, method: str, teacher: str | None, student: str, dataset: str, budget: str, seed: int,
               hparams: dict, recipe: dict, history: list[dict], wall_time: float, device: str,
               created: str | None = None) -> dict:
    """Build a record in the contract's shape; best/last accuracy are derived from ``history``.

    Args:
        history: per-epoch dicts with at least ``epoch`` and ``test_acc`` (percent).

    Returns:
        The record dict (not yet saved; see :func:`save_record`).
    """
    if not history:
        raise ValueError("history must contain at least one epoch")
    best = max(history, key=lambda h: (h["test_acc"], -h["epoch"]))
    record = {
        "kdteach_version": __version__,
        "run_id": make_run_id(method, student, teacher, dataset, budget, seed, hparams, recipe, device),
        "method": method, "teacher": teacher, "student": student, "dataset": dataset, "budget": budget,
        "seed": int(seed), "hparams": dict(hparams), "recipe": dict(recipe), "history": list(history),
        "best_acc": float(best["test_acc"]), "best_epoch": int(best["epoch"]),
        "last_acc": float(history[-1]["test_acc"]), "wall_time": float(wall_time), "device": str(device),
        "created": created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    heads = history[-1].get("heads")
    if heads:   # online / self protocols: every other network's last-epoch test accuracy (percent)
        record["heads"] = {str(k): float(v) for k, v in heads.items()}
    return record


def validate_record(record: Any) -> dict:
    """Return ``record`` if it has every contract key with the right basic types, else raise ValueError."""
    if not isinstance(record, dict):
        raise ValueError(f"a run record must be a dict, got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"run record is missing keys {missing}")
    if not isinstance(record["history"], list):
        raise ValueError("run record 'history' must be a list of per-epoch dicts")
    for key in ("best_acc", "last_acc", "wall_time"):
        if not isinstance(record[key], (int, float)) or isinstance(record[key], bool):
            raise ValueError(f"run record {key!r} must be a number, got {record[key]!r}")
    if not isinstance(record["run_id"], str) or not record["run_id"] or "/" in record["run_id"]:
        raise ValueError(f"run record 'run_id' must be a non-empty file-name-safe string, got {record['run_id']!r}")
    return record


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; store them as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


_UMASK = os.umask(0)
os.umask(_UMASK)
#: mode of the files kdteach writes (rw for the user, read for others as the umask allows)
FILE_MODE = 0o666 & ~_UMASK


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 files; give them the usual umask-based mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_record(record: dict, folder: str | Path | None = None) -> Path:
    """Write ``record`` as ``<folder>/<run_id>.json`` atomically and return the path.

    Args:
        record: a dict in the contract's shape (see :func:`new_record`).
        folder: default :func:`kdteach.config.results_dir` (``KDTEACH_RESULTS``).
    """
    validate_record(record)
    folder = Path(folder) if folder is not None else config.results_dir()
    path = folder / f"{record['run_id']}.json"
    atomic_write_text(path, json.dumps(_json_safe(record), indent=1, ensure_ascii=False) + "\n")
    return path


def _matches(record: dict, key: str, want: Any) -> bool:
    have = record.get(key)
    if isinstance(want, (list, tuple, set, frozenset)):
        return have in want
    return have == want


def load_records(folder: str | Path | None = None, **filters: Any) -> list[dict]:
    """All records in ``folder`` (default ``KDTEACH_RESULTS``) matching ``filters``, oldest first.

    Filters compare top-level fields: ``load_records(method="kd", budget="ci")``; a list/tuple/set
    value matches any of its members (``method=("kd", "student")``). Files that are not valid JSON
    records (half-written, corrupt, foreign) are skipped with a ``UserWarning`` naming them.
    """
    folder = Path(folder) if folder is not None else config.results_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = validate_record(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            warnings.warn(f"skipping unreadable run record {path}: {exc}", UserWarning, stacklevel=2)
            continue
        if all(_matches(record, k, v) for k, v in filters.items()):
            out.append(record)
    out.sort(key=lambda r: (str(r.get("created", "")), r["run_id"]))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value) of per-seed numbers.

    Raises:
        ValueError: ``values`` is empty.
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("values must hold at least one number")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def hparams_key(record: dict) -> str:
    """A stable key for a record's hyper-parameters: a hash of its ``hparams`` with sorted keys.

    Two records share a key exactly when their ``hparams`` are equal (the method's full
    hyper-parameters after overrides, as the trainer records them), whatever order they were set in.
    """
    return _short_hash(record.get("hparams") or {}, 12)


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def settings(records: Iterable[dict], by: Sequence[str] = ("method",)) -> dict[str, str]:
    """For each record's ``run_id``: the hyper-parameters that tell its setting apart.

    Records with the same ``by`` fields but different ``hparams`` are different settings (an
    exercise's ``T = 20`` KD run is not the default ``T = 4`` one). A setting is written as the
    hyper-parameters whose values differ among the settings of its group, e.g. ``"temperature=20"``;
    it is ``""`` when the group has a single setting.

    Args:
        records: run records.
        by: the fields that define a group (as in :func:`comparison_table`).

    Returns:
        ``{run_id: setting}``.
    """
    if isinstance(by, str):
        by = (by,)
    records = list(records)
    groups: dict[tuple, dict[str, dict]] = {}
    for r in records:
        groups.setdefault(tuple(r.get(b) for b in by), {})[hparams_key(r)] = r.get("hparams") or {}
    label: dict[tuple, str] = {}
    for gkey, variants in groups.items():
        if len(variants) < 2:
            for hkey in variants:
                label[gkey + (hkey,)] = ""
            continue
        names = sorted({k for hp in variants.values() for k in hp})
        differing = [k for k in names if len({json.dumps(hp.get(k), sort_keys=True, default=str)
                                              for hp in variants.values()}) > 1]
        for hkey, hp in variants.items():
            label[gkey + (hkey,)] = ", ".join(f"{k}={_format_value(hp[k]) if k in hp else '-'}" for k in differing)
    return {r["run_id"]: label[tuple(r.get(b) for b in by) + (hparams_key(r),)] for r in records}


def comparison_table(records: Iterable[dict], metric: str = "best_acc", by: Sequence[str] = ("method",)
                     ) -> list[dict]:
    """Group records and summarise ``metric`` over seeds.

    Runs with different hyper-parameters are never pooled, nor does one replace another: each
    (``by`` fields, :func:`hparams_key`) pair is its own row, and the ``setting`` column
    (:func:`settings`) names the values that differ.

    Args:
        records: run records (e.g. from :func:`load_records`).
        metric: a numeric top-level field (``best_acc``, ``last_acc``, ``wall_time``).
        by: fields that define a group (default: the method).

    Returns:
        One row per group and setting, sorted by the group fields then the setting: the ``by``
        fields, ``setting`` (``""`` when the group has one setting), then ``metric`` (its name),
        ``mean``, ``std`` (sample standard deviation over runs, 0 for a single run), ``min``,
        ``max``, ``n`` (runs), ``seeds`` (sorted), ``hparams`` (the setting's hyper-parameters) and
        ``run_ids`` (the runs counted). When a seed was run twice with the same setting, the newest
        record counts.
    """
    if isinstance(by, str):
        by = (by,)
    records = list(records)
    setting = settings(records, by)
    groups: dict[tuple, dict[Any, dict]] = {}
    for r in records:
        if metric not in r:
            raise ValueError(f"metric {metric!r} is not a field of run {r.get('run_id')!r}")
        key = tuple(r.get(b) for b in by) + (setting[r["run_id"]], hparams_key(r))
        per_seed = groups.setdefault(key, {})
        old = per_seed.get(r.get("seed"))
        if old is None or str(r.get("created", "")) >= str(old.get("created", "")):
            per_seed[r.get("seed")] = r
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        runs = [r for r in groups[key].values() if isinstance(r.get(metric), (int, float))]
        if not runs:
            continue
        values = [float(r[metric]) for r in runs]
        mean, std = mean_std(values)
        row = dict(zip(by, key))
        row.update({"setting": key[len(by)], "metric": metric, "mean": mean, "std": std, "min": min(values),
                    "max": max(values), "n": len(values), "seeds": sorted(r.get("seed") for r in runs),
                    "hparams": dict(runs[0].get("hparams") or {}),
                    "run_ids": [r["run_id"] for r in sorted(runs, key=lambda r: str(r.get("seed")))]})
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict], digits: int = 2) -> str:
    """A plain-text table of dict rows (e.g. :func:`comparison_table`), columns in first-row order.

    ``mean`` and ``std`` are shown together as ``mean ± std``; floats use ``digits`` decimals. The
    ``hparams`` and ``run_ids`` fields of :func:`comparison_table` rows are left out, and so is
    ``setting`` when no row has one.
    """
    if not rows:
        return "(no runs)"
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    cols = [c for c in cols if c not in ("hparams", "run_ids")]   # for programs, not for reading
    if "setting" in cols and not any(r.get("setting") for r in rows):
        cols.remove("setting")
    joined = "mean" in cols and "std" in cols
    if joined:
        cols = [c for c in cols if c != "std"]

    def cell(row: dict, col: str) -> str:
        v = row.get(col, "")
        if joined and col == "mean":
            return f"{row['mean']:.{digits}f} ± {row.get('std', 0.0):.{digits}f}"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        if isinstance(v, (list, tuple)):
            return ",".join(str(x) for x in v)
        return "-" if v is None else str(v)

    header = ["mean ± std" if (joined and c == "mean") else c for c in cols]
    body = [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(line.rstrip() for line in lines)
