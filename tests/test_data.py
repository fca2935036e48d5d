"""kdteach.data: loading, checksums, clear errors, on-device augmentation."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import torch

from kdteach import data


@pytest.fixture(scope="module")
def c10_train():
    return data.load_split("cifar10", train=True)


def test_offline_cifar10_counts_dtypes_ranges(offline_data, c10_train):
    test = data.load_split("cifar10", train=False)
    assert len(c10_train) == 5590 and len(test) == 1017
    assert c10_train.images.shape == (5590, 3, 32, 32) and c10_train.images.dtype == torch.uint8
    assert c10_train.labels.dtype == torch.int64
    assert int(c10_train.labels.min()) == 0 and int(c10_train.labels.max()) == 9
    assert c10_train.class_names[0] == "airplane" and len(c10_train.class_names) == 10
    # class counts from the subsets' README
    counts = torch.bincount(test.labels, minlength=10).tolist()
    assert counts == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]
    assert int(c10_train.images.max()) > 200 and int(c10_train.images.min()) < 30


def test_offline_cifar100_loads(offline_data):
    tr = data.load_split("cifar100", train=True)
    te = data.load_split("cifar100", train=False)
    assert (len(tr), len(te)) == (1117, 916)
    assert tr.num_classes == 100 and int(tr.labels.max()) < 100


def test_normalisation_constants_and_roundtrip(c10_train):
    x = data.normalize(c10_train.images[:256], "cifar10")
    assert x.dtype == torch.float32
    # the whole-training-set constants give roughly zero mean / unit std on real images
    assert x.mean().abs() < 0.25 and 0.7 < x.std() < 1.3
    back = data.denormalize(x, "cifar10")
    assert torch.allclose(back * 255, c10_train.images[:256].float(), atol=1e-3)
    assert set(data.NORMALIZATION) == {"cifar10", "cifar100"}


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch, offline_data):
    src = np.load(f"{offline_data}/cifar10_subset.npz")
    arrays = {k: src[k] for k in src.files}
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "cifar10_subset.npz", **arrays)
    monkeypatch.setenv("KDTEACH_DATA", str(tmp_path))
    with pytest.raises(data.DatasetChecksumError, match="x_test"):
        data.load_split("cifar10", train=False)


def test_missing_offline_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_DATA", str(tmp_path))
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_split("cifar10")
    msg = str(err.value)
    assert str(tmp_path) in msg and "KDTEACH_DATA" in msg and "download" in msg


def test_missing_torchvision_data_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("KDTEACH_DATA", raising=False)
    monkeypatch.setenv("KDTEACH_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("KDTEACH_DOWNLOAD", "0")
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load_split("cifar10")
    assert str(tmp_path) in str(err.value) and "KDTEACH_DOWNLOAD=0" in str(err.value)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        data.load_split("mnist")


def test_resize_and_subset(c10_train):
    small = c10_train.subset(100).resized(16)
    assert small.images.shape == (100, 3, 16, 16) and small.images.dtype == torch.uint8
    # area downsampling = mean of 2x2 blocks
    ref = c10_train.images[:1].float().unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)).round()
    assert torch.equal(small.images[:1].float(), ref)
    with pytest.raises(ValueError, match="resolution"):
        data.resize_uint8(c10_train.images[:2], 64)


def test_crop_keeps_shape_and_pixels_come_from_shifted_image():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = data.random_crop_flip(x, g, pad=2, flip=False)
    assert out.shape == x.shape
    for b in range(2):  # each output is a shifted window of the zero-padded input
        padded = torch.nn.functional.pad(x[b], (2, 2, 2, 2))
        found = any(torch.equal(out[b], padded[:, i:i + 8, j:j + 8]) for i in range(5) for j in range(5))
        assert found


def test_flip_is_an_involution_and_pad0_is_identity_or_flip():
    x = torch.randn(64, 3, 8, 8)
    g = torch.Generator().manual_seed(1)
    out = data.random_crop_flip(x, g, pad=0, flip=True)
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(64)]
    same = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54  # about half are flipped
    assert torch.equal(x.flip(3).flip(3), x)


def test_device_loader_same_seed_same_batches_and_epochs_differ(c10_train):
    split = c10_train.subset(600).resized(16)
    a = data.DeviceLoader(split, 128, train=True, seed=3)
    b = data.DeviceLoader(split, 128, train=True, seed=3)
    ba, bb = list(a), list(b)
    assert len(ba) == len(a) == 600 // 128
    for (xa, ya), (xb, yb) in zip(ba, bb):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    second = list(a)  # epoch 1 differs from epoch 0
    assert not torch.equal(second[0][1], ba[0][1])
    # exact resume: set_epoch(1) reproduces epoch 1
    b.set_epoch(1)
    assert torch.equal(next(iter(b))[0], second[0][0])
    x, y = ba[0]
    assert x.shape == (128, 3, 16, 16) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_device_loader_eval_is_ordered_and_complete(c10_train):
    split = c10_train.subset(300)
    dl = data.DeviceLoader(split, 128, train=False)
    ys = torch.cat([y for _, y in dl])
    assert torch.equal(ys, split.labels) and len(dl) == 3


def test_example_batch_is_one_image_per_class():
    x, y = data.example_batch(10)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == list(range(10))
    x2, _ = data.example_batch(10)
    assert torch.equal(x, x2)
    x16, _ = data.example_batch(4, resolution=16)
    assert x16.shape == (4, 3, 16, 16)


def test_torchvision_dataset_missing_is_clear(tmp_path):
    with pytest.raises(data.DatasetNotFoundError):
        data.torchvision_dataset("cifar10", root=tmp_path, download=False)


@pytest.mark.cuda
def test_device_loader_on_cuda(c10_train):
    split = c10_train.subset(512).resized(16)
    cpu = list(data.DeviceLoader(split, 128, "cpu", seed=0))
    gpu = list(data.DeviceLoader(split, 128, "cuda", seed=0))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(yc, yg.cpu()) and torch.allclose(xc, xg.cpu())
