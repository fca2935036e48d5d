"""kdteach.nbtools: the notebook checker catches every problem type; export, run, README table."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest

from kdteach import nbtools
from kdteach.nbtools import TEMPLATE_SECTIONS, check_notebook

META = {"id": "kd", "paper": "Distilling the Knowledge in a Neural Network", "venue": "NIPS-W 2014",
        "part": "01_response"}


def _executed(nb):
    """Give every code cell an execution count and a plain stdout output, as after a clean run."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{count}\n")]
    return nb


def make_good(meta=META):
    """A notebook that follows the whole template, built with the authoring helpers."""
    nb = nbtools.new_notebook(meta)
    nbtools.add_prose(nb, "# Distilling the Knowledge in a Neural Network\n\nHinton et al.", "# 神经网络中的知识蒸馏\n\nHinton 等人。")
    for en, zh in TEMPLATE_SECTIONS[1:]:
        nbtools.add_prose(nb, f"{en}\n\nSome text.", f"{zh}\n\n一些文字。")
        if en.startswith("## 5."):      # the result card with its asserted mechanism (conventions §8.2)
            nbtools.add_code(nb, "card = exp.card(mechanism).check()\nprint(card)")
        elif en.startswith("## 7."):    # a method-specific widget, then the shared footer (§8.6)
            nbtools.add_code(nb, "explorer = Explorer(x)\nexplorer")
            nbtools.add_code(nb, "results_dashboard(exp.budget)")
        else:
            nbtools.add_code(nb, "print(1)", check_output=True)
    return _executed(nb)


@pytest.fixture
def good():
    return make_good()


def test_template_sections_are_the_course_headings():
    assert len(TEMPLATE_SECTIONS) == 9
    assert TEMPLATE_SECTIONS[1] == ("## 1. The question", "## 1. 问题")
    assert TEMPLATE_SECTIONS[-1] == ("## 8. Summary, exercises, references", "## 8. 小结、练习与参考文献")
    assert [en.split(".")[0] for en, _ in TEMPLATE_SECTIONS[1:]] == [f"## {k}" for k in range(1, 9)]


def test_good_notebook_has_no_problems(good, tmp_path):
    assert check_notebook(good) == []
    path = nbtools.write_notebook(good, tmp_path / "01_response" / "kd.ipynb")
    assert check_notebook(path) == []
    assert check_notebook(str(path)) == []


def test_helpers_tag_cells_and_mark_checked_output(good):
    md = [c for c in good.cells if c.cell_type == "markdown"]
    assert [c.metadata["tags"] for c in md[:2]] == [["en"], ["zh"]]
    code = [c for c in good.cells if c.cell_type == "code"]
    assert code[0].source.splitlines()[0] == "# NBVAL_CHECK_OUTPUT"
    assert good.metadata["kdteach"] == META
    cell = nbtools.add_code(good, """
        x = 1
        print(x)
    """)
    assert cell.source == "x = 1\nprint(x)"


@pytest.mark.parametrize("en, zh, match", [
    ("Temperature 温度", "温度", "en text contains CJK"),
    ("Temperature，T", "温度", "en text contains CJK"),  # fullwidth comma
    ("Temperature", "Temperature", "zh text contains no Chinese"),
    ("", "温度", "en is empty"),
])
def test_add_prose_rejects_wrong_language(en, zh, match):
    with pytest.raises(ValueError, match=match):
        nbtools.add_prose(nbtools.new_notebook(META), en, zh)


def test_new_notebook_requires_metadata():
    with pytest.raises(ValueError, match="venue"):
        nbtools.new_notebook({"id": "kd", "paper": "x", "part": "01_response"})
    with pytest.raises(TypeError, match="meta"):
        nbtools.new_notebook(["kd"])


# ---- each problem type, on a synthetic bad notebook --------------------------------------------------

def _first(nb, kind, lang=None):
    for i, c in enumerate(nb.cells):
        if c.cell_type == kind and (lang is None or lang in c.metadata.get("tags", [])):
            return i
    raise AssertionError("no such cell")


