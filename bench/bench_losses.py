"""The cost of each distillation loss relative to the student's own training step.

For every loss in :data:`LOSSES` it times forward + backward of the loss alone (on inputs that
require gradients, as the student's outputs do) and divides by the time of the student's own
forward + backward (cross-entropy) at the same batch, on the ``gpu`` budget's pair
(``resnet32x4 -> resnet8x4``, CIFAR-100, 32x32) unless told otherwise. The teacher's outputs are
computed once, outside the timing, as the trainer computes them under ``torch.inference_mode()``.
A ratio of 0.05 means the loss adds 5 % to a student step. This is a benchmark, not a test.

Usage::

    python bench/bench_losses.py --device cpu --batch 128 --repeats 5
    python bench/bench_losses.py --device cuda --batch 128 --repeats 50

The list of losses is plain Python: one entry per public loss, a name and a function of the
student's and teacher's outputs (``Outputs``) returning a scalar.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import kdteach.losses as L
import kdteach.train as T
from kdteach.features import capture
from kdteach.methods.ab import stage_weights
from kdteach.methods.base import stage_names


@dataclass
class Outputs:
    """One batch: the student's logits and stage features (they carry gradients), the teacher's
    (no gradients), the labels."""

    student_logits: torch.Tensor
    teacher_logits: torch.Tensor
    student_features: list[torch.Tensor]
    teacher_features: list[torch.Tensor]
    y: torch.Tensor


#: name -> loss of one batch (a scalar), at each method's default hyper-parameters: every public loss
#: of kdteach.losses that trains a student from a teacher's outputs or from the labels.
LOSSES: dict[str, Callable[[Outputs], torch.Tensor]] = {
    "kd_loss": lambda o: L.kd_loss(o.student_logits, o.teacher_logits, 4.0),
    "dkd_loss": lambda o: L.dkd_loss(o.student_logits, o.teacher_logits, o.y, 1.0, 8.0, 4.0),
    "mlkd_class_loss": lambda o: L.mlkd_class_loss(o.student_logits, o.teacher_logits, 4.0),
    "mlkd_batch_loss": lambda o: L.mlkd_batch_loss(o.student_logits, o.teacher_logits, 4.0),
    "soft_target_loss (perm.)": lambda o: L.soft_target_loss(
        o.student_logits, L.permute_nontarget(L.softened_probs(o.teacher_logits, 4.0), o.y,
                                              torch.Generator(device="cpu").manual_seed(0)), 4.0),
    "tfkd_reg_loss": lambda o: L.tfkd_reg_loss(o.student_logits, o.y, 0.99, 20.0),
    "at_loss (3 stages)": lambda o: sum(L.at_loss(s, t) for s, t in zip(o.student_features, o.teacher_features)),
    "fitnet_loss (hint stage)": lambda o: L.fitnet_loss(o.student_features[1], o.teacher_features[1]),  # feat[2]
    "nst_loss (3 stages)": lambda o: sum(L.nst_loss(s, t) for s, t in zip(o.student_features, o.teacher_features)),
    # AB's stage 1 (3 stages, weights 2^(i-n+1)); the pair's connectors are identities. Timed on the
    # post-ReLU features: the cost of the squared hinge does not depend on the values.
    "ab_loss (3 stages)": lambda o: sum(w * L.ab_loss(s, t) for w, s, t in zip(
        stage_weights(len(o.student_features)), o.student_features, o.teacher_features)),
    # OFD (3 stages, weights 2^(i-n+1)), margins of unit-γ, zero-β BNs (−sqrt(2/π) per channel); the pair's
    # connectors (1x1 conv + BN) are the method's extras, not part of the loss. Timed on the post-ReLU features:
    # the partial L2's cost does not depend on the values.
    "ofd_loss (3 stages)": lambda o: sum(w * L.ofd_loss(s, t, _unit_margin(t.shape[1], t.device)) for w, s, t in zip(
        stage_weights(len(o.student_features)), o.student_features, o.teacher_features)),
    # ReviewKD's HCL on the 3 stages plus the pooled feature as a (B, D, 1, 1) map (mdistiller's targets); the
    # review path's ABF modules are the method's extras, not part of the loss. Timed on the post-ReLU features.
    "hcl_loss (3 stages + pool)": lambda o: L.hcl_loss(
        o.student_features + [o.student_features[-1].mean((2, 3), keepdim=True)],
        o.teacher_features + [o.teacher_features[-1].mean((2, 3), keepdim=True)]),
    # RKD on the penultimate vectors: the last stage's features average-pooled to (B, D), as "pool" is
    # (the pooling is timed with it; negligible next to the B^3 angle potential).
    # SP on the last stage's output (the benchmark's feat[-2]): two B x B Gram matrices of the flattened maps.
    "sp_loss (last stage)": lambda o: L.sp_loss(o.student_features[-1], o.teacher_features[-1]),
    "rkd_loss (pool)": lambda o: L.rkd_loss(o.student_features[-1].mean((2, 3)), o.teacher_features[-1].mean((2, 3))),
    "crd (16384 neg., 50k bank)": lambda o: crd_step(o),
    # SSKD's two loss functions on a batch split as a quarter normal views + three quarters rotated views (the
    # authors' 4-view batches), pooled last-stage features as embeddings; the projection heads and the rotated
    # views' forward passes are the method's cost, not the losses' (see PERFORMANCE.md).
    "sskd ss + tf losses": lambda o: sskd_losses(o),
}


def _unit_margin(channels: int, device: torch.device) -> torch.Tensor:
    """(C,) OFD margins of a BN with γ = 1, β = 0 (a fresh BN's), on ``device``."""
    return L.ofd_margin(torch.ones(channels, device=device), torch.zeros(channels, device=device))


def sskd_losses(o: Outputs) -> torch.Tensor:
    """``sskd_ss_loss`` on the (3n, n) similarity matrices of the pooled last-stage features (n = B // 4) plus
    ``sskd_tf_loss`` on the 3n "rotated" rows' logits."""
    n = o.student_logits.shape[0] // 4
    s, t = o.student_features[-1].mean((2, 3)), o.teacher_features[-1].mean((2, 3))
    a_s = L.contrastive_similarity(s[n:4 * n], s[:n])
    a_t = L.contrastive_similarity(t[n:4 * n], t[:n])
    tf = L.sskd_tf_loss(o.student_logits[n:4 * n], o.teacher_logits[n:4 * n], o.y[n:4 * n])
    return L.sskd_ss_loss(a_s, a_t) + tf


_CRD: dict = {}


def crd_step(o: Outputs, num_data: int = 50_000, classes: int = 100) -> torch.Tensor:
    """CRD's term at the paper's sizes (``crd`` defaults: 128-d heads, 16,384 negatives, momentum update) with
    a bank of ``num_data`` entries (full CIFAR-100: 50,000), on the average-pooled last stage features
    (the networks' ``"pool"``). Heads and bank are built once per device and feature sizes; their cost
    (heads forward + backward, sampling, the bank product, the update) is what is timed."""
    from types import SimpleNamespace

    from kdteach.methods import get_method
    from kdteach.methods.base import LossContext

    s, t = o.student_features[-1].mean((2, 3)), o.teacher_features[-1].mean((2, 3))
    key = (s.device, s.shape[1], t.shape[1])
    if key not in _CRD:
        g = torch.Generator().manual_seed(0)
        method = get_method("crd")
        method.train_labels = torch.randint(0, classes, (num_data,), generator=g).to(s.device)
        extras = method.build_extras(SimpleNamespace(feature_dim=s.shape[1]), SimpleNamespace(feature_dim=t.shape[1]),
                                     None).to(s.device)
        _CRD[key] = (method, extras, torch.randperm(num_data, generator=g)[:s.shape[0]].to(s.device))
    method, extras, index = _CRD[key]
    ctx = LossContext(x=None, y=o.y, student_logits=o.student_logits, teacher_logits=o.teacher_logits,
                      student_features={"pool": s}, teacher_features={"pool": t}, extras=extras,
                      hparams=method.hparams, index=index)
    out_s, out_t = method.contrast(ctx)
    return L.crd_nce_loss(out_s, num_data) + L.crd_nce_loss(out_t, num_data)


def timed(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    student = T.build_model(args.student, args.classes).to(dev, memory_format=torch.channels_last).train()
    teacher = T.build_model(args.teacher, args.classes).to(dev, memory_format=torch.channels_last).eval()
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=dev).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)
    s_names, t_names = stage_names(student, skip_first=True), stage_names(teacher, skip_first=True)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)

    def student_step():
        student.zero_grad(set_to_none=True)
        with amp:
            F.cross_entropy(student(x).float(), y).backward()

    base = timed(student_step, dev, args.repeats)
    with torch.inference_mode(), amp, capture(teacher, t_names) as store:
        t_logits = teacher(x).float()
        t_feats = [store[n].float() for n in t_names]
    with capture(student, s_names) as store:
        with amp:
            s_logits = student(x)
        s_feats = [store[n] for n in s_names]
    leaf_logits = s_logits.detach().float().requires_grad_(True)
    leaf_feats = [f.detach().float().requires_grad_(True) for f in s_feats]
    out = Outputs(leaf_logits, t_logits.clone(), leaf_feats, [t.clone() for t in t_feats], y)

    print(f"# kdteach bench_losses  {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# device {dev.type} ({platform.machine()}{', ' + torch.cuda.get_device_name(dev) if dev.type == 'cuda' else ''}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"{args.teacher} -> {args.student}, {args.classes} classes, batch {args.batch}, "
          f"{args.resolution}x{args.resolution}, median of {args.repeats}")
    print(f"# student forward+backward (cross-entropy): {1000 * base:.2f} ms")
    print(f"{'loss':<24}{'fwd+bwd ms':>12}{'ratio':>9}")
    print("-" * 45)
    worst = 0.0
    for name, fn in LOSSES.items():
        def step(fn=fn):
            for t in [out.student_logits, *out.student_features]:
                t.grad = None
            fn(out).backward()

        sec = timed(step, dev, args.repeats)
        worst = max(worst, sec / base)
        print(f"{name:<24}{1000 * sec:>12.3f}{sec / base:>9.3f}")
    print(f"# largest ratio {worst:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
