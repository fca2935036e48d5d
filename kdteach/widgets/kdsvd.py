"""The SVD sign explorer (section 7 of the kdsvd notebook): KD-SVD's singular vectors and their signs.

KD-SVD (Lee, Kim, Song, "Self-supervised Knowledge Distillation Using Singular Value Decomposition",
ECCV 2018) compares the top right singular vectors of consecutive stages. A singular vector is only
defined up to sign, so an SVD routine may return either sign. :class:`SVDExplorer` flips one
stage's teacher vector (an equally valid SVD) and shows the loss computed with the signs as they
come (the CRD benchmark's ``KDSVD``) next to kdteach's loss, which fixes the sign convention
(:func:`kdteach.losses.feature.canonical_signs`), plus the top singular values and vectors of a stage.
The logic is :func:`svd_explorer_state`, a pure function (no training, no printing).
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ._common import figure_output as _figure_output
from ._common import html_output as _html_output
from ._common import html_table as _html_table

__all__ = ["svd_explorer_state", "max_explorer_k", "SVDExplorer"]

#: singular values shown per stage
N_VALUES = 6


def _feature_list(features: Any, name: str) -> list[torch.Tensor]:
    if isinstance(features, torch.Tensor) or not isinstance(features, (list, tuple)):
        raise ValueError(f"{name} must be a list of (B, C, H, W) stage features, got {type(features).__name__}")
    out = []
    for i, f in enumerate(features):
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or not f.is_floating_point():
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"{name}[{i}] must be a floating-point (B, C, H, W) tensor, got {shape}")
        out.append(f.detach())
    if len(out) < 2:
        raise ValueError(f"{name} must hold at least 2 stages (KD-SVD relates consecutive stages), got {len(out)}")
    return out


def _check_pair(fs: list[torch.Tensor], ft: list[torch.Tensor]) -> None:
    if len(fs) != len(ft):
        raise ValueError(f"student_features and teacher_features must have the same length, got {len(fs)} and {len(ft)}")
    for i, (a, b) in enumerate(zip(fs, ft)):
        if a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1] or a.shape[0] != fs[0].shape[0]:
            raise ValueError(f"student_features[{i}] and teacher_features[{i}] must have the same batch B and channels "
                             f"C as each other and as stage 0, got shapes {tuple(a.shape)} and {tuple(b.shape)}")


def max_explorer_k(student_features: Sequence[torch.Tensor]) -> int:
    """The largest k for which every student stage has its k + 3 candidates: min over the stages of
    min(H·W, C) − 3 (at least 1)."""
    fs = _feature_list(student_features, "student_features")
    return max(1, min(min(f.shape[1], f.shape[2] * f.shape[3]) for f in fs) - 3)


def _int_in(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return value


def svd_explorer_state(student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor],
                       k: int = 1, flip_stage: int | None = None, stage: int = 0, image: int = 0,
                       stage_names: Sequence[str] | None = None) -> dict:
    """Everything the SVD explorer shows for one setting (KD-SVD, Lee, Kim, Song, ECCV 2018).

    The teacher's top-k right singular vectors of every stage are taken in kdteach's sign convention
    (:func:`kdteach.losses.svd_features`); with ``flip_stage`` the top vector of that stage is
    multiplied by −1 for every image, which is just as valid an SVD. Two losses are computed from
    these vectors with :func:`kdteach.losses.feature.kdsvd_vector_loss` (alignment of the student's
    k + 3 candidates, scaling, RBF correlation of the DFVs of consecutive stages):

    * ``loss_library_sign``: the vectors used with the sign they have, as the CRD benchmark's
      ``KDSVD`` uses what the SVD library returns; it changes with the flip;
    * ``loss_kdteach``: the sign convention applied first (:func:`kdteach.losses.feature.canonical_signs`),
      so the flip is undone and the value equals :func:`kdteach.losses.kdsvd_loss`.

    Args:
        student_features: list of (B, C_i, H_i, W_i) student stage features (>= 2 stages).
        teacher_features: list of the teacher's, same length, same B and C_i per stage.
        k: teacher singular vectors per stage, 1 <= k <= :func:`max_explorer_k`.
        flip_stage: None, or the index of the stage whose teacher top vector is flipped.
        stage: index of the stage whose singular values and vectors are returned.
        image: index of the image (in [0, B)) whose values and vectors are returned.
        stage_names: names of the stages (default ``stage 0``, ``stage 1``, ...).

    Returns:
        dict with ``k``, ``flip_stage``, ``stage``, ``image``, ``stage_names``; floats
        ``loss_kdteach``, ``loss_library_sign`` and ``ratio`` (library-sign / kdteach); for the shown
        stage and image: ``teacher_values``, ``student_values`` (top ``N_VALUES`` singular values
        normalised over those shown, (n,) tensors), ``teacher_vectors`` (C, k) as used by the
        library-sign loss (flipped when ``flip_stage == stage``), ``student_vectors`` (C, k) the
        student's candidates aligned to them, ``cosines`` (k,) |cosine| between the two.
    """
    from kdteach.losses import align_singular_vectors, svd_features
    from kdteach.losses.feature import canonical_signs, kdsvd_vector_loss

    fs = _feature_list(student_features, "student_features")
    ft = _feature_list(teacher_features, "teacher_features")
    _check_pair(fs, ft)
    n_stages, batch = len(fs), fs[0].shape[0]
    k = _int_in(k, "k", 1, max_explorer_k(fs))
    if flip_stage is not None:
        flip_stage = _int_in(flip_stage, "flip_stage", 0, n_stages - 1)
    stage = _int_in(stage, "stage", 0, n_stages - 1)
    image = _int_in(image, "image", 0, batch - 1)
    names = [f"stage {i}" for i in range(n_stages)] if stage_names is None else [str(n) for n in stage_names]
    if len(names) != n_stages:
        raise ValueError(f"stage_names must name the {n_stages} stages, got {len(names)} names")
    with torch.no_grad():
        t_vals, t_vecs, s_vecs = [], [], []
        for i, (a, b) in enumerate(zip(fs, ft)):
            s_t, v_t = svd_features(b, k)
            if i == flip_stage:
                v_t = v_t.clone()
                v_t[..., 0] *= -1                                    # the other, equally valid, sign
            t_vals.append(s_t)
            t_vecs.append(v_t)
            s_vecs.append(svd_features(a, k + 3)[1])
        library = float(kdsvd_vector_loss(s_vecs, t_vecs, t_vals))
        ours = float(kdsvd_vector_loss(s_vecs, [canonical_signs(v) for v in t_vecs], t_vals))
        v_t = t_vecs[stage][image:image + 1]
        v_s = align_singular_vectors(s_vecs[stage][image:image + 1], v_t)
        cosines = (v_s * v_t).sum(1)[0].abs()
        t_spec = svd_features(ft[stage][image:image + 1], N_VALUES)[0][0]
        s_spec = svd_features(fs[stage][image:image + 1], N_VALUES)[0][0]
    return {
        "k": k, "flip_stage": flip_stage, "stage": stage, "image": image, "stage_names": names,
        "loss_kdteach": ours, "loss_library_sign": library,
        "ratio": library / ours if ours > 0 else float("inf") if library > 0 else 1.0,
        "teacher_values": t_spec, "student_values": s_spec,
        "teacher_vectors": v_t[0], "student_vectors": v_s[0], "cosines": cosines,
    }


class SVDExplorer(widgets.VBox):
    """Controls for k, the stage whose teacher top vector is flipped, the stage and the image shown;
    displays the KD-SVD loss with the signs as returned (CRD benchmark) and with kdteach's sign
    convention, the top singular values of the shown stage, and its teacher and aligned student
    vectors (Lee, Kim, Song, ECCV 2018).

    Args:
        student_features: list of (B, C_i, H_i, W_i) student stage features.
        teacher_features: list of the teacher's.
        stage_names: the stage names (dropdown labels).

    Attributes: ``k``, ``flip``, ``stage``, ``image`` (controls), ``output`` (Output),
    ``state`` (the latest :func:`svd_explorer_state` dict), ``last_figure``.
    """

    def __init__(self, student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor],
                 stage_names: Sequence[str] | None = None, k: int = 1):
        super().__init__()
        self._fs = _feature_list(student_features, "student_features")
        self._ft = _feature_list(teacher_features, "teacher_features")
        first = svd_explorer_state(self._fs, self._ft, k=k, stage_names=stage_names)   # validate once, early
        self.stage_names = first["stage_names"]
        stages = [(n, i) for i, n in enumerate(self.stage_names)]
        opts = dict(continuous_update=False)
        self.k = widgets.IntSlider(value=k, min=1, max=min(8, max_explorer_k(self._fs)), description="k", **opts)
        self.flip = widgets.Dropdown(options=[("none", None)] + stages, value=None, description="flip teacher")
        self.stage = widgets.Dropdown(options=stages, value=0, description="show stage")
        self.image = widgets.IntSlider(value=0, min=0, max=self._fs[0].shape[0] - 1, description="image", **opts)
        self.output = widgets.Output()
        self.state: dict = {}
        self.last_figure: Figure | None = None
        for w in (self.k, self.flip, self.stage, self.image):
            w.observe(lambda _change: self.update(), names="value")
        self.children = (widgets.HBox([self.flip, self.k]), widgets.HBox([self.stage, self.image]), self.output)
        self.update()

    def update(self) -> dict:
        """Recompute the state and the figure for the current controls (the controls call this)."""
        st = svd_explorer_state(self._fs, self._ft, k=self.k.value, flip_stage=self.flip.value,
                                stage=self.stage.value, image=self.image.value, stage_names=self.stage_names)
        name = st["stage_names"][st["stage"]]
        flipped = "none" if st["flip_stage"] is None else st["stage_names"][st["flip_stage"]]
        fig = Figure(figsize=(11, 3.4))  # fixed margins: a layout engine doubles the draw time
        ax_l, ax_s, ax_v = fig.subplots(1, 3, width_ratios=[1, 1, 2])
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.86, wspace=0.32)
        ax_l.bar(["library sign\n(benchmark)", "sign convention\n(kdteach)"],
                 [st["loss_library_sign"], st["loss_kdteach"]], color=["tab:red", "tab:blue"])
        ax_l.set_title(f"KD-SVD loss, k = {st['k']}, flipped: {flipped}", fontsize=9)
        idx = list(range(len(st["teacher_values"])))
        ax_s.bar([i - 0.2 for i in idx], st["teacher_values"].tolist(), width=0.4, label="teacher")
        ax_s.bar([i + 0.2 for i in range(len(st["student_values"]))], st["student_values"].tolist(), width=0.4,
                 label="student")
        ax_s.set_xlabel("singular value index")
        ax_s.set_title(f"{name}, image {st['image']}: top singular values", fontsize=9)
        ax_s.legend(fontsize="small")
        channels = list(range(st["teacher_vectors"].shape[0]))
        for j in range(st["k"]):
            ax_v.plot(channels, st["teacher_vectors"][:, j].tolist(), color=f"C{j}", label=f"teacher v{j + 1}")
            ax_v.plot(channels, st["student_vectors"][:, j].tolist(), color=f"C{j}", ls="--",
                      label=f"student (aligned), |cos| {float(st['cosines'][j]):.2f}")
        ax_v.axhline(0.0, color="gray", lw=0.5)
        ax_v.set_xlabel("channel")
        ax_v.set_title(f"{name}: right singular vectors (as used by the library-sign loss)", fontsize=9)
        ax_v.legend(fontsize="x-small", ncol=2)
        rows = [["library sign (CRD benchmark)", f"{st['loss_library_sign']:.4f}"],
                ["sign convention (kdteach, = kdsvd_loss)", f"{st['loss_kdteach']:.4f}"],
                ["ratio library / kdteach", f"{st['ratio']:.2f}"]]
        plain = "; ".join(f"{a} {b}" for a, b in rows)
        self.state, self.last_figure = st, fig
        self.output.outputs = (_figure_output(fig, "Figure: KD-SVD losses, singular values and vectors"),
                               _html_output(f"<p>flipped teacher vector: {html.escape(flipped)}</p>"
                                            + _html_table(["loss", "value"], rows), plain))
        return st