def _section_index(nb, heading):
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(heading + "\n"))


def _swap_sections(nb):
    i = _section_index(nb, "## 3. From scratch")
    j = _section_index(nb, "## 4. Seeing the knowledge")
    nb.cells[i:i + 2], nb.cells[j:j + 2] = nb.cells[j:j + 2], nb.cells[i:i + 2]


def _drop_section(nb):
    i = _section_index(nb, "## 5. Experiment")
    del nb.cells[i:i + 2]


def _wrong_zh_heading(nb):
    i = _section_index(nb, "## 2. The knowledge and the loss")
    nb.cells[i + 1].source = "## 2. 损失\n\n一些文字。"


def _big_output(nb):
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 2_100_000)]
    nb.cells[4].source = "print('x' * 2_100_000)"


MUTATIONS = {
    "en cell with Chinese": (lambda nb: setattr(nb.cells[2], "source", "## 1. The question\n\n温度"),
                             "cell 2: en cell contains CJK"),
    "zh cell without Chinese": (lambda nb: setattr(nb.cells[3], "source", "## 1. The question"),
                                "cell 3: zh cell has no Chinese"),
    "markdown cell without tag": (lambda nb: nb.cells[2].metadata.update(tags=[]),
                                  "cell 2: markdown cell tagged neither en nor zh"),
    "markdown cell tagged both": (lambda nb: nb.cells[2].metadata.update(tags=["en", "zh"]),
                                  "cell 2: markdown cell tagged ['en', 'zh']"),
    "en not followed by zh": (lambda nb: nb.cells.insert(3, nbformat.v4.new_code_cell("1", execution_count=1)),
                              "cell 2: en cell not immediately followed by its zh cell"),
    "zh without preceding en": (lambda nb: nb.cells.insert(4, copy.deepcopy(nb.cells[3])),
                                "cell 4: zh cell not immediately preceded by its en cell"),
    "pair in wrong order": (lambda nb: nb.cells.__setitem__(slice(2, 4), [nb.cells[3], nb.cells[2]]),
                            "cell 2: zh cell not immediately preceded by its en cell"),
    "missing title": (lambda nb: nb.cells[0].update(source="Distilling the knowledge"),
                      "title missing"),
    "missing section": (_drop_section, "missing section: no en cell opens with '## 5. Experiment'"),
    "sections out of order": (_swap_sections, "section out of order: '## 4. Seeing the knowledge'"),
    "zh heading wrong": (_wrong_zh_heading, "must open with '## 2. 知识与损失'"),
    "section twice": (lambda nb: nb.cells.extend(copy.deepcopy(nb.cells[2:4])),
                      "section '## 1. The question' opens 2 en cells"),
    "error output": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "error", ename="ValueError", evalue="bad", traceback=[])), "cell 4: stored error output (ValueError: bad)"),
    "outputs without execution count": (lambda nb: setattr(nb.cells[4], "execution_count", None),
                                        "cell 4: outputs without execution count"),
    "never executed": (lambda nb: nb.cells[4].update(execution_count=None, outputs=[]),
                       "cell 4: code cell never executed"),
    "run out of order": (lambda nb: setattr(nb.cells[4], "execution_count", 99),
                         "cell 7: execution count 2 after 99"),
    "empty code cell": (lambda nb: nb.cells[4].update(source="  \n"), "cell 4: empty code cell"),
    "widget state in metadata": (lambda nb: nb.metadata.update(widgets={"state": {}}),
                                 "stored widget state in metadata.widgets"),
    "widget state bundle": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "display_data", data={nbtools.WIDGET_STATE_MIME: {"state": {}}, "text/plain": "w"})),
        "cell 4: stored widget state in an output"),
    "object repr in checked cell": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "execute_result", data={"text/plain": "<torch.utils.data.DataLoader object at 0x7f3a2b>"}, execution_count=1)),
        "cell 4: NBVAL_CHECK_OUTPUT cell shows an object repr"),
    "figure repr in checked cell": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "display_data", data={"text/plain": "<Figure size 640x480 with 1 Axes>"})),
        "cell 4: NBVAL_CHECK_OUTPUT cell shows an object repr '<Figure size"),
    "image in checked cell": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "a picture"})),
        "cell 4: NBVAL_CHECK_OUTPUT cell has non-text output ['image/png']"),
    "stderr in checked cell": (lambda nb: nb.cells[4].outputs.append(nbformat.v4.new_output(
        "stream", name="stderr", text="UserWarning: careful\n")), "cell 4: NBVAL_CHECK_OUTPUT cell has stderr"),
    "checked cell without output": (lambda nb: setattr(nb.cells[4], "outputs", []),
                                    "cell 4: NBVAL_CHECK_OUTPUT cell has no stored output"),
    "missing kdteach metadata": (lambda nb: nb.metadata.pop("kdteach"), "metadata.kdteach missing"),
    "empty metadata field": (lambda nb: nb.metadata["kdteach"].update(venue=""),
                             "metadata.kdteach['venue'] missing or empty"),
    "invalid nbformat": (lambda nb: nb.cells[4].update(outputs=[{"output_type": "stream"}]),
                         "not a valid nbformat 4 notebook"),
    "notebook over 2 MB": (_big_output, "MB (limit 2 MB)"),
}


