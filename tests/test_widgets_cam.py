"""kdteach.widgets.cam driven headlessly: cam_explorer_state and CAMExplorer against kdteach.losses.cam."""

from __future__ import annotations

import base64

import pytest
import torch

from kdteach.losses import class_activation_map, grad_cam
from kdteach.train import build_model
from kdteach.widgets import CAMExplorer, cam_explorer_state
from kdteach.widgets.cam import cam_explorer_state as state_direct

CLASSES = [f"c{k}" for k in range(10)]


@pytest.fixture
def net():
    return build_model("tiny_teacher", num_classes=10, seed=0).eval()


@pytest.fixture
def student():
    return build_model("tiny_student", num_classes=10, seed=1).eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def test_exported():
    assert cam_explorer_state is state_direct


def test_state_last_layer_matches_library(net, images):
    s = cam_explorer_state(net, images, 1, target_class=3, layer=None)
    # computed independently, with the hook-free forward: f = layer3 output, CAM = W[k] . f
    with torch.no_grad():
        f = net.layer3(net.layer2(net.layer1(net.stem(images[1:2]))))
        logits = net(images[1:2])[0]
    cam = class_activation_map(f, net.fc.weight.detach(), [3])[0]
    assert s["layer"] == s["last_layer"] == "layer3"
    assert s["class"] == 3 and s["predicted"] == int(logits.argmax())
    assert torch.allclose(s["cam"], cam, atol=1e-6)
    assert torch.allclose(s["logits"], logits, atol=1e-6)
    assert torch.allclose(s["probs"], logits.softmax(0), atol=1e-6)
    h, w = cam.shape
    assert torch.allclose(s["grad_cam"], cam / (h * w), rtol=1e-4, atol=1e-7)
    assert s["identity_gap"] is not None and s["identity_gap"] < 1e-6
    assert s["correlation"] == pytest.approx(1.0, abs=1e-4)
    # the score decomposition: mean of the map + bias = logit of the class
    assert s["cam_score"] == pytest.approx(float(logits[3]), abs=1e-5)


def test_state_earlier_layer(net, images):
    s = cam_explorer_state(net, images, 0, target_class=None, layer="layer2")
    gc = grad_cam(net, net.get_submodule(net.stage("layer2").module), images[:1], [s["class"]])[0]
    assert s["class"] == s["predicted"]
    assert s["grad_cam"].shape == (8, 8) and s["cam"].shape == (4, 4)
    assert torch.allclose(s["grad_cam"], gc, atol=1e-6)
    assert s["identity_gap"] is None
    # correlation: the CAM resized bilinearly to the Grad-CAM's 8x8 grid, then Pearson r
    up = torch.nn.functional.interpolate(s["cam"][None, None], size=(8, 8), mode="bilinear", align_corners=False)
    assert s["correlation"] == pytest.approx(_pearson(gc, up[0, 0]), abs=1e-4)
    assert -1.0 <= s["correlation"] <= 1.0 and s["correlation"] < 0.999


def test_state_restores_training_mode(net, images):
    net.train()
    cam_explorer_state(net, images, 0)
    assert net.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(index=3), r"index must be an int in \[0, 3\), got 3"),
    (dict(index=-1), r"index must be an int"),
    (dict(index=0, target_class=10), r"target_class must be an int in \[0, 10\), got 10"),
    (dict(index=0, layer="fc"), r"layer must be a stage name of the model, one of \['stem', 'layer1'"),
])
def test_state_bad_arguments(net, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cam_explorer_state(net, images, **kwargs)


def test_state_bad_model_and_images(net, images):
    with pytest.raises(ValueError, match=r"model must be a kdteach model.*Linear"):
        cam_explorer_state(torch.nn.Linear(3, 10), images, 0)
    with pytest.raises(ValueError, match=r"images must be a \(N, 3, H, W\) tensor with N >= 1, got \(3, 16, 16\)"):
        cam_explorer_state(net, images[0], 0)
    with pytest.raises(ValueError, match=r"images must be floating point"):
        cam_explorer_state(net, images.long(), 0)


def test_explorer_headless(net, student, images, capsys):
    display = torch.rand(3, 3, 16, 16)
    ex = CAMExplorer({"teacher": net, "student": student}, images, display_images=display,
                     class_names=CLASSES, labels=torch.tensor([0, 1, 2]))
    assert ex.state["layer"] == "layer3" and ex.state["class"] == ex.state["predicted"]
    ex.image.value = 2
    ex.target.value = 5
    assert ex.state["index"] == 2 and ex.state["class"] == 5
    expected = cam_explorer_state(net, images, 2, 5, "layer3")
    assert torch.allclose(ex.state["cam"], expected["cam"]) and ex.state["correlation"] == pytest.approx(1.0, abs=1e-4)
    ex.layer.value = "layer1"
    assert ex.state["grad_cam"].shape == (16, 16) and ex.state["identity_gap"] is None
    ex.model.value = "student"                        # the student's own last stage and classifier
    with torch.no_grad():
        logits = student(images[2:3])[0]
    assert torch.allclose(ex.state["logits"], logits, atol=1e-6)
    assert ex.state["layer"] in [s.name for s in student.stages]
    fig_out, html_out = ex.output.outputs
    assert base64.b64decode(fig_out["data"]["image/png"]).startswith(b"\x89PNG")
    assert "Pearson r between CAM and Grad-CAM" in html_out["data"]["text/plain"]
    assert "normalised on its own" in ex.last_figure.texts[0].get_text()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""          # a widget never prints


def test_explorer_bad_input(net, images):
    with pytest.raises(ValueError, match="models must be a non-empty dict"):
        CAMExplorer({}, images)
    with pytest.raises(ValueError, match=r"class_names has 3 names, expected K = 10"):
        CAMExplorer({"t": net}, images, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"display_images must have shape \(3, 3, H, W\)"):
        CAMExplorer({"t": net}, images, display_images=torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        CAMExplorer({"t": net}, images, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same number of classes"):
        CAMExplorer({"t": net, "s": build_model("tiny_student", num_classes=5, seed=0)}, images)
