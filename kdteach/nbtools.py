"""Notebook machinery: build, check, execute and export the course's bilingual notebooks.

The course notebooks follow one template (``docs/NOTEBOOKS.md``, DESIGN §4): prose cells come in
pairs, an English markdown cell tagged ``en`` immediately followed by its Chinese cell tagged
``zh``; the sections open with fixed headings (:data:`TEMPLATE_SECTIONS`); code cells are shared.
Every notebook carries ``metadata.kdteach = {"id", "paper", "venue", "part"}``.

Main entry points:

- :func:`new_notebook`, :func:`add_prose`, :func:`add_code`, :func:`write_notebook`: build a
  notebook programmatically with the right tags and metadata.
- :func:`check_notebook`: the list of problems of a committed notebook (empty when it is clean).
- :func:`run_notebook`, :func:`run_notebooks`: re-execute in place with nbclient in the current
  environment and record the wall times in ``notebooks/run_times.json``.
- :func:`export_notebook`, :func:`export_all`: monolingual copies.
- :func:`update_readme_table`, :func:`readme_table`, :func:`read_readme_table`: README's notebook table.
- :func:`main`: ``python -m kdteach.nbtools {check,run,export,readme} ...``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat

from .results import atomic_write_text

__all__ = [
    "TEMPLATE_SECTIONS",
    "TITLE_PREFIX",
    "METADATA_KEYS",
    "MAX_NOTEBOOK_BYTES",
    "CHECK_OUTPUT_MARKER",
    "README_START",
    "README_END",
    "RUN_TIMES_FILE",
    "new_notebook",
    "add_prose",
    "add_code",
    "write_notebook",
    "strip_widget_state",
    "check_notebook",
    "check_conventions",
    "core_word_count",
    "MAX_CORE_WORDS",
    "MAX_CORE_WORDS_WITH_MARKUP",
    "DEEPER_PREFIX",
    "FOOTER_CALL",
    "EXERCISE_TIME",
    "find_notebooks",
    "export_notebook",
    "export_all",
    "run_notebook",
    "run_notebooks",
    "notebook_key",
    "readme_table",
    "readme_table_text",
    "update_readme_table",
    "read_readme_table",
    "main",
]

#: The template's section headings, in order, as (English, Chinese) pairs. Each is the first line
#: of the en/zh cell pair that opens the section. The first pair is the title cell: any level-1
#: heading (``# <Paper title>`` / ``# <中文标题>``); the others must match exactly.
TEMPLATE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("# <Paper title>", "# <中文标题>"),
    ("## 1. The question", "## 1. 问题"),
    ("## 2. The knowledge and the loss", "## 2. 知识与损失"),
    ("## 3. From scratch", "## 3. 从零实现"),
    ("## 4. Seeing the knowledge", "## 4. 看见知识"),
    ("## 5. Experiment", "## 5. 实验"),
    ("## 6. The paper's numbers and ours", "## 6. 论文结果与我们的结果"),
    ("## 7. Interactive", "## 7. 交互"),
    ("## 8. Summary, exercises, references", "## 8. 小结、练习与参考文献"),
)

#: The title cell's first line starts with this (a level-1 markdown heading).
TITLE_PREFIX = "# "

#: Keys every notebook's ``metadata.kdteach`` entry must have.
METADATA_KEYS = ("id", "paper", "venue", "part")

#: Largest committed notebook file, in bytes.
MAX_NOTEBOOK_BYTES = 2_000_000

#: nbval's comment marker for cells whose output is compared on every test run.
CHECK_OUTPUT_MARKER = "# NBVAL_CHECK_OUTPUT"

#: Most English words in a notebook's core: en prose outside "Deeper" subsections, math and code
#: excluded. The target is about 1,500 (a 20-minute read); this limit leaves room for the tables.
MAX_CORE_WORDS = 1_800
#: The same core counted as the course's review hook counts it (``core_word_count(cells, markup=True)``:
#: display math and code spans count as words, any heading ends a Deeper subsection); its limit.
MAX_CORE_WORDS_WITH_MARKUP = 1_900
#: First-line prefixes of an optional subsection (en, zh); it runs to the next ``##``/``###`` heading.
DEEPER_PREFIX = ("### Deeper: ", "### 深入：")
#: The shared footer every section 7 ends with, and the API it replaces in notebooks.
FOOTER_CALL = "results_dashboard("
#: What an exercise states: its expected run time at the ci budget, e.g. ``(ci: about 40 s)``.
EXERCISE_TIME = re.compile(r"\(ci: (about \d+ (s|min)|no run)\)")
README_START = "<!-- notebooks:start -->"
README_END = "<!-- notebooks:end -->"

#: File (inside the notebooks folder) with the ci-budget wall time of each notebook.
RUN_TIMES_FILE = "run_times.json"

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

# Han ideographs (unified + extension A): a zh cell must contain some.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# Anything CJK: Han, CJK punctuation, kana, fullwidth forms. An en cell must contain none.
_CJK = re.compile(r"[\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Object reprs that carry a memory address, and matplotlib's figure/artist reprs.
_OBJECT_REPR = re.compile(r"<[^<>\n]*\bat 0x[0-9a-fA-F]+>|<Figure size [^>]*>|<matplotlib\.[^>]*>")
# Data keys that nbval compares as text and that are stable across runs.
_TEXT_MIMES = {"text/plain", "text/html", "text/markdown", "text/latex"}


# --------------------------------------------------------------------------------------------
# building notebooks
# --------------------------------------------------------------------------------------------

def _validate_meta(meta: Any) -> dict:
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict with keys {METADATA_KEYS}, got {type(meta).__name__}")
    missing = [k for k in METADATA_KEYS if not isinstance(meta.get(k), str) or not meta.get(k).strip()]
    if missing:
        raise ValueError(f"meta is missing non-empty string value(s) for {missing}; expected keys {METADATA_KEYS}")
    return dict(meta)


def new_notebook(meta: Mapping[str, Any]) -> nbformat.NotebookNode:
    """An empty nbformat-4 notebook for the course, with ``metadata.kdteach = meta``.

    ``meta`` must hold non-empty strings ``id`` (the SYLLABUS id, also the file stem), ``paper``,
    ``venue`` and ``part`` (the folder under ``notebooks/``, e.g. ``"01_response"``); extra keys are
    kept. The kernel is ``python3``.
    """
    meta = _validate_meta(meta)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["kdteach"] = meta
    return nb


def _clean_source(text: Any, name: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    text = textwrap.dedent(text).strip("\n")
    if not text.strip():
        raise ValueError(f"{name} is empty")
    return text


def add_prose(nb: nbformat.NotebookNode, en: str, zh: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """Append a prose pair to ``nb``: a markdown cell tagged ``en`` then one tagged ``zh``.

    The texts are dedented and stripped of leading/trailing blank lines, so triple-quoted strings
    can be indented with the code that builds the notebook. ``en`` must contain no CJK text and
    ``zh`` must contain Chinese (ValueError otherwise). Returns the two new cells.
    """
    en = _clean_source(en, "en")
    zh = _clean_source(zh, "zh")
    if _CJK.search(en):
        raise ValueError(f"en text contains CJK characters ({_CJK.search(en).group()!r}): {en[:60]!r}")
    if not _HAN.search(zh):
        raise ValueError(f"zh text contains no Chinese characters: {zh[:60]!r}")
    cell_en = nbformat.v4.new_markdown_cell(en, metadata={"tags": ["en"]})
    cell_zh = nbformat.v4.new_markdown_cell(zh, metadata={"tags": ["zh"]})
    nb.cells.extend([cell_en, cell_zh])
    return cell_en, cell_zh


def add_code(nb: nbformat.NotebookNode, src: str, check_output: bool = False) -> nbformat.NotebookNode:
    """Append a code cell with source ``src`` (dedented) to ``nb`` and return it.

    ``check_output=True`` puts ``# NBVAL_CHECK_OUTPUT`` on the first line, so nbval compares the
    cell's output on every test run (only for deterministic, budget-independent output).
    """
    src = _clean_source(src, "src")
    if check_output and not _is_checked_source(src):
        src = CHECK_OUTPUT_MARKER + "\n" + src
    cell = nbformat.v4.new_code_cell(src)
    nb.cells.append(cell)
    return cell


def write_notebook(nb: nbformat.NotebookNode, path: str | os.PathLike) -> Path:
    """Write ``nb`` to ``path`` (atomically, widget state stripped, nbformat-validated); returns the path."""
    path = Path(path)
    nb = strip_widget_state(nb)
    nbformat.validate(nb)
    atomic_write_text(path, nbformat.writes(nb) + "\n")
    return path


def strip_widget_state(nb: nbformat.NotebookNode | dict) -> nbformat.NotebookNode | dict:
    """Remove stored ipywidgets state from ``nb`` in place and return it.

    Drops ``metadata.widgets`` and every ``application/vnd.jupyter.widget-state+json`` bundle in
    code-cell outputs (an output left with no data is dropped). Widget *views* stay: they carry a
    text/plain fallback and no state.
    """
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if isinstance(data, dict) and WIDGET_STATE_MIME in data:
                data.pop(WIDGET_STATE_MIME)
                if not data:
                    continue
            kept.append(out)
        cell["outputs"] = kept
    return nb


# --------------------------------------------------------------------------------------------
# checking notebooks
# --------------------------------------------------------------------------------------------

def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def _first_line(source: Any) -> str:
    for line in _text(source).splitlines():
        if line.strip():
            return line.rstrip()
    return ""


def _tags(cell: Mapping) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def _lang(cell: Mapping) -> str | None:
    """'en' / 'zh' for a markdown cell tagged with exactly one of them, else None."""
    if cell.get("cell_type") != "markdown":
        return None
    langs = {"en", "zh"} & set(_tags(cell))
    return langs.pop() if len(langs) == 1 else None


def _is_checked_source(source: Any) -> bool:
    # the same rule as nbval's comment markers: a comment line reading NBVAL_CHECK_OUTPUT
    for line in _text(source).splitlines():
        line = line.strip()
        if line.startswith("#") and line.lstrip("#").strip() == "NBVAL_CHECK_OUTPUT":
            return True
    return False


def _is_checked(cell: Mapping) -> bool:
    return _is_checked_source(cell.get("source", "")) or "nbval-check-output" in _tags(cell)


def _load(nb_or_path: Any) -> tuple[dict | None, Path | None, int | None, list[str]]:
    """(notebook dict, path or None, size in bytes, problems found while loading)."""
    if isinstance(nb_or_path, (str, os.PathLike)):
        path = Path(nb_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"nb_or_path: no notebook file at {path}")
        raw = path.read_bytes()
        try:
            nb = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return None, path, len(raw), [f"not readable JSON ({e})"]
        if not isinstance(nb, dict):
            return None, path, len(raw), ["not a notebook (top-level JSON is not an object)"]
        return nb, path, len(raw), []
    if isinstance(nb_or_path, Mapping):
        nb = json.loads(json.dumps(nb_or_path))  # plain, private copy
        return nb, None, len((json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")), []
    raise TypeError(f"nb_or_path must be a notebook (dict / NotebookNode) or a path, got {type(nb_or_path).__name__}")


def check_notebook(nb_or_path: Any) -> list[str]:
    """Problems of a committed course notebook; ``[]`` when it is clean.

    ``nb_or_path``: a notebook (dict or ``nbformat.NotebookNode``) or the path of an ``.ipynb``.
    Checked (messages name the 0-based cell index):

    - valid nbformat 4 JSON; file (or serialised notebook) at most 2 MB;
    - ``metadata.kdteach`` with non-empty ``id``, ``paper``, ``venue``, ``part``; for a path, ``id``
      equals the file stem and ``part`` the folder name;
    - every markdown cell tagged exactly one of ``en`` / ``zh``; an en cell immediately followed by a
      zh cell and a zh cell immediately preceded by an en cell; zh cells contain Chinese, en cells
      contain no CJK text;
    - the template: the title pair opens the notebook, then every section heading of
      :data:`TEMPLATE_SECTIONS` exactly once, in order, in the first line of an en cell whose zh
      partner opens with the Chinese heading;
    - code cells: no error outputs, no empty cells, every cell executed (``execution_count`` set)
      and the counts increasing from top to bottom (one clean run);
    - no stored widget state (``metadata.widgets`` or widget-state output bundles);
    - cells marked ``# NBVAL_CHECK_OUTPUT``: have output, and only stable text (no stderr, no
      ``<... at 0x...>`` / matplotlib reprs, no images or widgets).
    """
    nb, path, size, problems = _load(nb_or_path)
    if size is not None and size > MAX_NOTEBOOK_BYTES:
        problems.append(f"notebook is {size / 1e6:.1f} MB (limit {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB): "
                        "store fewer/smaller figures")
    if nb is None:
        return problems

    if nb.get("nbformat") != 4:
        problems.append(f"nbformat is {nb.get('nbformat')!r}, expected 4")
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nbformat.validate(copy.deepcopy(nb), version=4)
        except nbformat.ValidationError as e:
            problems.append(f"not a valid nbformat 4 notebook: {str(e).splitlines()[0]}")

    metadata = nb.get("metadata", {}) if isinstance(nb.get("metadata"), dict) else {}
    problems += _check_metadata(metadata, path)
    if "widgets" in metadata:
        problems.append("stored widget state in metadata.widgets (strip it: nbtools.strip_widget_state)")

    cells = nb.get("cells", [])
    if not isinstance(cells, list):
        return problems + ["cells is not a list"]
    problems += _check_pairs(cells)
    problems += _check_sections(cells)
    problems += _check_code(cells)
    problems += check_conventions(cells, path)
    return problems


# --------------------------------------------------------------------------------------------
# the conventions of docs/NOTEBOOKS.md §8 that a tool can check
# --------------------------------------------------------------------------------------------

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", re.S)
_CODE_SPAN = re.compile(r"`[^`]*`")
_WORD = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")
_ZH_BOLD_DOT = re.compile(r"\*\*[^*\n]*[\u4e00-\u9fff][^*\n]*?(?:\.\*\*|\*\*\.(?!\d))")
_TEXT_CMD = re.compile(r"\\(?:text|textrm|textit|mbox)\{([^{}]*)\}")
_ENGLISH_WORD = re.compile(r"[a-z]{3,}")
_ANY_HEADING = re.compile(r"^#{1,4} ")
_HOOK_MATH = re.compile(r"\$[^$]*\$")
_HOOK_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_OUTSIDE_PATHS = re.compile(r"(?<![\w.])(?:\.\./shared\b|shared/(?:seeds|data|DESIGN|SYLLABUS)|seeds/|"
                            r"SYLLABUS\.md|DESIGN\.md)")
_NB_LINK = re.compile(r"\]\(([^)\s]+\.ipynb)(?:#[^)]*)?\)")


def _section_of_cells(cells: list) -> list[int]:
    """For each cell, the number of the template section it is in (0 = title, -1 = before it)."""
    heads = {en: k for k, (en, _zh) in enumerate(TEMPLATE_SECTIONS) if k}
    out, current = [], 0
    for cell in cells:
        line = _first_line(cell.get("source", "")) if _lang(cell) == "en" else None
        if line in heads:
            current = heads[line]
        out.append(current)
    return out


def core_word_count(cells: list, markup: bool = False) -> int:
    """English words in the notebook's core: en markdown cells outside "Deeper" subsections, with
    LaTeX math and code spans removed. A Deeper subsection opens with a cell whose first line starts
    with ``### Deeper: `` and runs to the next ``##`` or ``###`` heading cell.

    ``markup=True`` counts the way the course's review hook does: only inline ``$...$`` spans are
    removed (display math and code spans count as words), any heading cell (``#`` to ``####``) ends
    a Deeper subsection, and one whose first line contains "Deeper" opens one."""
    words, deeper = 0, False
    for cell in cells:
        if _lang(cell) != "en":
            continue
        line = _first_line(cell.get("source", ""))
        text = _text(cell.get("source", ""))
        if markup:
            if _ANY_HEADING.match(line):
                deeper = "Deeper" in line
            if not deeper:
                words += len(_HOOK_WORD.findall(_HOOK_MATH.sub(" ", text)))
            continue
        if line.startswith("## ") or line.startswith("### "):
            deeper = line.startswith(DEEPER_PREFIX[0])
        if deeper:
            continue
        text = _CODE_SPAN.sub(" ", _MATH.sub(" ", text))
        words += len(_WORD.findall(text))
    return words


def check_conventions(cells: list, path: Path | None = None) -> list[str]:
    """The mechanical conventions of docs/NOTEBOOKS.md §8 (messages name the 0-based cell index):

    - the core (:func:`core_word_count`) has at most :data:`MAX_CORE_WORDS` English words, and at most
      :data:`MAX_CORE_WORDS_WITH_MARKUP` counted with display math and code spans (``markup=True``);
    - a Deeper subsection's zh cell opens with ``### 深入：``;
    - zh cells: no ASCII "." ending a bold label (``**论文.**`` / ``**论文**.``: use "。" or "：")
      and no English words inside ``\\text{...}`` in formulas (write them in Chinese or as symbols);
    - no cell refers to files a learner does not have (``seeds/``, ``../shared``, SYLLABUS.md, DESIGN.md);
    - links to notebooks resolve to a notebook in the repository (write a future notebook as plain
      text, "(future notebook: dkd)", not as a link);
    - section 5 makes the result card and checks the mechanism (``.card(`` and ``.check()``);
    - section 7 has a method-specific widget and ends with the shared footer
      (``results_dashboard(``); ``ComparisonDashboard(`` is not called directly;
    - every numbered exercise of section 8 states its ci run time (:data:`EXERCISE_TIME`).
    """
    problems = []
    words = core_word_count(cells)
    if words > MAX_CORE_WORDS:
        problems.append(f"the core has {words} English words (limit {MAX_CORE_WORDS}, target about 1,500): "
                        f"move side derivations and asides into '{DEEPER_PREFIX[0]}...' subsections")
    raw = core_word_count(cells, markup=True)
    if raw > MAX_CORE_WORDS_WITH_MARKUP:
        problems.append(f"the core has {raw} words counting display math and code spans (limit "
                        f"{MAX_CORE_WORDS_WITH_MARKUP}, the course's review hook): move display formulas, code "
                        f"examples or asides into '{DEEPER_PREFIX[0]}...' subsections, or shorten the prose")
    section = _section_of_cells(cells)
    code = {k: [(i, _text(c.get("source", ""))) for i, c in enumerate(cells)
                if c.get("cell_type") == "code" and section[i] == k] for k in range(len(TEMPLATE_SECTIONS))}
    for i, cell in enumerate(cells):
        text = _text(cell.get("source", ""))
        hit = _OUTSIDE_PATHS.search(text)
        if hit:
            problems.append(f"cell {i}: refers to {hit.group()!r}, which is outside the repository (a learner "
                            "does not have it): cite the paper or a docs/ page instead")
        lang = _lang(cell)
        if lang is None:
            continue
        first = _first_line(cell.get("source", ""))
        if lang == "en" and first.startswith(DEEPER_PREFIX[0]) and i + 1 < len(cells) \
                and not _first_line(cells[i + 1].get("source", "")).startswith(DEEPER_PREFIX[1]):
            problems.append(f"cell {i + 1}: the zh cell of a Deeper subsection must open with '{DEEPER_PREFIX[1]}'")
        for link in _NB_LINK.findall(text):
            if path is not None and "://" not in link and not (path.parent / link).is_file():
                problems.append(f"cell {i}: link to {link!r}, which is not a notebook of the repository "
                                "(mark a future notebook as plain text)")
        if lang == "zh":
            hit = _ZH_BOLD_DOT.search(text)
            if hit:
                problems.append(f"cell {i}: zh bold label ends with an ASCII '.' ({hit.group()!r}): use '。' or '：'")
            for formula in _MATH.findall(text):
                for arg in _TEXT_CMD.findall(formula):
                    if _ENGLISH_WORD.search(arg):
                        problems.append(f"cell {i}: English \\text{{{arg}}} in a zh formula: write it in Chinese")
    sec5, sec7, sec8 = (TEMPLATE_SECTIONS.index(TEMPLATE_SECTIONS[k]) for k in (5, 7, 8))
    src5 = "\n".join(t for _i, t in code[sec5])
    if ".card(" not in src5 or ".check()" not in src5:
        problems.append("section 5 must report through the result card and assert its mechanism: "
                        "exp.card(Mechanism(...)).check()")
    cells7 = code[sec7]
    if not cells7 or FOOTER_CALL not in cells7[-1][1]:
        problems.append(f"section 7 must end with the shared footer, a code cell calling {FOOTER_CALL}...)")
    if len([t for _i, t in cells7 if FOOTER_CALL not in t]) < 1:
        problems.append("section 7 needs a method-specific widget (a code cell besides the footer)")
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and "ComparisonDashboard(" in _text(cell.get("source", "")):
            problems.append(f"cell {i}: call {FOOTER_CALL}budget) instead of ComparisonDashboard(...) "
                            "(one filter rule in every notebook)")
    for i, cell in enumerate(cells):
        if _lang(cell) != "en" or section[i] != sec8:
            continue
        text = _text(cell.get("source", ""))
        if "**Exercises" not in text:
            continue
        items = re.findall(r"^\s*\d+\.\s+(.*(?:\n(?!\s*\d+\.\s).*)*)", text.split("**Exercises", 1)[1], re.M)
        for k, item in enumerate(items, 1):
            if not EXERCISE_TIME.search(item):
                problems.append(f"cell {i}: exercise {k} does not state its ci run time, e.g. '(ci: about 40 s)' "
                                "or '(ci: no run)'")
    return problems


def _check_metadata(metadata: dict, path: Path | None) -> list[str]:
    meta = metadata.get("kdteach")
    if not isinstance(meta, dict):
        return [f"metadata.kdteach missing: expected {{{', '.join(repr(k) + ': ...' for k in METADATA_KEYS)}}}"]
    problems = []
    for key in METADATA_KEYS:
        value = meta.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"metadata.kdteach[{key!r}] missing or empty")
    if path is not None:
        if isinstance(meta.get("id"), str) and meta["id"] != path.stem:
            problems.append(f"metadata.kdteach['id'] is {meta['id']!r} but the file is {path.name!r}")
        if isinstance(meta.get("part"), str) and meta["part"] != path.parent.name:
            problems.append(f"metadata.kdteach['part'] is {meta['part']!r} but the folder is {path.parent.name!r}")
    return problems


def _check_pairs(cells: list) -> list[str]:
    problems = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        langs = {"en", "zh"} & set(_tags(cell))
        if len(langs) != 1:
            problems.append(f"cell {i}: markdown cell tagged {sorted(langs) or 'neither en nor zh'}; "
                            "expected exactly one of en / zh")
            continue
        text = _text(cell.get("source", ""))
        if "en" in langs:
            hit = _CJK.search(text)
            if hit:
                problems.append(f"cell {i}: en cell contains CJK text ({hit.group()!r})")
            if i + 1 >= len(cells) or _lang(cells[i + 1]) != "zh":
                problems.append(f"cell {i}: en cell not immediately followed by its zh cell")
        else:
            if not _HAN.search(text):
                problems.append(f"cell {i}: zh cell has no Chinese text")
            if i == 0 or _lang(cells[i - 1]) != "en":
                problems.append(f"cell {i}: zh cell not immediately preceded by its en cell")
    return problems


def _check_sections(cells: list) -> list[str]:
    problems = []
    title_en, title_zh = TEMPLATE_SECTIONS[0]

    def is_title(cell, lang):
        line = _first_line(cell.get("source", ""))
        return _lang(cell) == lang and line.startswith(TITLE_PREFIX) and len(line) > len(TITLE_PREFIX)

    if not (len(cells) >= 2 and is_title(cells[0], "en") and is_title(cells[1], "zh")):
        problems.append(f"title missing: the notebook must open with an en cell '{title_en}' "
                        f"followed by its zh cell '{title_zh}'")

    en_first = {i: _first_line(c.get("source", "")) for i, c in enumerate(cells) if _lang(c) == "en"}
    found: list[tuple[int, str]] = []  # (cell index, en heading) in template order
    for en_head, zh_head in TEMPLATE_SECTIONS[1:]:
        where = [i for i, line in en_first.items() if line == en_head]
        if not where:
            problems.append(f"missing section: no en cell opens with '{en_head}'")
            continue
        if len(where) > 1:
            problems.append(f"section '{en_head}' opens {len(where)} en cells ({where}); expected one")
        i = where[0]
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or _lang(nxt) != "zh" or _first_line(nxt.get("source", "")) != zh_head:
            problems.append(f"cell {i + 1}: the zh cell after '{en_head}' must open with '{zh_head}'")
        if found and i < found[-1][0]:
            problems.append(f"section out of order: '{en_head}' (cell {i}) comes before "
                            f"'{found[-1][1]}' (cell {found[-1][0]})")
        found.append((i, en_head))
    return problems


def _check_code(cells: list) -> list[str]:
    problems = []
    last_count, last_cell = 0, None
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs", []) or []
        count = cell.get("execution_count")
        if not _text(cell.get("source", "")).strip():
            problems.append(f"cell {i}: empty code cell (delete it)")
            continue
        for out in outputs:
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: stored error output ({out.get('ename', '?')}: "
                                f"{str(out.get('evalue', ''))[:80]})")
            data = out.get("data")
            if isinstance(data, dict) and WIDGET_STATE_MIME in data:
                problems.append(f"cell {i}: stored widget state in an output ({WIDGET_STATE_MIME})")
        if count is None:
            if outputs:
                problems.append(f"cell {i}: outputs without execution count (nbval will fail)")
            else:
                problems.append(f"cell {i}: code cell never executed (run the notebook: kdteach notebooks run)")
        elif not isinstance(count, int) or count <= last_count:
            problems.append(f"cell {i}: execution count {count!r} after {last_count} (cell {last_cell}); "
                            "re-run the notebook top to bottom")
        else:
            last_count, last_cell = count, i
        if _is_checked(cell):
            problems += _check_checked_outputs(i, outputs)
    return problems


def _check_checked_outputs(i: int, outputs: list) -> list[str]:
    problems = []
    if not outputs:
        problems.append(f"cell {i}: NBVAL_CHECK_OUTPUT cell has no stored output to compare")
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") == "stderr":
                problems.append(f"cell {i}: NBVAL_CHECK_OUTPUT cell has stderr output (warnings, progress bars)")
            texts = [_text(out.get("text", ""))]
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {}) or {}
            other = sorted(set(data) - _TEXT_MIMES)
            if other:
                problems.append(f"cell {i}: NBVAL_CHECK_OUTPUT cell has non-text output {other} "
                                "(figures and widgets belong in unchecked cells)")
            texts = [_text(v) for k, v in data.items() if k in _TEXT_MIMES]
        else:
            continue
        for text in texts:
            hit = _OBJECT_REPR.search(text)
            if hit:
                problems.append(f"cell {i}: NBVAL_CHECK_OUTPUT cell shows an object repr {hit.group()!r}")
                break
    return problems


# --------------------------------------------------------------------------------------------
# finding, exporting and running notebooks
# --------------------------------------------------------------------------------------------

def find_notebooks(root: str | os.PathLike) -> list[Path]:
    """Every ``.ipynb`` under ``root`` (recursive, sorted), skipping ``.ipynb_checkpoints``.

    ``root`` may also be a single notebook file.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"root: {root} is neither a notebook nor a folder")
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def export_notebook(src: str | os.PathLike, dst_dir: str | os.PathLike, lang: str,
                    root: str | os.PathLike | None = None) -> Path:
    """Write a monolingual copy of notebook ``src`` into ``dst_dir`` and return its path.

    Keeps the markdown cells tagged ``lang`` (``"en"`` or ``"zh"``) and every code cell with its
    outputs; drops the other language's cells. The copy has the same file name, or the same path
    relative to ``root`` when ``root`` is given; ``metadata.kdteach.lang`` records the language.
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}")
    src = Path(src)
    rel = src.relative_to(root) if root is not None else Path(src.name)
    nb = nbformat.read(src, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type != "markdown" or lang in _tags(c)]
    nb.metadata.setdefault("kdteach", {})["lang"] = lang
    dst = Path(dst_dir) / rel
    return write_notebook(nb, dst)


def export_all(notebooks_dir: str | os.PathLike, dst_dir: str | os.PathLike, lang: str) -> list[Path]:
    """Monolingual copies of every notebook under ``notebooks_dir`` into ``dst_dir``, same relative paths.

    ``dst_dir`` must lie outside ``notebooks_dir`` (the copies are not course notebooks).
    """
    notebooks_dir, dst_dir = Path(notebooks_dir), Path(dst_dir)
    if dst_dir.resolve().is_relative_to(notebooks_dir.resolve()):
        raise ValueError(f"dst_dir {dst_dir} is inside notebooks_dir {notebooks_dir}; export elsewhere")
    return [export_notebook(p, dst_dir, lang, root=notebooks_dir) for p in find_notebooks(notebooks_dir)]


def _current_env_kernel_manager_class():
    """An AsyncKernelManager whose ``python3`` kernel is ipykernel in *this* interpreter."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class CurrentEnvKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == "python3":
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                              **ipykernel.kernelspec.get_kernel_dict())
            return super().get_kernel_spec(kernel_name)

    class CurrentEnvKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return CurrentEnvKernelSpecManager(data_dir=self.data_dir)

    return CurrentEnvKernelManager


def run_notebook(path: str | os.PathLike, timeout: int = 600) -> float:
    """Re-execute the notebook at ``path`` in place; return the wall time in seconds.

    Runs with nbclient on a ``python3`` kernel of the current interpreter (so the current
    environment's kdteach), in the notebook's folder. The kernel inherits ``os.environ``
    (``KDTEACH_BUDGET=ci`` etc. pass through), except that matplotlib figures are always rendered
    inline. ``timeout`` is nbclient's limit per cell, in seconds. Execution counts are kept, widget
    state is not stored. A failing cell raises ``nbclient.exceptions.CellExecutionError`` and the
    file is left untouched.
    """
    from nbclient import NotebookClient

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=_current_env_kernel_manager_class(),
        resources={"metadata": {"path": str(path.resolve().parent)}},
        store_widget_state=False,
        record_timing=False,
    )
    env = dict(os.environ)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    write_notebook(nb, path)
    return seconds


def notebook_key(path: str | os.PathLike) -> str:
    """The key of a notebook in run_times.json and the README table: ``"<part>/<id>.ipynb"``."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def _budget() -> str | None:
    try:
        from kdteach.config import budget_name
        return budget_name()
    except Exception:  # noqa: BLE001 - a broken budget setting must not stop notebook runs
        return None


def run_notebooks(paths: Iterable[str | os.PathLike] | str | os.PathLike, timeout: int = 600,
                  times_path: str | os.PathLike | None = None, record: bool | None = None) -> dict[str, float]:
    """Run several notebooks (paths or folders, see :func:`run_notebook`); return ``{key: seconds}``.

    Keys are ``"<part>/<id>.ipynb"``. The times are merged into ``times_path`` (default:
    ``run_times.json`` in the notebooks folder, the parent of the part folders) when ``record`` is
    true; by default they are recorded only under the ``ci`` budget (the README's column is the ci
    run time). Stops at the first failing notebook (after recording the ones that passed).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    notebooks = [nb for p in paths for nb in find_notebooks(p)]
    if not notebooks:
        raise ValueError(f"paths: no notebooks found in {list(map(str, paths))}")
    if record is None:
        record = _budget() == "ci"
    if times_path is None:
        times_path = notebooks[0].resolve().parent.parent / RUN_TIMES_FILE
    times: dict[str, float] = {}
    try:
        for nb_path in notebooks:
            times[notebook_key(nb_path)] = round(run_notebook(nb_path, timeout=timeout), 1)
    finally:
        if record and times:
            times_path = Path(times_path)
            old = json.loads(times_path.read_text(encoding="utf-8")) if times_path.is_file() else {}
            old.update(times)
            atomic_write_text(times_path, json.dumps(dict(sorted(old.items())), indent=1) + "\n")
    return times


# --------------------------------------------------------------------------------------------
# the README table
# --------------------------------------------------------------------------------------------

_TABLE_HEADER = ("part", "id", "paper", "venue", "ci run time (s)")


def _cell_text(value: Any) -> str:
    return str(value).replace("\n", " ").replace("|", "\\|").strip()


def _readme_parts(readme_path: Path) -> tuple[str, str, str]:
    if not readme_path.is_file():
        raise FileNotFoundError(f"readme_path: {readme_path} does not exist")
    text = readme_path.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"readme_path: {readme_path} needs the markers {README_START} and {README_END} "
                         "(in that order) around the notebook table")
    return text[: start + len(README_START)], text[start + len(README_START): end], text[end:]


