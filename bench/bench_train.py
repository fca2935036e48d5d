"""Training throughput: kdteach's path against the loop most KD repositories use, in the same run.

For each teacher -> student pair it measures images/s of

* student-only training (cross-entropy) and KD training (teacher forward + student step) with
  kdteach's trainer (:meth:`kdteach.train.Trainer.benchmark`): whole split on the device, batched
  crop/flip there, channels_last, teacher under ``torch.inference_mode()``, bf16 autocast on CUDA;
* the same two loops written the usual way (e.g. the CRD benchmark's ``train_student.py``): a torch
  ``DataLoader`` over a map-style dataset with per-sample transforms (crop with padding, flip,
  to-float, normalise; here :class:`kdteach.data.TensorImageDataset` over the offline split, since
  CIFAR cannot be downloaded everywhere), fp32, contiguous (NCHW) tensors, the teacher under
  ``torch.no_grad()``.

Both sides use the same batch size (``--batch``, 64 as in the benchmark), the same models and
the same loss (0.1·CE + 0.9·KD, T = 4), and time ``--steps`` steps after ``--warmup`` steps.
It prints images/s and the ratio kdteach / reference per pair. This is a benchmark, not a test.

Usage::

    python bench/bench_train.py --device cpu --steps 10 --pairs tiny resnet56 wrn resnet32x4
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

import kdteach.train as T
from kdteach import data as kdata
from kdteach.methods import get_method

PAIRS = {
    "tiny": ("tiny_teacher", "tiny_student"),
    "resnet56": ("resnet56", "resnet20"),
    "wrn": ("wrn_40_2", "wrn_16_2"),
    "resnet32x4": ("resnet32x4", "resnet8x4"),
}


def reference_loader(split: kdata.ImageSplit, batch: int, workers: int) -> torch.utils.data.DataLoader:
    """The usual per-sample pipeline: RandomCrop(pad=r/8) + flip + to float + normalise, per image."""
    from torchvision.transforms import v2

    mean, std = kdata.NORMALIZATION[split.name]
    r = split.resolution
    tf = v2.Compose([v2.RandomCrop(r, padding=r // 8), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize(mean, std)])
    ds = kdata.TensorImageDataset(split, transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                       pin_memory=False, persistent_workers=workers > 0)


def reference_throughput(teacher, student, loader, device, steps: int, warmup: int, kd: bool,
                         clock=time.perf_counter) -> float:
    """images/s of the usual loop: fp32, NCHW, teacher under no_grad (not inference_mode)."""
    student.train()
    if teacher is not None:
        teacher.eval()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    done, t0 = 0, None
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                sync()
                t0 = clock()
            x, y = x.to(device), y.to(device)
            logits = student(x)
            loss = F.cross_entropy(logits, y)
            if kd:
                with torch.no_grad():
                    t_logits = teacher(x)
                kl = F.kl_div(F.log_softmax(logits / 4, 1), F.softmax(t_logits / 4, 1), reduction="sum")
                loss = 0.1 * loss + 0.9 * kl * 16 / x.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    sync()
    return steps * loader.batch_size / (clock() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--workers", type=int, default=None,
                   help="reference DataLoader workers (the CRD benchmark uses 8; default min(8, cpus) with "
                        "--clock wall, 0 with --clock cpu so that all the work is counted)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or this process's CPU time (robust when other jobs load the machine; "
                        "use with --threads 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workers is None:
        args.workers = 0 if args.clock == "cpu" else min(8, os.cpu_count() or 1)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    device = torch.device(args.device)

    split = kdata.load_split("cifar10", train=True)
    if args.resolution != split.resolution:
        split = split.resized(args.resolution)
    budget = T.get_budget("ci").replace(name="bench", resolution=args.resolution, batch_size=args.batch,
                                        train_subset=None, test_subset=None, lr=0.05)
    print(f"# kdteach bench_train  {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"batch {args.batch}, {args.resolution}x{args.resolution}, steps {args.steps} (+{args.warmup} warm-up), "
          f"reference workers {args.workers}, clock {args.clock}")
    if hasattr(os, "getloadavg"):
        print(f"# load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"# command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    header = f"{'pair':<28} {'loop':<8} {'kdteach img/s':>14} {'reference img/s':>16} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    loader = reference_loader(split, args.batch, args.workers)
    for key in args.pairs:
        t_arch, s_arch = PAIRS[key]
        teacher = T.build_model(t_arch, 10, 1)
        for loop in ("student", "kd"):
            method = get_method(loop)
            student = T.build_model(s_arch, 10, 0)
            tr = T.Trainer(method, student, teacher if loop == "kd" else None, budget, device=device,
                           progress=False, train_split=split, test_split=split.subset(args.batch))
            ours = tr.benchmark(steps=args.steps, warmup=args.warmup, clock=clock)["images_per_s"]
            ref_student = T.build_model(s_arch, 10, 0).to(device)
            ref_teacher = T.build_model(t_arch, 10, 1).to(device) if loop == "kd" else None
            ref = reference_throughput(ref_teacher, ref_student, loader, device, args.steps, args.warmup, loop == "kd",
                                       clock)
            print(f"{t_arch + ' -> ' + s_arch:<28} {loop:<8} {ours:>14.0f} {ref:>16.0f} {ours / ref:>5.2f}x",
                  flush=True)
    if hasattr(os, "getloadavg"):
        print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