def _section_cell(nb, heading, lang="en"):
    """Index of the en (or zh) cell that opens ``heading``."""
    i = _section_index(nb, heading)
    return i if lang == "en" else i + 1


def _set_section_text(nb, heading, en, zh):
    i = _section_index(nb, heading)
    nb.cells[i].source = f"{heading}\n\n{en}"
    nb.cells[i + 1].source = nb.cells[i + 1].source.splitlines()[0] + f"\n\n{zh}"


def _long_core(nb):
    _set_section_text(nb, "## 1. The question", "word " * 1900, "很长的文字。")


def _code_of_section(nb, heading):
    i = _section_index(nb, heading)
    return [k for k in range(i, len(nb.cells)) if nb.cells[k].cell_type == "code"][0]


def _no_card(nb):
    nb.cells[_code_of_section(nb, "## 5. Experiment")].source = "print(exp.table())"


def _no_footer(nb):
    k = _code_of_section(nb, "## 7. Interactive")
    del nb.cells[k + 1]


def _footer_only(nb):
    k = _code_of_section(nb, "## 7. Interactive")
    del nb.cells[k]


def _direct_dashboard(nb):
    nb.cells[_code_of_section(nb, "## 7. Interactive")].source = "ComparisonDashboard(records)"


def _exercise_without_time(nb):
    _set_section_text(nb, "## 8. Summary, exercises, references",
                      "**Exercises.**\n\n1. Train with T = 8. *(ci: about 20 s)*\n2. Plot the\n   maps again.",
                      "**练习。**\n\n1. 用 T = 8 训练。\n2. 再画一次。")


def _deeper_with_wrong_zh(nb):
    i = _section_index(nb, "## 2. The knowledge and the loss")
    nb.cells[i + 3:i + 3] = [nbformat.v4.new_markdown_cell("### Deeper: the gradient\n\nMore.",
                                                           metadata={"tags": ["en"]}),
                             nbformat.v4.new_markdown_cell("### 梯度\n\n更多。", metadata={"tags": ["zh"]})]


