"""kdteach.models: the CIFAR zoo reproduces the CRD benchmark's architectures and the KDModel contract.

The benchmark's parameter names and shapes are re-derived here, independently of the model code,
from the arithmetic of the CRD benchmark's ``models/`` (HobbitLong/RepDistiller), so a state_dict
with the benchmark's keys is built without the benchmark's code.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from torch import nn

from kdteach import models
from kdteach.features import capture
from kdteach.models import count_parameters, create, kdteach_name, list_models, load_benchmark_state_dict

CIFAR = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
         "resnet32x4", "resnet50", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "vgg8", "vgg11", "vgg13",
         "vgg16", "vgg19", "mobilenetv2", "shufflenetv1", "shufflenetv2"]
ALL = ["tiny_teacher", "tiny_student", "tiny_assistant", "tiny_assistant_small"] + CIFAR
# counts at 100 classes quoted for the CRD benchmark's nets (the brief / papers using the benchmark)
KNOWN_100 = {"resnet8x4": 1.23e6, "resnet32x4": 7.43e6, "wrn_40_2": 2.26e6, "resnet56": 0.86e6,
             "resnet20": 0.28e6, "wrn_16_2": 0.70e6, "wrn_40_1": 0.57e6, "vgg13": 9.46e6, "vgg8": 3.96e6,
             "mobilenetv2": 0.81e6, "shufflenetv1": 0.95e6, "shufflenetv2": 1.36e6, "resnet110": 1.74e6}
DOC = Path(__file__).resolve().parents[1] / "docs" / "MODELS.md"


@lru_cache(maxsize=None)
def _built(name: str, num_classes: int) -> nn.Module:
    """One instance per (name, classes) for the whole module (resnet110 / vgg13 are built twice only)."""
    torch.manual_seed(0)
    return create(name, num_classes=num_classes)


def model(name: str, num_classes: int = 10) -> nn.Module:
    m = _built(name, num_classes)
    m.zero_grad(set_to_none=True)
    return m


# ---------------------------------------------------------------- the benchmark's keys and shapes
def _bn(prefix, c):
    return [(f"{prefix}.weight", (c,)), (f"{prefix}.bias", (c,)), (f"{prefix}.running_mean", (c,)),
            (f"{prefix}.running_var", (c,)), (f"{prefix}.num_batches_tracked", ())]


def _bench_resnet(depth, w, nc):
    n = (depth - 2) // 6
    keys = [("conv1.weight", (w[0], 3, 3, 3))] + _bn("bn1", w[0])
    cin = w[0]
    for layer, (planes, stride) in enumerate(zip(w[1:], (1, 2, 2)), start=1):
        for b in range(n):
            p = f"layer{layer}.{b}"
            keys += [(f"{p}.conv1.weight", (planes, cin, 3, 3))] + _bn(f"{p}.bn1", planes)
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
            if b == 0 and (stride != 1 or cin != planes):
                keys += [(f"{p}.downsample.0.weight", (planes, cin, 1, 1))] + _bn(f"{p}.downsample.1", planes)
            cin = planes
    return keys + [("fc.weight", (nc, w[3])), ("fc.bias", (nc,))]


def _bench_wrn(depth, k, nc):
    n = (depth - 4) // 6
    ch = [16, 16 * k, 32 * k, 64 * k]
    keys = [("conv1.weight", (16, 3, 3, 3))]
    for blk in (1, 2, 3):
        for i in range(n):
            cin, cout = (ch[blk - 1] if i == 0 else ch[blk]), ch[blk]
            p = f"block{blk}.layer.{i}"
            keys += _bn(f"{p}.bn1", cin) + [(f"{p}.conv1.weight", (cout, cin, 3, 3))] + _bn(f"{p}.bn2", cout)
            keys += [(f"{p}.conv2.weight", (cout, cout, 3, 3))]
            if cin != cout:
                keys += [(f"{p}.convShortcut.weight", (cout, cin, 1, 1))]
    return keys + _bn("bn1", ch[3]) + [("fc.weight", (nc, ch[3])), ("fc.bias", (nc,))]


def _bench_vgg(cfg, nc):
    keys, cin = [], 3
    for g, widths in enumerate(cfg):
        for j, w in enumerate(widths):
            keys += [(f"block{g}.{3 * j}.weight", (w, cin, 3, 3)), (f"block{g}.{3 * j}.bias", (w,))]
            keys += _bn(f"block{g}.{3 * j + 1}", w)
            cin = w
    return keys + [("classifier.weight", (nc, 512)), ("classifier.bias", (nc,))]


def _bench_resnet50(nc):
    """The benchmark's resnetv2.ResNet50: Bottleneck (expansion 4) blocks 3/4/6/3, widths 64..512, ``linear``."""
    keys = [("conv1.weight", (64, 3, 3, 3))] + _bn("bn1", 64)
    cin = 64
    for layer, (planes, n, stride) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2)), start=1):
        for b in range(n):
            p, cout = f"layer{layer}.{b}", 4 * planes
            keys += [(f"{p}.conv1.weight", (planes, cin, 1, 1))] + _bn(f"{p}.bn1", planes)
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
            keys += [(f"{p}.conv3.weight", (cout, planes, 1, 1))] + _bn(f"{p}.bn3", cout)
            if b == 0 and (stride != 1 or cin != cout):
                keys += [(f"{p}.shortcut.0.weight", (cout, cin, 1, 1))] + _bn(f"{p}.shortcut.1", cout)
            cin = cout
    return keys + [("linear.weight", (nc, 2048)), ("linear.bias", (nc,))]


