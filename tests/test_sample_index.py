"""Per-sample indices on the data path (Method.needs_index; CRD's memory bank is indexed by them)."""

from __future__ import annotations

from types import MappingProxyType

import pytest
import torch

import kdteach.train as T
from kdteach import data as kdata
from kdteach.methods.base import Method, cross_entropy
from kdteach.train.budgets import get_budget

pytestmark = pytest.mark.usefixtures("offline_data")


def _split(n=40):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return kdata.ImageSplit(images, torch.arange(n) % 10, [str(i) for i in range(10)], "cifar10", "test")


@pytest.mark.parametrize("train", [True, False])
def test_loader_index_names_each_image(train):
    split = _split()
    plain = kdata.DeviceLoader(split, 16, train=train, seed=3, pad=0)
    indexed = kdata.DeviceLoader(split, 16, train=train, seed=3, pad=0, with_index=True)
    seen = []
    for (x0, y0), (x, y, idx) in zip(plain, indexed):
        assert idx.dtype == torch.int64 and idx.shape == y.shape
        assert torch.equal(x0, x) and torch.equal(y0, y)              # the index changes nothing else
        assert torch.equal(split.labels[idx], y)
        if not train:                                                 # no augmentation: the very images
            assert torch.equal(indexed._to_float(split.images[idx]), x)
        seen.append(idx)
    seen = torch.cat(seen)
    assert seen.unique().numel() == seen.numel()                      # each image at most once per epoch


def test_shuffle_loader_without_augmentation_yields_index():
    loader = T.trainer._ShuffleLoader(_split(), 8, seed=1, with_index=True)
    x, y, idx = next(iter(loader))
    assert torch.equal(loader._to_float(loader.images[idx]), x)


class _IndexProbe(Method):
    """Records ctx.index and train_labels; CE only."""

    name = "index_probe"
    needs_teacher = False
    needs_index = True
    defaults = MappingProxyType({})

    def build_extras(self, student, teacher, budget):
        self.seen_labels = self.train_labels
        self.indices = []
        return torch.nn.ModuleDict()

    def loss(self, ctx):
        self.indices.append(ctx.index.clone())
        assert torch.equal(ctx.y, self.labels[ctx.index])
        return {"ce": cross_entropy(ctx)}


def test_trainer_passes_indices_and_train_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "cache"))
    budget = get_budget("ci").replace(name="unit", train_subset=96, test_subset=32, batch_size=32, epochs=1)
    method = _IndexProbe()
    trainer = T.Trainer(method, T.build_model("tiny_student", 10, 0), None, budget, seed=0, progress=False,
                        device="cpu")
    method.labels = trainer.train_loader.labels
    assert method.seen_labels is method.labels and method.seen_labels.shape == (96,)
    trainer.fit()
    idx = torch.cat(method.indices)
    assert sorted(idx.tolist()) == list(range(96))                    # one epoch visits every image once


def test_methods_without_index_get_none(batch, pair):
    from kdteach.methods import get_method
    from kdteach.methods.base import batch_losses

    seen = {}

    class Probe(type(get_method("kd"))):
        def loss(self, ctx):
            seen["index"] = ctx.index
            return super().loss(ctx)

    batch_losses(Probe(), *pair, *batch)
    assert seen["index"] is None
