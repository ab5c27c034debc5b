#!/usr/bin/env bash
# One call on a lent GPU machine (README, "GPU"): the CUDA tests and the CUDA benchmark, one JSON report in $OUT.
#
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=420)
#
# The machine has CUDA torch, OpenCV headless, numpy, tifffile, tqdm and Pillow but no package registry; the wheels
# the engine still imports (pyexiv2, which carries its own libexiv2) travel in .whl/ (fetched here with `bash bench/gpu.sh --fetch-wheels`).
# Nothing here imports Qt. Every step has its own time limit, so the whole run stays under about 5 minutes, and
# a failing step is recorded in the report instead of stopping the others.
set -u
cd "$(dirname "$0")/.."
WHEELS="pyexiv2==2.16.0"

if [ "${1:-}" = "--fetch-wheels" ]; then   # on the development machine, with pip's network access
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $WHEELS
    exit $?
fi

OUT="${OUT:-$PWD/gpu-out}"
# A dry run of the plumbing without a GPU:
#   LUTFUSE_GPU_DEVICE=cpu LUTFUSE_GPU_SIZE=160x90 LUTFUSE_GPU_HQ_SIZE=96x64 LUTFUSE_GPU_REPEAT=1 bash bench/gpu.sh
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
# only when missing: a machine that has the package (this one, in a dry run) keeps its own build
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import pyexiv2" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        || echo "wheel install failed"
fi
# the repository root is the `lutfuse` package: make it importable under that name wherever the tree was copied
mkdir -p /tmp/lutfuse-pkg && ln -sfn "$PWD" /tmp/lutfuse-pkg/lutfuse
export PYTHONPATH="/tmp/lutfuse-pkg:$SITE${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.csv"
python3 - <<'PY'
import cv2, numpy, torch
import lutfuse.core.cli  # the whole CLI imports without Qt
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "| opencv", cv2.__version__, "| numpy", numpy.__version__, "| threads", torch.get_num_threads())
PY

step "CUDA tests (pytest -m cuda)"
timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider -p no:pytest-qt -o addopts="" tests/test_device.py \
    --junitxml="$OUT/cuda-tests.xml"
echo "pytest exit $?"

step "bench: UHD, 3 frames, CUDA (precision auto = float16 renders)"
timeout 150 python3 -m lutfuse bench --device "$DEVICE" --size "$SIZE" --frames 3 --repeat "$REPEAT" \
    --json "$OUT/bench-cuda.json" --force
echo "bench exit $?"

step "bench: UHD, CUDA, float32 renders"
timeout 90 python3 -m lutfuse bench --device "$DEVICE" --precision float32 --size "$SIZE" --frames 3 --repeat "$REPEAT" \
    --json "$OUT/bench-cuda-fp32.json" --force
echo "bench exit $?"

step "bench: HQ export, 24 MP, CUDA"
timeout 120 python3 -m lutfuse bench --hq --device "$DEVICE" --size "$HQ_SIZE" --frames 3 --repeat 1 \
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
for name in ("bench-cuda", "bench-cuda-fp32", "bench-hq"):
    path = out / f"{name}.json"
    report[name] = json.loads(path.read_text()) if path.is_file() else None
(out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
for name in ("bench-cuda", "bench-cuda-fp32", "bench-hq"):
    for run in (report[name] or {}).get("runs", []):
        for target in run["targets"]:
            print(name, "PASS" if target["met"] else "FAIL", target["check"])
print("report:", out / "report.json", "| tests:", report.get("cuda_tests"))
PY
echo "done in $(( $(date +%s) - START )) s"