def _bench_mobile_half(nc):
    setting = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
    keys = [("conv1.0.weight", (16, 3, 3, 3))] + _bn("conv1.1", 16)
    cin = 16
    for g, (t, c, n, _s) in enumerate(setting):
        cout = c // 2
        for j in range(n):
            p, hid = f"blocks.{g}.{j}.conv", cin * t
            keys += [(f"{p}.0.weight", (hid, cin, 1, 1))] + _bn(f"{p}.1", hid)
            keys += [(f"{p}.3.weight", (hid, 1, 3, 3))] + _bn(f"{p}.4", hid)
            keys += [(f"{p}.6.weight", (cout, hid, 1, 1))] + _bn(f"{p}.7", cout)
            cin = cout
    keys += [("conv2.0.weight", (1280, cin, 1, 1))] + _bn("conv2.1", 1280)
    return keys + [("classifier.0.weight", (nc, 1280)), ("classifier.0.bias", (nc,))]


def _bench_shufflev1(nc):
    keys = [("conv1.weight", (24, 3, 1, 1))] + _bn("bn1", 24)
    cin = 24
    for layer, (planes, n) in enumerate(zip((240, 480, 960), (4, 8, 4)), start=1):
        for j in range(n):
            cout = planes - cin if j == 0 else planes
            mid, g = cout // 4, (1 if cin == 24 else 3)
            p = f"layer{layer}.{j}"
            keys += [(f"{p}.conv1.weight", (mid, cin // g, 1, 1))] + _bn(f"{p}.bn1", mid)
            keys += [(f"{p}.conv2.weight", (mid, 1, 3, 3))] + _bn(f"{p}.bn2", mid)
            keys += [(f"{p}.conv3.weight", (cout, mid // 3, 1, 1))] + _bn(f"{p}.bn3", cout)
            cin = planes
    return keys + [("linear.weight", (nc, 960)), ("linear.bias", (nc,))]


def _bench_shufflev2(nc):
    keys = [("conv1.weight", (24, 3, 1, 1))] + _bn("bn1", 24)
    cin = 24
    for layer, (cout, n) in enumerate(zip((116, 232, 464), (3, 7, 3)), start=1):
        p, mid = f"layer{layer}.0", cout // 2
        keys += [(f"{p}.conv1.weight", (cin, 1, 3, 3))] + _bn(f"{p}.bn1", cin)
        keys += [(f"{p}.conv2.weight", (mid, cin, 1, 1))] + _bn(f"{p}.bn2", mid)
        keys += [(f"{p}.conv3.weight", (mid, cin, 1, 1))] + _bn(f"{p}.bn3", mid)
        keys += [(f"{p}.conv4.weight", (mid, 1, 3, 3))] + _bn(f"{p}.bn4", mid)
        keys += [(f"{p}.conv5.weight", (mid, mid, 1, 1))] + _bn(f"{p}.bn5", mid)
        for j in range(1, n + 1):
            p, c = f"layer{layer}.{j}", cout // 2
            keys += [(f"{p}.conv1.weight", (c, c, 1, 1))] + _bn(f"{p}.bn1", c)
            keys += [(f"{p}.conv2.weight", (c, 1, 3, 3))] + _bn(f"{p}.bn2", c)
            keys += [(f"{p}.conv3.weight", (c, c, 1, 1))] + _bn(f"{p}.bn3", c)
        cin = cout
    keys += [("conv2.weight", (1024, 464, 1, 1))] + _bn("bn2", 1024)
    return keys + [("linear.weight", (nc, 1024)), ("linear.bias", (nc,))]


_BASE, _X4 = (16, 16, 32, 64), (32, 64, 128, 256)
BENCH = {
    **{f"resnet{d}": (lambda nc, d=d: _bench_resnet(d, _BASE, nc)) for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": lambda nc: _bench_resnet(8, _X4, nc),
    "resnet32x4": lambda nc: _bench_resnet(32, _X4, nc),
    "resnet50": _bench_resnet50,
    "wrn_16_1": lambda nc: _bench_wrn(16, 1, nc),
    "wrn_16_2": lambda nc: _bench_wrn(16, 2, nc),
    "wrn_40_1": lambda nc: _bench_wrn(40, 1, nc),
    "wrn_40_2": lambda nc: _bench_wrn(40, 2, nc),
    "vgg8": lambda nc: _bench_vgg([[64], [128], [256], [512], [512]], nc),
    "vgg11": lambda nc: _bench_vgg([[64], [128], [256] * 2, [512] * 2, [512] * 2], nc),
    "vgg13": lambda nc: _bench_vgg([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]], nc),
    "vgg16": lambda nc: _bench_vgg([[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3], nc),
    "vgg19": lambda nc: _bench_vgg([[64] * 2, [128] * 2, [256] * 4, [512] * 4, [512] * 4], nc),
    "mobilenetv2": _bench_mobile_half,
    "shufflenetv1": _bench_shufflev1,
    "shufflenetv2": _bench_shufflev2,
}


def _bench_param_count(name, nc):
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(torch.Size(s).numel() for k, s in BENCH[name](nc) if not k.endswith(buffers))


def _bench_state_dict(name, nc, generator):
    """Random tensors under the benchmark's keys (valid BN statistics so forwards stay finite)."""
    sd = {}
    for k, shape in BENCH[name](nc):
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=generator) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=generator) * 0.05
    return sd


# ---------------------------------------------------------------- tests
def test_registry_lists_every_model():
    assert list_models() == sorted(ALL)
    assert set(BENCH) == set(CIFAR)


@pytest.mark.parametrize("name", CIFAR)
def test_state_dict_keys_shapes_and_order_equal_the_benchmark(name):
    ours = [(k, tuple(v.shape)) for k, v in model(name, 100).state_dict().items()]
    assert ours == BENCH[name](100)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_output_shape_at_32_and_16(name, num_classes):
    m = model(name, num_classes)
    for res in (32, 16):
        out = m(torch.randn(2, 3, res, res))
        assert out.shape == (2, num_classes) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    assert m.num_classes == num_classes and m.fc.out_features == num_classes
    assert m.fc.in_features == m.feature_dim


@pytest.mark.parametrize("name", CIFAR)
def test_parameter_counts_match_the_benchmark(name):
    n100 = count_parameters(model(name, 100))
    assert n100 == _bench_param_count(name, 100)
    assert count_parameters(model(name, 10)) == _bench_param_count(name, 10)
    if name in KNOWN_100:
        assert abs(n100 - KNOWN_100[name]) <= 0.01 * KNOWN_100[name], (name, n100)


def test_tiny_parameter_counts():
    assert abs(count_parameters(model("tiny_teacher")) - 50_000) <= 0.2 * 50_000
    assert abs(count_parameters(model("tiny_student")) - 13_000) <= 0.2 * 13_000
    # the assistant sits between them (TAKD's chain at ci)
    assert count_parameters(model("tiny_student")) < count_parameters(model("tiny_assistant_small")) \
        < count_parameters(model("tiny_assistant")) < count_parameters(model("tiny_teacher"))


def _doc_rows():
    """The rows of docs/MODELS.md's "Parameters and stages" table (other tables name models too)."""
    rows, section = {}, None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if section != "Parameters and stages":
            continue
        m = re.match(r"^\|\s*`([a-z0-9_]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


def test_docs_table_matches_the_code():
    rows = _doc_rows()
    assert sorted(rows) == sorted(ALL)
    for name, cells in rows.items():
        p10, p100, bench, _bench_name, feat_dim, stages = cells
        assert int(p10.replace(",", "")) == count_parameters(model(name, 10)), name
        assert int(p100.replace(",", "")) == count_parameters(model(name, 100)), name
        assert int(feat_dim) == model(name).feature_dim, name
        assert stages == ", ".join(f"{s.name} {s.channels}/{s.stride}" for s in model(name).stages), name
        if name in CIFAR:
            quoted = float(bench.rstrip("M")) * 1e6
            assert abs(count_parameters(model(name, 100)) - quoted) <= 0.01 * quoted, (name, bench)
            if name in KNOWN_100:
                assert quoted == pytest.approx(KNOWN_100[name]), name
        else:
            assert bench == "—"


@pytest.mark.parametrize("name", ALL)
def test_stage_declarations_match_captured_features(name):
    m = model(name).eval()
    names = [s.name for s in m.stages]
    assert len(set(names)) == len(names) and "pool" not in names
    assert len({s.module for s in m.stages}) == len(names)
    strides = [s.stride for s in m.stages]
    assert strides == sorted(strides)
    for res in (32, 16):
        x = torch.randn(2, 3, res, res)
        with torch.no_grad(), capture(m, names + ["pool"]) as post:
            m(x)
        with torch.no_grad(), capture(m, names, preact=True) as pre:
            m(x)
        assert post["pool"].shape == (2, m.feature_dim)
        for s in m.stages:
            act = m.get_submodule(s.module)
            assert isinstance(act, (nn.ReLU, nn.Identity)), (s, act)
            side = max(1, res // s.stride)
            assert post[s.name].shape == (2, s.channels, side, side), (s, res)
            assert pre[s.name].shape == post[s.name].shape
            if isinstance(act, nn.ReLU):
                assert torch.equal(post[s.name], pre[s.name].clamp_min(0)), s
                assert (pre[s.name] < 0).any(), s  # a real pre-activation
            else:
                assert torch.equal(post[s.name], pre[s.name]), s


@pytest.mark.parametrize("name", ALL)
def test_stage_modules_called_once_and_no_module_reused(name):
    m = model(name)
    calls: dict[str, int] = {}
    handles = [mod.register_forward_hook(lambda _m, _i, _o, n=n: calls.__setitem__(n, calls.get(n, 0) + 1))
               for n, mod in m.named_modules() if n]
    try:
        m(torch.randn(2, 3, 16, 16))
    finally:
        for h in handles:
            h.remove()
    for s in m.stages:
        assert calls.get(s.module) == 1, (s.module, calls.get(s.module))
    reused = {n: c for n, c in calls.items() if c > 1}
    assert not reused
    with_params = {n for n, mod in m.named_modules() if n and any(True for _ in mod.parameters(recurse=False))}
    assert with_params <= set(calls), with_params - set(calls)  # no dead parameters


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_gives_finite_grads(name):
    m = model(name).train()
    loss = nn.functional.cross_entropy(m(torch.randn(2, 3, 16, 16)), torch.tensor([0, 1]))
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    m.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ALL)
def test_no_inplace_modules(name):
    inplace = [n for n, mod in model(name).named_modules() if getattr(mod, "inplace", False)]
    assert not inplace


def test_create_errors():
    with pytest.raises(ValueError, match="resnet32x4") as info:
        create("nope")
    for n in ALL:
        assert n in str(info.value)
    with pytest.raises(ValueError, match="num_classes"):
        create("resnet8", num_classes=1)
    with pytest.raises(ValueError, match="num_classes"):
        models.resnet8(num_classes=1)
    with pytest.raises(TypeError, match="num_classes"):
        models.wrn_16_2(num_classes=10.0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model("resnet8")(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize("name", CIFAR)
def test_benchmark_state_dict_loads(name):
    g = torch.Generator().manual_seed(1)
    sd = _bench_state_dict(name, 100, g)
    m = copy.deepcopy(model(name, 100))
    checkpoint = {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 240, "best_acc": 79.4}
    assert load_benchmark_state_dict(m, checkpoint) is m
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k
    with torch.no_grad():
        out = m.eval()(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(out).all()


def test_benchmark_state_dict_mismatch_is_explained():
    g = torch.Generator().manual_seed(1)
    m = copy.deepcopy(model("resnet8", 10))
    with pytest.raises(ValueError, match=r"fc\.weight: checkpoint \(100, 64\) vs model \(10, 64\)"):
        load_benchmark_state_dict(m, _bench_state_dict("resnet8", 100, g))
    sd = _bench_state_dict("resnet8", 10, g)
    sd["extra.weight"] = sd.pop("layer1.0.conv1.weight")
    with pytest.raises(ValueError, match=r"missing keys: layer1\.0\.conv1\.weight.*unexpected keys: extra\.weight"):
        load_benchmark_state_dict(m, sd)
    with pytest.raises(TypeError, match="state_dict"):
        load_benchmark_state_dict(m, [1, 2])


def test_benchmark_names():
    assert kdteach_name("ShuffleV1") == "shufflenetv1"
    assert kdteach_name("ShuffleV2") == "shufflenetv2"
    assert kdteach_name("mobile_half") == "mobilenetv2"
    assert kdteach_name("vgg13_bn") == "vgg13"
    assert kdteach_name("resnet32x4_vanilla") == "resnet32x4"
    assert kdteach_name("resnet8x4") == "resnet8x4"
    assert kdteach_name("wrn_40_2_cifar100_lr_0.05_decay_0.0005_trial_0") == "wrn_40_2"
    assert kdteach_name("ResNet50") == "resnet50"
    assert kdteach_name("ResNet50_vanilla") == "resnet50"
    assert kdteach_name("vgg19_bn") == "vgg19"
    assert kdteach_name("wrn_16_1") == "wrn_16_1"
    with pytest.raises(ValueError, match="known"):
        kdteach_name("ResNet18")


def test_fc_alias_keeps_benchmark_names():
    m = create("vgg8")
    assert m.fc is m.classifier
    m.fc = nn.Linear(512, 7)
    assert m.classifier.out_features == 7 and m.num_classes == 7
    assert not any(k.startswith("fc.") for k in m.state_dict())
    r50 = create("resnet50")
    assert r50.fc is r50.linear and not any(k.startswith("fc.") for k in r50.state_dict())
    mb = create("mobilenetv2")
    assert mb.fc is mb.classifier[0]
    assert create("shufflenetv2").fc.in_features == 1024


def test_wrn_preactivation_stage_features_follow_the_benchmark():
    """Pre-activation of a WRN stage = BN of the stage output in the next block (the benchmark's preact)."""
    m = model("wrn_16_2").eval()
    outs = {}
    hooks = [getattr(m, b).register_forward_hook(lambda _m, _i, o, b=b: outs.__setitem__(b, o))
             for b in ("block1", "block2", "block3")]
    try:
        with torch.no_grad(), capture(m, ["block1", "block2", "block3"], preact=True) as pre:
            m(torch.randn(2, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        assert torch.allclose(pre["block1"], m.block2.layer[0].bn1(outs["block1"]))
        assert torch.allclose(pre["block2"], m.block3.layer[0].bn1(outs["block2"]))
        assert torch.allclose(pre["block3"], m.bn1(outs["block3"]))


def test_wrn_block_shortcut_rule():
    """Width change: the shortcut reads the BN-ReLU'd input; same width: the raw input."""
    torch.manual_seed(0)
    m = model("wrn_16_2").eval()
    with torch.no_grad():
        for blk in (m.block1.layer[0], m.block1.layer[1]):
            x = torch.randn(2, blk.bn1.num_features, 8, 8)
            act = torch.relu(blk.bn1(x))
            branch = blk.conv2(torch.relu(blk.bn2(blk.conv1(act))))
            short = x if blk.convShortcut is None else blk.convShortcut(act)
            assert torch.allclose(blk(x), short + branch, atol=1e-6)
        assert m.block1.layer[0].convShortcut is not None and m.block1.layer[1].convShortcut is None


def test_shufflenetv2_block_equals_the_benchmark_formula():
    """ReLU after the shuffle equals the benchmark's ReLU on the branch before it (inputs are >= 0)."""
    m = model("shufflenetv2").eval()
    blk = m.layer1[1]
    x = torch.relu(torch.randn(2, 116, 8, 8))
    with torch.no_grad():
        x1, x2 = x[:, :58], x[:, 58:]
        branch = blk.bn3(blk.conv3(blk.bn2(blk.conv2(torch.relu(blk.bn1(blk.conv1(x2)))))))
        cat = torch.cat([x1, torch.relu(branch)], 1)
        expected = cat.reshape(2, 2, 58, 8, 8).transpose(1, 2).reshape(2, 116, 8, 8)
        assert torch.allclose(blk(x), expected, atol=1e-6)


def test_channels_last_input():
    for name in ("shufflenetv1", "shufflenetv2", "mobilenetv2"):
        m = model(name).eval()
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            ref = m(x)
            out = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        m.to(memory_format=torch.contiguous_format)
        assert torch.allclose(ref, out, atol=1e-4), name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["resnet8x4", "resnet50", "wrn_16_2", "vgg8", "vgg19", "mobilenetv2", "shufflenetv1",
                                  "shufflenetv2"])
def test_cuda_forward_backward_bf16_channels_last(name):
    m = create(name, num_classes=100).cuda().to(memory_format=torch.channels_last).train()
    x = torch.randn(4, 3, 32, 32, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (4,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        with capture(m, [s.name for s in m.stages]) as feats:
            logits = m(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
    loss.backward()
    assert logits.shape == (4, 100) and logits.device.type == "cuda"
    assert all(f.device.type == "cuda" for f in feats.values())
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    # fp32 on the GPU (TF32 convolutions off) agrees with the CPU
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        ref = m.eval()(x)
        cpu = copy.deepcopy(m).cpu().to(memory_format=torch.contiguous_format)(x.cpu().contiguous())
    assert torch.allclose(ref.cpu(), cpu, atol=1e-3 * (1 + cpu.abs().max().item()), rtol=1e-3)


def test_resnet50_bottleneck_equals_the_benchmark_formula():
    """relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1 x))))))) + shortcut(x)), projection only where shapes change."""
    m = model("resnet50").eval()
    with torch.no_grad():
        for blk, cin, side in ((m.layer2[0], 256, 8), (m.layer2[1], 512, 4)):
            x = torch.relu(torch.randn(2, cin, side, side))
            branch = torch.relu(blk.bn1(blk.conv1(x)))
            branch = blk.bn3(blk.conv3(torch.relu(blk.bn2(blk.conv2(branch)))))
            short = x if blk.shortcut is None else blk.shortcut(x)
            assert torch.allclose(blk(x), torch.relu(branch + short), atol=1e-6)
    assert m.layer1[0].shortcut is not None and m.layer1[1].shortcut is None
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)