def readme_table(readme_path: str | os.PathLike, notebooks_dir: str | os.PathLike) -> tuple[str, list[dict]]:
    """The notebook table README.md should hold (markdown text) and its rows; writes nothing.

    Columns: part | id (linked to the notebook, relative to the README) | paper | venue |
    ci run time (s). Paper, venue and part come from each notebook's ``metadata.kdteach``; run
    times from ``<notebooks_dir>/run_times.json`` (``-`` when a notebook has none). Rows are
    sorted by path. Row keys: part, id, paper, venue, seconds, link.
    """
    readme_path, notebooks_dir = Path(readme_path), Path(notebooks_dir)
    times_file = notebooks_dir / RUN_TIMES_FILE
    times = json.loads(times_file.read_text(encoding="utf-8")) if times_file.is_file() else {}
    rows = []
    for nb_path in find_notebooks(notebooks_dir):
        meta = json.loads(nb_path.read_text(encoding="utf-8")).get("metadata", {}).get("kdteach")
        if not isinstance(meta, dict) or not all(meta.get(k) for k in METADATA_KEYS):
            raise ValueError(f"{nb_path}: metadata.kdteach needs {METADATA_KEYS}, got {meta!r}")
        rows.append({
            "part": meta["part"], "id": meta["id"], "paper": meta["paper"], "venue": meta["venue"],
            "seconds": times.get(notebook_key(nb_path)),
            "link": Path(os.path.relpath(nb_path.resolve(), readme_path.resolve().parent)).as_posix(),
        })
    lines = ["| " + " | ".join(_TABLE_HEADER) + " |", "|" + "---|" * len(_TABLE_HEADER)]
    for r in rows:
        secs = "-" if r["seconds"] is None else f"{float(r['seconds']):.0f}"
        lines.append("| " + " | ".join([_cell_text(r["part"]), f"[{_cell_text(r['id'])}]({r['link']})",
                                        _cell_text(r["paper"]), _cell_text(r["venue"]), secs]) + " |")
    return "\n" + "\n".join(lines) + "\n", rows


