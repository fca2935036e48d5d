"""kdteach.analysis.fsp_matrices and fsp_distance (Yim et al., CVPR 2017): the FSP mechanism check."""

import pytest
import torch

from kdteach.analysis import fsp_distance, fsp_matrices
from kdteach.features import extract
from kdteach.losses import fsp_loss, fsp_matrix
from kdteach.methods import get_method
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def models():
    return build_model("tiny_student", 10, seed=1), build_model("tiny_teacher", 10, seed=0)


def test_fsp_matrices_are_fsp_matrix_of_the_stage_outputs_and_restore_the_mode():
    student, _ = models()
    student.train()
    names = get_method("fsp").student_features(student)
    x = images()
    got = fsp_matrices(student, x, names, batch_size=3)                  # batches of 3, 3, 1
    assert student.training                                              # mode restored
    assert list(got) == [f"{a}->{b}" for a, b in zip(names[:-1], names[1:])]
    student.eval()
    with torch.no_grad():
        _, feats = extract(student, x, names)
    for (pair, g), a, b in zip(got.items(), names[:-1], names[1:]):
        want = fsp_matrix(feats[a], feats[b])
        assert g.shape == want.shape and g.shape[0] == 7
        assert torch.allclose(g, want, atol=1e-5), pair


def test_fsp_distance_is_the_image_weighted_mean_of_fsp_loss():
    student, teacher = models()
    names = get_method("fsp").student_features(student)
    x = images()
    got = fsp_distance(student, teacher, x, names, batch_size=3)
    g_s, g_t = fsp_matrices(student, x, names), fsp_matrices(teacher, x, names)
    assert list(got) == list(g_s)
    for pair in got:
        want = fsp_loss([g_s[pair]], [g_t[pair]]).item()                 # mean over all N·C1·C2 entries
        assert got[pair] == pytest.approx(want, rel=1e-5)
        assert got[pair] > 0
    # a model is at distance 0 from itself, and the order of the arguments does not matter
    assert all(v == pytest.approx(0.0, abs=1e-10) for v in fsp_distance(teacher, teacher, x, names).values())
    back = fsp_distance(teacher, student, x, names)
    assert all(back[p] == pytest.approx(got[p], rel=1e-5) for p in got)


def test_fsp_distance_falls_when_the_student_copies_the_teacher():
    student, teacher = models()
    names = get_method("fsp").student_features(student)
    x = images()
    before = sum(fsp_distance(student, teacher, x, names).values())
    copy = build_model("tiny_teacher", 10, seed=0)
    assert sum(fsp_distance(copy, teacher, x, names).values()) < before


def test_fsp_distance_bad_input():
    student, teacher = models()
    names = get_method("fsp").student_features(student)
    x = images()
    with pytest.raises(ValueError, match="stages"):
        fsp_distance(student, teacher, x, names[:1])
    with pytest.raises(ValueError, match="teacher_stages"):
        fsp_distance(student, teacher, x, names, teacher_stages=names[:2])
    with pytest.raises(ValueError, match="x"):
        fsp_distance(student, teacher, x[0], names)
    with pytest.raises(ValueError, match="batch_size"):
        fsp_distance(student, teacher, x, names, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        fsp_matrices(student, x, names, batch_size=True)
    with pytest.raises(ValueError, match="same shape"):                # (16, 16) vs (16, 24): not comparable
        fsp_distance(student, teacher, x, ["stem", "layer1"], teacher_stages=["layer1", "layer2"])
