"""Every committed notebook follows the course template and is listed in README's notebook table.

The checks themselves (and that they catch each problem type) are tested in tests/test_nbtools.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdteach.nbtools import (METADATA_KEYS, RUN_TIMES_FILE, check_notebook, find_notebooks, notebook_key,
                             read_readme_table, readme_table, readme_table_text)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
README = REPO / "README.md"
NOTEBOOKS = find_notebooks(NOTEBOOKS_DIR) if NOTEBOOKS_DIR.is_dir() else []


def test_notebooks_folder_exists():
    assert NOTEBOOKS_DIR.is_dir(), f"{NOTEBOOKS_DIR} is missing"


def test_notebooks_live_in_part_folders():
    for path in NOTEBOOKS:
        assert path.parent.parent == NOTEBOOKS_DIR, f"{path}: expected notebooks/<part>/<id>.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[notebook_key(p) for p in NOTEBOOKS])
def test_notebook_is_clean(path):
    assert check_notebook(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[notebook_key(p) for p in NOTEBOOKS])
def test_notebook_metadata_and_readme_row(path):
    meta = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("kdteach")
    assert isinstance(meta, dict) and all(meta.get(k) for k in METADATA_KEYS), f"metadata.kdteach = {meta!r}"
    rows = read_readme_table(README)
    assert (meta["part"], meta["id"]) in {(r["part"], r["id"]) for r in rows}, \
        f"{meta['id']} is not in README's notebook table: run `kdteach notebooks readme`"


def test_readme_table_is_current():
    """README's table is what `update_readme_table` would write (ids, papers, venues, run times)."""
    expected, _ = readme_table(README, NOTEBOOKS_DIR)
    assert readme_table_text(README) == expected, "README's notebook table is stale: run `kdteach notebooks readme`"


def test_run_times_cover_the_notebooks():
    path = NOTEBOOKS_DIR / RUN_TIMES_FILE
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    keys = {notebook_key(p) for p in NOTEBOOKS}
    assert set(times) <= keys, f"run times for notebooks that do not exist: {sorted(set(times) - keys)}"
    assert keys <= set(times), f"notebooks without a ci run time (run them with `kdteach notebooks run`): {sorted(keys - set(times))}"
    assert all(isinstance(v, (int, float)) and v > 0 for v in times.values())
