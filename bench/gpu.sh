#!/usr/bin/env bash
# One call on a lent GPU machine (README, "GPU"): the CUDA tests and the CUDA benchmark, one JSON report in $OUT.
#
#   run(command="bash bench/gpu.sh", carry=["vendor/wheels"], timeout_s=420)
#
# The machine has CUDA torch, OpenCV headless, numpy, tifffile, tqdm, Pillow and pytest but no package registry
# and no Qt; the one wheel the engine still imports there, pyexiv2 (it carries its own libexiv2), travels in the
# git-ignored vendor/wheels/ (fetched here, once, with `bash bench/gpu.sh --fetch-wheels`, for CPython 3.11 and
# 3.12; the script installs the one that matches the machine's python3, without a registry).
# Nothing here imports Qt. Every step has its own time limit, so the whole run stays under about 5 minutes, and
# a failing step is recorded in the report instead of stopping the others.
#
#   bash bench/gpu.sh --dry-run   # here, without a GPU: the same steps on the CPU at small sizes (proves the
#                                 # imports, the wheel install and the report), CUDA-only parts skipped
set -u
cd "$(dirname "$0")/.."
WHEELS="pyexiv2==2.16.0"
WHEEL_DIR=vendor/wheels

if [ "${1:-}" = "--fetch-wheels" ]; then   # on the development machine, with pip's network access
    for version in 3.11 3.12; do
        python3 -m pip download --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEEL_DIR" $WHEELS || exit $?
    done
    exit 0
fi

DRY=0
SCALE=1   # time limits are SCALE × the GPU machine's
if [ "${1:-}" = "--dry-run" ]; then
    DRY=1
    SCALE=4   # a shared CPU box is far slower than the GPU machine's 16 idle cores
    export LUTFUSE_GPU_DEVICE="${LUTFUSE_GPU_DEVICE:-cpu}" LUTFUSE_GPU_SIZE="${LUTFUSE_GPU_SIZE:-320x180}" \
        LUTFUSE_GPU_HQ_SIZE="${LUTFUSE_GPU_HQ_SIZE:-192x128}" LUTFUSE_GPU_REPEAT="${LUTFUSE_GPU_REPEAT:-1}"
fi
OUT="${OUT:-$PWD/gpu-out}"
DEVICE="${LUTFUSE_GPU_DEVICE:-cuda}"
SIZE="${LUTFUSE_GPU_SIZE:-3840x2160}"
HQ_SIZE="${LUTFUSE_GPU_HQ_SIZE:-6000x4000}"
REPEAT="${LUTFUSE_GPU_REPEAT:-7}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1
START=$(date +%s)
step() { echo; echo "=== $1 ($(( $(date +%s) - START )) s)"; }

step "environment"
SITE=/tmp/lutfuse-site
# only when missing, and only the wheels built for this python3 (cpXY) or for any (py3-none)
TAG=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
if ! python3 -c "import pyexiv2" 2>/dev/null; then
    FOUND=$(ls "$WHEEL_DIR"/*-"$TAG"-*.whl "$WHEEL_DIR"/*-py3-none-*.whl 2>/dev/null)
    if [ -n "$FOUND" ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $FOUND \
            || echo "wheel install failed"
    else
        echo "no $TAG wheels in $WHEEL_DIR (run bash bench/gpu.sh --fetch-wheels here first)"
    fi
fi
# the repository root is the `lutfuse` package: make it importable under that name wherever the tree was copied
mkdir -p /tmp/lutfuse-pkg && ln -sfn "$PWD" /tmp/lutfuse-pkg/lutfuse
export PYTHONPATH="/tmp/lutfuse-pkg:$SITE${PYTHONPATH:+:$PYTHONPATH}"
[ "$DRY" = 1 ] || nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.csv"
python3 - <<'PY'
import cv2, numpy, torch
import lutfuse.core.cli  # the whole CLI imports without Qt
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "| opencv", cv2.__version__, "| numpy", numpy.__version__, "| threads", torch.get_num_threads())
PY

step "CUDA tests (pytest -m cuda; skipped in a dry run without CUDA)"
timeout $(( 150 * SCALE )) python3 -m pytest -q -m cuda -p no:cacheprovider -p no:pytest-qt -o addopts="" tests/test_device.py \
    --junitxml="$OUT/cuda-tests.xml"
echo "pytest exit $?"

step "bench: UHD, 3 frames, CUDA (precision auto = float16 renders)"
timeout $(( 150 * SCALE )) python3 -m lutfuse bench --device "$DEVICE" --size "$SIZE" --frames 3 --repeat "$REPEAT" \
    --json "$OUT/bench-cuda.json" --force
echo "bench exit $?"

step "bench: UHD, CUDA, float32 renders"
timeout $(( 90 * SCALE )) python3 -m lutfuse bench --device "$DEVICE" --precision float32 --size "$SIZE" --frames 3 --repeat "$REPEAT" \
    --json "$OUT/bench-cuda-fp32.json" --force
echo "bench exit $?"

step "bench: the GPU code path on the CPU in float16 (error vs float32 reported; small size)"
timeout $(( 60 * SCALE )) python3 -m lutfuse bench --device cpu --kernels torch --precision float16 --size 640x360 --frames 3 \
    --repeat 1 --json "$OUT/bench-cpu-torch-fp16.json" --force
echo "bench exit $?"

step "bench: HQ export, 24 MP, CUDA"
timeout $(( 120 * SCALE )) python3 -m lutfuse bench --hq --device "$DEVICE" --size "$HQ_SIZE" --frames 3 --repeat 1 \
    --json "$OUT/bench-hq.json" --force
echo "bench exit $?"

step "report"
python3 - "$OUT" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path

out = Path(sys.argv[1])
report = {}
xml = out / "cuda-tests.xml"
if xml.is_file():
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    report["cuda_tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    report["cuda_tests"]["failed"] = [c.get("name") for c in suite.iter("testcase")
                                      if c.find("failure") is not None or c.find("error") is not None]
for name in ("bench-cuda", "bench-cuda-fp32", "bench-cpu-torch-fp16", "bench-hq"):
    path = out / f"{name}.json"
    report[name] = json.loads(path.read_text()) if path.is_file() else None
(out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
for name in ("bench-cuda", "bench-cuda-fp32", "bench-cpu-torch-fp16", "bench-hq"):
    for run in (report[name] or {}).get("runs", []):
        for target in run["targets"]:
            print(name, "PASS" if target["met"] else "FAIL", target["check"])
print("report:", out / "report.json", "| tests:", report.get("cuda_tests"))
PY
echo "done in $(( $(date +%s) - START )) s"
