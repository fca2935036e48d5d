#!/usr/bin/env bash
# The GPU checks of issue 3 in one short run, for a session that is lent a CUDA machine.
#
# The device gets this checkout only (not ../shared) and has python3 with torch, torchvision,
# matplotlib, pytest and tqdm but nothing can be installed from the network there. So, here first:
#
#   mkdir -p .devdata && cp ../shared/data/*.npz .devdata/      # 24 MB, git-ignored
#
# then on the device (the `device` tool's run, with carry [".devdata"], timeout_s ~ 480):
#
#   bash bench/gpu_check.sh
#
# It prints the environment, runs the CUDA-marked tests (test modules whose optional imports are
# missing there are reported, not fatal) and the training benchmark against the reference loop,
# and copies the logs to $OUT when that is set. Record the results in docs/PERFORMANCE.md.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KDTEACH_DATA="${KDTEACH_DATA:-$PWD/.devdata}" KDTEACH_DOWNLOAD=0 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export KDTEACH_CACHE="${TMPDIR:-/tmp}/kdteach-cache" KDTEACH_RESULTS="${TMPDIR:-/tmp}/kdteach-results"
PY="${PYTHON:-python3}"
LOG="${OUT:-${TMPDIR:-/tmp}}"
mkdir -p "$LOG"
STEPS="${STEPS:-50}"

"$PY" - <<'EOF' 2>&1 | tee "$LOG/gpu_env.txt"
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
for name in ("torchvision", "numpy", "matplotlib", "tqdm", "pytest", "ipywidgets", "captum", "nbformat", "nbclient"):
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '?')}")
    except ImportError as exc:
        print(f"{name} MISSING ({exc})")
EOF

# CUDA-marked tests; --continue-on-collection-errors keeps the other modules running when one
# needs a package the device lacks (the log names it).
"$PY" -m pytest tests -m cuda -q -p no:cacheprovider --continue-on-collection-errors -rs 2>&1 \
    | tee "$LOG/gpu_tests.txt"
tests_rc=${PIPESTATUS[0]}

"$PY" bench/bench_train.py --device "${DEVICE:-cuda}" --steps "$STEPS" 2>&1 | tee "$LOG/gpu_bench.txt"
bench_rc=${PIPESTATUS[0]}

echo "gpu_check: tests exit $tests_rc, bench exit $bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
