"""kdteach.analysis.decoupled_kl: the dkd notebook's mechanism check (KL to the teacher split into TCKD and NCKD)."""

import pytest
import torch

from kdteach.analysis import decoupled_kl, soft_target_kl
from kdteach.train import build_model


def images(n=7, seed=0, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


LABELS = torch.tensor([0, 3, 9, 1, 1, 5, 7])


def test_decoupled_kl_is_the_image_mean_of_both_parts_without_t_squared():
    student, teacher = build_model("tiny_student", 10, seed=1).train(), build_model("tiny_teacher", 10, seed=0).eval()
    x = images()
    got = decoupled_kl(student, teacher, x, LABELS, temperature=4.0, batch_size=3)   # batches of 3, 3, 1
    assert student.training and not teacher.training                                # modes restored
    student.eval()
    with torch.no_grad():
        p_t = torch.softmax(teacher(x).double() / 4.0, dim=1)
        p_s = torch.softmax(student(x).double() / 4.0, dim=1)
    tckd, nckd, kl = [], [], []
    for i, k in enumerate(LABELS.tolist()):
        b_t = torch.stack([p_t[i, k], 1 - p_t[i, k]])
        b_s = torch.stack([p_s[i, k], 1 - p_s[i, k]])
        keep = [j for j in range(10) if j != k]
        h_t, h_s = p_t[i, keep] / (1 - p_t[i, k]), p_s[i, keep] / (1 - p_s[i, k])
        tckd.append((b_t * (b_t / b_s).log()).sum().item())
        nckd.append((h_t * (h_t / h_s).log()).sum().item())
        kl.append((p_t[i] * (p_t[i] / p_s[i]).log()).sum().item())
    assert got["tckd"] == pytest.approx(sum(tckd) / 7, rel=1e-4)
    assert got["nckd"] == pytest.approx(sum(nckd) / 7, rel=1e-4)
    assert got["kl"] == pytest.approx(sum(kl) / 7, rel=1e-4)
    assert got["kl"] == pytest.approx(soft_target_kl(student, teacher, x, 4.0), rel=1e-5)
    # the reformulation holds image by image, so also for the means of the weighted parts
    weights = [1 - p_t[i, k].item() for i, k in enumerate(LABELS.tolist())]
    assert got["kl"] == pytest.approx(sum(a + w * b for a, w, b in zip(tckd, weights, nckd)) / 7, rel=1e-4)


def test_decoupled_kl_is_zero_for_the_teacher_itself():
    teacher = build_model("tiny_teacher", 10, seed=0).eval()
    got = decoupled_kl(teacher, teacher, images(), LABELS, temperature=4.0)
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in got.values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(labels=LABELS[:3]), r"labels must be a \(7,\) tensor of class indices"),
    (dict(labels=LABELS.tolist()), r"labels must be a \(7,\) tensor"),
    (dict(labels=LABELS + 10), r"target must hold class indices in \[0, 10\)"),
    (dict(temperature=-1.0), "temperature must be a finite number > 0"),
    (dict(batch_size=0), "batch_size must be a positive int"),
])
def test_decoupled_kl_bad_input(kwargs, match):
    student, teacher = build_model("tiny_student", 10, seed=1), build_model("tiny_teacher", 10, seed=0)
    args = dict(labels=LABELS, temperature=4.0, batch_size=500) | kwargs
    with pytest.raises(ValueError, match=match):
        decoupled_kl(student, teacher, images(), args["labels"], args["temperature"], args["batch_size"])