MUTATIONS.update({
    "core over the word limit": (_long_core, "English words (limit 1800"),
    "zh bold label with ASCII dot": (lambda nb: _set_section_text(nb, "## 1. The question", "**Paper.** X.",
                                                                   "**论文.** X。"),
                                     "zh bold label ends with an ASCII '.' ('**论文.**')"),
    "zh bold label then ASCII dot": (lambda nb: _set_section_text(nb, "## 1. The question", "**Paper**. X.",
                                                                   "**论文**. X。"),
                                     "zh bold label ends with an ASCII '.' ('**论文**.')"),
    "English text in zh formula": (lambda nb: _set_section_text(nb, "## 2. The knowledge and the loss",
                                                                 "$L = \\text{student} + 1$",
                                                                 "损失 $L = \\text{student} + 1$"),
                                   "English \\text{student} in a zh formula"),
    "path outside the repository": (lambda nb: _set_section_text(nb, "## 1. The question", "See seeds/002.",
                                                                  "见 seeds/002。"),
                                    "refers to 'seeds/', which is outside the repository"),
    "shared folder in code": (lambda nb: nb.cells[4].update(source="open('../shared/DESIGN.md')"),
                              "cell 4: refers to '../shared'"),
    "no result card": (_no_card, "section 5 must report through the result card"),
    "no shared footer": (_no_footer, "section 7 must end with the shared footer"),
    "no method widget": (_footer_only, "section 7 needs a method-specific widget"),
    "dashboard built directly": (_direct_dashboard, "instead of ComparisonDashboard(...)"),
    "exercise without run time": (_exercise_without_time, "exercise 2 does not state its ci run time"),
    "Deeper subsection with wrong zh heading": (_deeper_with_wrong_zh,
                                                "the zh cell of a Deeper subsection must open with '### 深入："),
})


def test_conventions_allow_what_they_should(good):
    ok = copy.deepcopy(good)
    # a long aside in a Deeper subsection does not count toward the core
    i = _section_index(ok, "## 2. The knowledge and the loss")
    ok.cells[i + 3:i + 3] = [
        nbformat.v4.new_markdown_cell("### Deeper: the gradient\n\n" + "word " * 1900, metadata={"tags": ["en"]}),
        nbformat.v4.new_markdown_cell("### 深入：梯度\n\n很长。", metadata={"tags": ["zh"]}),
        nbformat.v4.new_markdown_cell("### Back to the core\n\nShort.", metadata={"tags": ["en"]}),
        nbformat.v4.new_markdown_cell("### 回到正文\n\n短。", metadata={"tags": ["zh"]})]
    before = nbtools.core_word_count(good.cells)
    assert nbtools.core_word_count(ok.cells) == before + 5       # "Back to the core" + "Short"
    # math and code spans are not words; Chinese punctuation after bold labels and symbols in \text are fine
    _set_section_text(ok, "## 1. The question", "**Paper.** $\\alpha_{\\text{KD}}$ and `kd_weight` 1.5.",
                      "**论文。** $\\alpha_{\\text{KD}}$、$\\text{学生}$ 与 `kd_weight`：1.5。**注意**：无。")
    _set_section_text(ok, "## 8. Summary, exercises, references",
                      "**Exercises.**\n\n1. Train with T = 8 *(ci: about 20 s)*.\n2. Derive it by hand "
                      "*(ci: no run)*.\n3. Rerun the notebook *(ci: about 1 min)*.",
                      "**练习。**\n\n1. 用 T = 8 训练。\n2. 手推。\n3. 重跑。")
    assert check_notebook(ok) == []
    # math, code spans and numbers are not words
    cell = nbformat.v4.new_markdown_cell("**Paper.** $\\alpha_{\\text{KD}}$ and `kd_weight` 1.5 $$x^2$$ isn't",
                                         metadata={"tags": ["en"]})
    assert nbtools.core_word_count([cell]) == 3                        # Paper, and, isn't
    # counted as the course's review hook counts: display math and code spans are words, inline math is not
    assert nbtools.core_word_count([cell], markup=True) == 6          # Paper, and, kd_weight, x, isn't


