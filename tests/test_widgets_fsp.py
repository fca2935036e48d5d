"""kdteach.widgets.fsp driven headlessly: the FSP explorer's pure state and its thin widget."""

from __future__ import annotations

import json

import pytest
import torch

from kdteach import widgets as kw
from kdteach.losses import fsp_loss


def mats(seed, n=5, shapes=((4, 6), (6, 3))):
    g = torch.Generator().manual_seed(seed)
    return {f"s{i}->s{i + 1}": torch.rand(n, c1, c2, generator=g) for i, (c1, c2) in enumerate(shapes)}


@pytest.fixture
def three():
    teacher = mats(0)
    method = {p: m + 0.05 * torch.randn(m.shape, generator=torch.Generator().manual_seed(1)) for p, m in teacher.items()}
    return teacher, mats(2), method          # the "method" student sits close to the teacher, "alone" does not


def test_state_mean_over_images(three):
    teacher, alone, method = three
    st = kw.fsp_explorer_state(teacher, alone, method, "s1->s2")
    assert st["pair"] == "s1->s2" and st["image"] is None and st["n_images"] == 5
    assert st["pairs"] == ["s0->s1", "s1->s2"]
    for key, src in (("teacher", teacher), ("alone", alone), ("method", method)):
        assert torch.allclose(st["matrices"][key], src["s1->s2"].mean(0))
        assert st["matrices"][key].shape == (6, 3)
    # one colour scale shared by the three panels
    shown = torch.stack(list(st["matrices"].values()))
    assert st["vmin"] == pytest.approx(float(shown.min())) and st["vmax"] == pytest.approx(float(shown.max()))
    # distances: fsp_loss over the per-image matrices, for every pair
    for s, src in (("alone", alone), ("method", method)):
        for p in st["pairs"]:
            assert st["distances"][s][p] == pytest.approx(float(fsp_loss([src[p]], [teacher[p]])))
        assert st["distance"][s] == st["distances"][s]["s1->s2"]
    assert st["closer"] is True and st["distance"]["method"] < st["distance"]["alone"]


def test_state_one_image(three):
    teacher, alone, method = three
    st = kw.fsp_explorer_state(teacher, alone, method, "s0->s1", image=3)
    assert st["image"] == 3 and st["n_images"] == 1
    assert torch.allclose(st["matrices"]["alone"], alone["s0->s1"][3])
    want = float(((alone["s0->s1"][3] - teacher["s0->s1"][3]) ** 2).mean())
    assert st["distance"]["alone"] == pytest.approx(want)
    # the mean of per-image distances over the images is the batch distance
    per_image = [kw.fsp_explorer_state(teacher, alone, method, "s0->s1", image=i)["distance"]["alone"]
                 for i in range(5)]
    batch = kw.fsp_explorer_state(teacher, alone, method, "s0->s1")["distance"]["alone"]
    assert sum(per_image) / 5 == pytest.approx(batch)


def test_state_student_equal_to_teacher_is_at_distance_zero(three):
    teacher, alone, _ = three
    st = kw.fsp_explorer_state(teacher, alone, teacher, "s0->s1")
    assert st["distance"]["method"] == 0.0 and st["closer"] is True


@pytest.mark.parametrize("change, match", [
    (lambda t, a, m: (t, a, m, "nope", None), "pair must be one of"),
    (lambda t, a, m: (t, a, m, "s0->s1", 5), r"image must be None .* \[0, 5\)"),
    (lambda t, a, m: (t, a, m, "s0->s1", -1), "image must be"),
    (lambda t, a, m: (t, a, m, "s0->s1", True), "image must be"),
    (lambda t, a, m: (t, {"s0->s1": a["s0->s1"]}, m, "s0->s1", None), "alone must have the teacher's pairs"),
    (lambda t, a, m: (t, a, {**m, "s0->s1": m["s0->s1"][:, :, :5]}, "s0->s1", None), r"method\['s0->s1'\] has shape"),
    (lambda t, a, m: (t, a, {**m, "s0->s1": m["s0->s1"][0]}, "s0->s1", None), r"\(N, C1, C2\)"),
    (lambda t, a, m: ({}, a, m, "s0->s1", None), "teacher must be a non-empty dict"),
    (lambda t, a, m: ({"x": t["s0->s1"], "y": t["s1->s2"][:2]}, {"x": a["s0->s1"], "y": a["s1->s2"][:2]},
                      {"x": m["s0->s1"], "y": m["s1->s2"][:2]}, "x", None), "same N images"),
])
def test_state_bad_input(three, change, match):
    with pytest.raises(ValueError, match=match):
        kw.fsp_explorer_state(*change(*three))


def test_explorer_menus_update_state_and_never_print(three, capsys):
    teacher, alone, method = three
    ex = kw.FSPExplorer(teacher, alone, method, labels=torch.tensor([0, 1, 2, 0, 1]), class_names=["a", "b", "c"])
    assert ex.pair.value == "s1->s2" and ex.image.value == -1 and ex.state["image"] is None
    assert ex.image.options[2] == ("image 1 (b)", 1)
    ex.image.value = 2
    assert ex.state["image"] == 2 and torch.allclose(ex.state["matrices"]["teacher"], teacher["s1->s2"][2])
    ex.pair.value = "s0->s1"
    assert ex.state["pair"] == "s0->s1"
    want = kw.fsp_explorer_state(teacher, alone, method, "s0->s1", 2)
    assert ex.state["distances"] == want["distances"]
    outs = ex.output.outputs
    assert [sorted(o["data"]) for o in outs] == [["image/png", "text/plain"], ["text/html", "text/plain"]]
    assert "s1-&gt;s2" in outs[1]["data"]["text/html"] and "FSP student" in outs[1]["data"]["text/html"]
    json.dumps(outs)                                     # display data only, serialisable
    assert len(ex.last_figure.axes) == 4                 # three panels and one shared colour bar
    assert capsys.readouterr().out == ""


def test_explorer_bad_labels(three):
    with pytest.raises(ValueError, match=r"labels must be an \(5,\) integer tensor"):
        kw.FSPExplorer(*three, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must index class_names"):
        kw.FSPExplorer(*three, labels=torch.tensor([0, 1, 2, 3, 4]), class_names=["a", "b"])