def update_readme_table(readme_path: str | os.PathLike, notebooks_dir: str | os.PathLike) -> list[dict]:
    """Rewrite the notebook table of README.md between ``<!-- notebooks:start -->`` and
    ``<!-- notebooks:end -->`` (see :func:`readme_table`); return its rows.

    The file is rewritten only when the table changed; ValueError when the markers are missing.
    """
    head, old_table, tail = _readme_parts(Path(readme_path))
    table, rows = readme_table(readme_path, notebooks_dir)
    if table != old_table:
        atomic_write_text(Path(readme_path), head + table + tail)
    return rows


def readme_table_text(readme_path: str | os.PathLike) -> str:
    """The text README.md holds between the notebook markers now (ValueError without markers)."""
    return _readme_parts(Path(readme_path))[1]


def read_readme_table(readme_path: str | os.PathLike) -> list[dict]:
    """The rows of README's notebook table as dicts (keys: part, id, paper, venue, seconds, link)."""
    _, table, _ = _readme_parts(Path(readme_path))
    rows = []
    for line in table.strip().splitlines()[2:]:
        cols = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cols) != len(_TABLE_HEADER):
            raise ValueError(f"readme_path: malformed table row {line!r}")
        m = re.fullmatch(r"\[(.*)\]\((.*)\)", cols[1])
        rows.append({"part": cols[0], "id": m.group(1) if m else cols[1], "link": m.group(2) if m else None,
                     "paper": cols[2], "venue": cols[3],
                     "seconds": None if cols[4] == "-" else float(cols[4])})
    return rows


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m kdteach.nbtools`` / ``kdteach notebooks``: check, run, export, readme."""
    parser = argparse.ArgumentParser(prog="kdteach notebooks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="list the problems of notebooks (exit 1 if any)")
    p.add_argument("paths", nargs="*", default=["notebooks"])
    p = sub.add_parser("run", help="re-execute notebooks in place, record ci run times, refresh README")
    p.add_argument("paths", nargs="*", default=["notebooks"])
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument("--readme", default="README.md")
    p = sub.add_parser("export", help="monolingual copies")
    p.add_argument("dst_dir")
    p.add_argument("--lang", choices=("en", "zh"), required=True)
    p.add_argument("--notebooks", default="notebooks")
    p = sub.add_parser("readme", help="rewrite README's notebook table")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--notebooks", default="notebooks")
    args = parser.parse_args(argv)

    if args.command == "check":
        bad = 0
        for path in [nb for p in args.paths for nb in find_notebooks(p)]:
            for problem in check_notebook(path):
                print(f"{path}: {problem}")
                bad += 1
        return 1 if bad else 0
    if args.command == "run":
        times = run_notebooks(args.paths, timeout=args.timeout)
        for key, seconds in times.items():
            print(f"{key}: {seconds:.1f} s")
        readme = Path(args.readme)
        if readme.is_file() and README_START in readme.read_text(encoding="utf-8"):
            folders = {Path(p).resolve().parent.parent for a in args.paths for p in find_notebooks(a)}
            if len(folders) == 1:
                update_readme_table(readme, folders.pop())
        return 0
    if args.command == "export":
        for path in export_all(args.notebooks, args.dst_dir, args.lang):
            print(path)
        return 0
    update_readme_table(args.readme, args.notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