def test_core_with_markup_counts_display_math_and_ends_deeper_at_any_heading(good):
    en = lambda text: nbformat.v4.new_markdown_cell(text, metadata={"tags": ["en"]})
    cells = [en("### Deeper: aside\n\nfour words not counted"), en("#### Back\n\none two"),
             en("$$\\frac{a}{b}$$ and `code span` $x$")]
    assert nbtools.core_word_count(cells) == 0                      # a #### heading stays in the Deeper subsection
    assert nbtools.core_word_count(cells, markup=True) == 3 + 6     # Back one two | frac a b and code span
    # a core under MAX_CORE_WORDS but over the markup limit is reported
    nb = copy.deepcopy(good)
    i = _section_index(nb, "## 2. The knowledge and the loss")
    nb.cells[i + 1:i + 1] = [en("$$" + " x" * (nbtools.MAX_CORE_WORDS_WITH_MARKUP + 1) + "$$"),
                             nbformat.v4.new_markdown_cell("公式。", metadata={"tags": ["zh"]})]
    assert nbtools.core_word_count(nb.cells) < nbtools.MAX_CORE_WORDS
    assert any("counting display math and code spans" in m for m in check_notebook(nb))


def test_notebook_links_must_resolve(good, tmp_path):
    nb = copy.deepcopy(good)
    _set_section_text(nb, "## 8. Summary, exercises, references",
                      "See [FitNets](../02_feature/fitnet.ipynb) and [KD](kd.ipynb).",
                      "见 [FitNets](../02_feature/fitnet.ipynb) 与 [KD](kd.ipynb)。")
    path = nbtools.write_notebook(nb, tmp_path / "01_response" / "kd.ipynb")
    problems = check_notebook(path)
    assert sum("link to '../02_feature/fitnet.ipynb'" in p for p in problems) == 2
    assert not any("'kd.ipynb'" in p for p in problems)        # the notebook itself exists


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_checker_catches(good, name):
    mutate, expected = MUTATIONS[name]
    bad = copy.deepcopy(good)
    mutate(bad)
    problems = check_notebook(bad)
    assert any(expected in p for p in problems), f"{name}: {expected!r} not in {problems}"


def test_unchecked_cells_may_show_figures_and_stderr(good):
    nb = copy.deepcopy(good)
    nb.cells[4].source = "plt.plot([1, 2])"  # no NBVAL_CHECK_OUTPUT marker
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stderr", text="progress\n"),
                           nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                                         "text/plain": "<Figure size 640x480 with 1 Axes>"})]
    assert check_notebook(nb) == []


def test_checked_output_marked_by_tag(good):
    nb = copy.deepcopy(good)
    nb.cells[4].source = "print(obj)"
    nb.cells[4].metadata["tags"] = ["nbval-check-output"]
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="<object object at 0x7f00>\n")]
    assert any("object repr" in p for p in check_notebook(nb))


def test_path_checks_id_and_part(good, tmp_path):
    path = nbtools.write_notebook(good, tmp_path / "02_feature" / "at.ipynb")
    problems = check_notebook(path)
    assert any("metadata.kdteach['id'] is 'kd' but the file is 'at.ipynb'" in p for p in problems)
    assert any("metadata.kdteach['part'] is '01_response' but the folder is '02_feature'" in p for p in problems)


def test_file_size_limit_and_unreadable_json(good, tmp_path):
    big = copy.deepcopy(good)
    _big_output(big)
    path = nbtools.write_notebook(big, tmp_path / "01_response" / "kd.ipynb")
    assert path.stat().st_size > nbtools.MAX_NOTEBOOK_BYTES
    assert [p for p in check_notebook(path) if "MB" in p] == ["notebook is 2.1 MB (limit 2 MB): store fewer/smaller figures"]
    broken = tmp_path / "01_response" / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    problems = check_notebook(broken)
    assert len(problems) == 1 and problems[0].startswith("not readable JSON")


def test_check_notebook_bad_argument():
    with pytest.raises(TypeError, match="nb_or_path"):
        check_notebook(42)
    with pytest.raises(FileNotFoundError, match="nb_or_path"):
        check_notebook("/nonexistent/x.ipynb")


