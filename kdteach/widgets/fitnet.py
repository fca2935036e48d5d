"""The FitNets regressor explorer (section 7 of the fitnet notebook): the regressor's shape rule for any
pair of zoo models, over a pure function.

Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, Sec. 2.2: a regressor r maps the
student's guided-layer output onto the shape of the teacher's hint. :class:`RegressorExplorer` lets the
reader pick a teacher, a student, the hint layer and the input side, and shows both stages, the
regressor layer :func:`kdteach.methods.fitnet.regressor_spec` builds for them, its output shape and its
parameter count next to the student's. No model is trained and nothing runs on images; the logic is
:func:`regressor_explorer_state`.
"""

from __future__ import annotations

import html
from typing import Sequence

import ipywidgets as widgets

from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["regressor_explorer_state", "RegressorExplorer"]


def _side(resolution: int, stride: int) -> int:
    return max(1, -(-resolution // stride))          # ceil: stride-2 convs with padding 1 round up


def regressor_explorer_state(teacher: str, student: str, hint_layer: int = 2, resolution: int = 32) -> dict:
    """The FitNets regressor for one pair of zoo models: the hint and guided stages, the layer, the shapes.

    Builds both models (untrained, CIFAR-10 heads) only to read their declared stages and count the
    student's parameters.

    Args:
        teacher, student: zoo model names (:func:`kdteach.models.list_models`).
        hint_layer: index in each model's stage list, stem = 0 (the CRD benchmark's ``--hint_layer``).
        resolution: the input side in pixels (32 for CIFAR; the ``ci`` budget uses 16).

    Returns:
        dict with ``ok`` (False when the pair cannot work at this layer, with ``error`` the message);
        when ok: ``hint`` and ``guided`` (``name``, ``channels``, ``stride``, ``shape`` (C, h, w) at this
        resolution), ``spec`` (:func:`~kdteach.methods.fitnet.regressor_spec`), ``output_shape`` (the
        regressor's output (C, h, w) for the guided shape), ``matches`` (output shape == hint shape),
        ``student_parameters`` and ``regressor_fraction`` (regressor / student parameters).

    Raises:
        ValueError: an unknown model name or a ``resolution`` / ``hint_layer`` that is not a positive
            int (resp. an int >= 0).
    """
    from kdteach.methods.fitnet import hint_stages, regressor_spec
    from kdteach.models import count_parameters, create

    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int (pixels), got {resolution!r}")
    if isinstance(hint_layer, bool) or not isinstance(hint_layer, int) or hint_layer < 0:
        raise ValueError(f"hint_layer must be an int >= 0 (the stem is 0), got {hint_layer!r}")
    t, s = create(teacher, 10), create(student, 10)
    t.kd_arch, s.kd_arch = teacher, student
    state = {"teacher": teacher, "student": student, "hint_layer": hint_layer, "resolution": resolution}
    try:
        guided, hint = hint_stages(s, t, hint_layer)
        spec = regressor_spec(guided, hint, student=student, teacher=teacher)
    except ValueError as err:
        return {**state, "ok": False, "error": str(err)}
    g_side, h_side = _side(resolution, guided.stride), _side(resolution, hint.stride)
    if spec["kind"] == "conv":
        out_side = (g_side + 2 * spec["padding"] - spec["kernel"]) // spec["stride"] + 1
    else:
        out_side = (g_side - 1) * spec["stride"] - 2 * spec["padding"] + spec["kernel"]
    n_student = count_parameters(s)
    return {
        **state, "ok": True, "error": None,
        "hint": {"name": hint.name, "channels": hint.channels, "stride": hint.stride,
                 "shape": (hint.channels, h_side, h_side)},
        "guided": {"name": guided.name, "channels": guided.channels, "stride": guided.stride,
                   "shape": (guided.channels, g_side, g_side)},
        "spec": spec, "output_shape": (spec["out_channels"], out_side, out_side),
        "matches": (spec["out_channels"], out_side, out_side) == (hint.channels, h_side, h_side),
        "student_parameters": n_student, "regressor_fraction": spec["parameters"] / n_student,
    }


def _layer_text(spec: dict) -> str:
    name = "Conv2d" if spec["kind"] == "conv" else "ConvTranspose2d"
    return (f"{name}({spec['in_channels']}, {spec['out_channels']}, kernel {spec['kernel']}, stride {spec['stride']}, "
            f"padding {spec['padding']}) + BatchNorm2d + ReLU")


class RegressorExplorer(widgets.VBox):
    """Pick a teacher, a student, the hint layer and the input side; see the hint and guided stages, the
    regressor FitNets needs between them and what it costs (Romero et al., ICLR 2015, Sec. 2.2).

    Args:
        models: the zoo names offered in both menus (default: every zoo model).
        teacher, student: the initial choices; hint_layer, resolution: the initial layer and side.

    Attributes: ``teacher``, ``student``, ``hint_layer``, ``resolution`` (the controls), ``output``
    (Output), ``state`` (the latest :func:`regressor_explorer_state` dict).
    """

    def __init__(self, models: Sequence[str] | None = None, teacher: str = "resnet32x4", student: str = "resnet8x4",
                 hint_layer: int = 2, resolution: int = 32):
        super().__init__()
        from kdteach.models import list_models

        names = list(models) if models is not None else list_models()
        for which, value in (("teacher", teacher), ("student", student)):
            if value not in names:
                raise ValueError(f"{which} must be one of the offered models {names}, got {value!r}")
        self.teacher = widgets.Dropdown(options=names, value=teacher, description="teacher")
        self.student = widgets.Dropdown(options=names, value=student, description="student")
        self.hint_layer = widgets.BoundedIntText(value=hint_layer, min=0, max=8, description="hint layer")
        self.resolution = widgets.Dropdown(options=[16, 32], value=resolution if resolution in (16, 32) else 32,
                                           description="input side")
        self.output = widgets.Output()
        self.state: dict = {}
        for w in (self.teacher, self.student, self.hint_layer, self.resolution):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.teacher, self.student]), widgets.HBox([self.hint_layer, self.resolution]),
                         self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the table for the current choices (the controls call this)."""
        st = regressor_explorer_state(self.teacher.value, self.student.value, int(self.hint_layer.value),
                                      int(self.resolution.value))
        self.state = st
        if not st["ok"]:
            text = f"This pair cannot work at hint layer {st['hint_layer']}: {st['error']}"
            self.output.outputs = (_html_output(f"<p>{html.escape(text)}</p>", text),)
            return st
        g, h, spec = st["guided"], st["hint"], st["spec"]
        body = [["teacher hint", f"{st['teacher']}.{h['name']}", str(h["stride"]), str(h["shape"])],
                ["student guided", f"{st['student']}.{g['name']}", str(g["stride"]), str(g["shape"])],
                ["regressor output", _layer_text(spec), "", str(st["output_shape"])]]
        table = _html_table(["", "layer", "stride", "shape (C, h, w)"], body)
        summary = (f"regressor {_layer_text(spec)}: {spec['parameters']:,} parameters, "
                   f"{100 * st['regressor_fraction']:.1f}% of the student's {st['student_parameters']:,}; "
                   f"output {'matches' if st['matches'] else 'does NOT match'} the hint's shape")
        self.output.outputs = (_html_output(f"{table}<p>{html.escape(summary)}</p>", summary),)
        return st