def test_checker_is_stricter_than_the_repository_hook(good):
    """Every problem the before-stop hook reports is reported by check_notebook too."""
    hook_cases = ["en cell with Chinese", "zh cell without Chinese", "markdown cell without tag", "en not followed by zh",
                  "error output", "outputs without execution count", "widget state in metadata", "notebook over 2 MB"]
    for name in hook_cases:
        bad = copy.deepcopy(good)
        MUTATIONS[name][0](bad)
        assert check_notebook(bad), name


# ---- widget state --------------------------------------------------------------------------------------

def test_strip_widget_state(good):
    nb = copy.deepcopy(good)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    view = {nbtools.WIDGET_VIEW_MIME: {"model_id": "abc"}, "text/plain": "VBox()"}
    nb.cells[4].source = "dashboard"  # not an NBVAL_CHECK_OUTPUT cell
    nb.cells[4].outputs = [
        nbformat.v4.new_output("display_data", data={nbtools.WIDGET_STATE_MIME: {"state": {}}}),
        nbformat.v4.new_output("display_data", data=dict(view)),
        nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
    ]
    assert nbtools.strip_widget_state(nb) is nb
    assert "widgets" not in nb.metadata
    assert [o.output_type for o in nb.cells[4].outputs] == ["display_data", "stream"]
    assert nb.cells[4].outputs[0].data == view
    assert check_notebook(nb) == []


# ---- export --------------------------------------------------------------------------------------------

def test_export_monolingual_copies(good, tmp_path):
    src_root = tmp_path / "notebooks"
    nbtools.write_notebook(good, src_root / "01_response" / "kd.ipynb")
    n_code = sum(c.cell_type == "code" for c in good.cells)
    for lang, other in (("en", "zh"), ("zh", "en")):
        paths = nbtools.export_all(src_root, tmp_path / f"export_{lang}", lang)
        assert paths == [tmp_path / f"export_{lang}" / "01_response" / "kd.ipynb"]
        nb = nbformat.read(paths[0], as_version=4)
        md = [c for c in nb.cells if c.cell_type == "markdown"]
        assert len(md) == 9 and all(c.metadata["tags"] == [lang] for c in md)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert len(code) == n_code and [c.outputs for c in code] == [c.outputs for c in good.cells if c.cell_type == "code"]
        assert nb.metadata["kdteach"]["lang"] == lang
    zh_titles = [c.source.splitlines()[0] for c in nbformat.read(paths[0], as_version=4).cells if c.cell_type == "markdown"]
    assert zh_titles[1:] == [zh for _, zh in TEMPLATE_SECTIONS[1:]]
    single = nbtools.export_notebook(src_root / "01_response" / "kd.ipynb", tmp_path / "single", "en")
    assert single == tmp_path / "single" / "kd.ipynb"
    with pytest.raises(ValueError, match="lang"):
        nbtools.export_notebook(single, tmp_path, "fr")
    with pytest.raises(ValueError, match="inside notebooks_dir"):
        nbtools.export_all(src_root, src_root / "en", "en")


# ---- README table --------------------------------------------------------------------------------------

README = "# kdteach\n\nIntro.\n\n<!-- notebooks:start -->\nold table\n<!-- notebooks:end -->\n\nMore.\n"


def test_update_readme_table(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nbtools.write_notebook(make_good(), nb_dir / "01_response" / "kd.ipynb")
    nbtools.write_notebook(make_good({"id": "at", "paper": "Paying More Attention | to Attention",
                                      "venue": "ICLR 2017", "part": "02_feature"}), nb_dir / "02_feature" / "at.ipynb")
    (nb_dir / "run_times.json").write_text(json.dumps({"01_response/kd.ipynb": 31.6}), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    rows = nbtools.update_readme_table(readme, nb_dir)
    assert [r["id"] for r in rows] == ["kd", "at"]
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# kdteach\n\nIntro.\n\n<!-- notebooks:start -->\n| part | id | paper | venue | ci run time (s) |")
    assert text.endswith("<!-- notebooks:end -->\n\nMore.\n") and "old table" not in text
    assert ("| 01_response | [kd](notebooks/01_response/kd.ipynb) | Distilling the Knowledge in a Neural Network"
            " | NIPS-W 2014 | 32 |") in text
    assert "| Paying More Attention \\| to Attention | ICLR 2017 | - |" in text
    parsed = nbtools.read_readme_table(readme)
    assert [(r["part"], r["id"], r["paper"], r["venue"], r["seconds"]) for r in parsed] == [
        ("01_response", "kd", META["paper"], "NIPS-W 2014", 32.0),
        ("02_feature", "at", "Paying More Attention | to Attention", "ICLR 2017", None)]
    mtime = readme.stat().st_mtime_ns
    nbtools.update_readme_table(readme, nb_dir)  # unchanged table: file not rewritten
    assert readme.stat().st_mtime_ns == mtime and readme.read_text(encoding="utf-8") == text
    assert nbtools.readme_table(readme, nb_dir)[0] == nbtools.readme_table_text(readme)


def test_readme_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# kdteach\n", encoding="utf-8")
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(ValueError, match="notebooks:start"):
        nbtools.update_readme_table(readme, tmp_path / "notebooks")


# ---- command line --------------------------------------------------------------------------------------

def test_main_check_exit_status(good, tmp_path, capsys):
    path = nbtools.write_notebook(good, tmp_path / "01_response" / "kd.ipynb")
    assert nbtools.main(["check", str(tmp_path)]) == 0
    good.metadata["widgets"] = {}
    nbtools.write_notebook(good, path)  # write_notebook strips widget state again
    assert nbtools.main(["check", str(tmp_path)]) == 0
    bad = json.loads(path.read_text(encoding="utf-8"))
    bad["metadata"]["widgets"] = {}
    path.write_text(json.dumps(bad), encoding="utf-8")
    assert nbtools.main(["check", str(tmp_path)]) == 1
    assert "stored widget state" in capsys.readouterr().out


# ---- execution (starts real kernels: a few seconds) ----------------------------------------------------

def _runnable(tmp_path):
    nb = nbtools.new_notebook({**META, "id": "env", "part": "00_demo"})
    nbtools.add_code(nb, "import os\nprint(os.environ.get('KDTEACH_BUDGET'))", check_output=True)
    nbtools.add_code(nb, """
        import matplotlib.pyplot as plt
        plt.plot([0, 1], [1, 0])
        plt.show()
    """)
    nbtools.add_code(nb, "import ipywidgets\nipywidgets.IntSlider(3)")
    return nbtools.write_notebook(nb, tmp_path / "notebooks" / "00_demo" / "env.ipynb")


def test_run_notebooks_executes_in_place_and_records_times(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_BUDGET", "ci")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as in CI; the notebook still gets its figure inline
    path = _runnable(tmp_path)
    times = nbtools.run_notebooks([tmp_path / "notebooks"], timeout=120)
    assert list(times) == ["00_demo/env.ipynb"] and times["00_demo/env.ipynb"] > 0
    nb = nbformat.read(path, as_version=4)
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.cells[0].outputs[0].text == "ci\n"  # the kernel inherits os.environ
    assert any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs)
    assert nbtools.WIDGET_VIEW_MIME in nb.cells[2].outputs[0].data
    assert "widgets" not in nb.metadata
    stored = json.loads((tmp_path / "notebooks" / "run_times.json").read_text(encoding="utf-8"))
    assert stored == times


def test_run_notebook_failure_leaves_file_untouched(tmp_path, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("KDTEACH_BUDGET", "quick")
    nb = nbtools.new_notebook(META)
    nbtools.add_code(nb, "raise ValueError('boom')")
    path = nbtools.write_notebook(nb, tmp_path / "notebooks" / "01_response" / "kd.ipynb")
    before = path.read_bytes()
    with pytest.raises(CellExecutionError, match="boom"):
        nbtools.run_notebooks(path, timeout=60)
    assert path.read_bytes() == before
    assert not (tmp_path / "notebooks" / "run_times.json").exists()
