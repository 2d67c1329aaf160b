#!/usr/bin/env bash
# GPU check, on a machine with a GPU: builds pykeops without pip or network (the LLVM CPU backend only where LLVM's
# development files exist, else KEOPS_CPU_BACKEND=OFF), runs the GPU tests, then times the Gaussian kernel sum
# (D=3, float32) and an argKmin (K=10) against dense torch (and KeOps 2.3 when KEOPS23_DIST is given) on the same GPU
# for M = N = 1e4, 1e5, 1e6 with benchmarks/bench_gpu.py, printing a table of times and ratios.
#
# Needs: python with torch (CUDA), pybind11, numpy, cmake (ninja if present), pytest for the tests, libnvrtc (the
# nvidia-cuda-nvrtc wheel torch depends on, or CUDA_HOME).
# Usage: benchmarks/gpu_check.sh [--no-tests] [--no-bench] [--without-gpu]
#   --without-gpu: rehearsal on a machine without a GPU: build, import, the tests (GPU ones skip), no timings.
# Environment: PYTHON (default python3), BUILD_DIR (default build/gpu_check), KEOPS_CACHE_FOLDER,
# KEOPS23_DIST (a folder with pykeops-2.3 and keopscore-2.3 from `pip download --no-deps pykeops==2.3 keopscore==2.3`),
# KEOPS_CPU_BACKEND=ON|OFF (default: ON where LLVM's development files are found).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
BUILD=${BUILD_DIR:-$ROOT/build/gpu_check}
RUN_TESTS=1
RUN_BENCH=1
NEED_GPU=1
for arg in "$@"; do
  case $arg in
    --no-tests) RUN_TESTS=0 ;;
    --no-bench) RUN_BENCH=0 ;;
    --without-gpu) NEED_GPU=0; RUN_BENCH=0 ;;
    *) echo "unknown option $arg"; exit 2 ;;
  esac
done
cd "$ROOT"
status=0

echo "== environment"
NEED_GPU=$NEED_GPU "$PY" - <<'EOF' || exit 1
import os, sys
import torch
ok = torch.cuda.is_available()
print(f"python {sys.version.split()[0]} | torch {torch.__version__} (CUDA {torch.version.cuda}) | "
      f"{torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0) if ok else 'none'}")
if not ok and os.environ["NEED_GPU"] == "1":
    sys.exit("torch sees no GPU: nothing to check")
EOF

echo "== build"
CPU_BACKEND=${KEOPS_CPU_BACKEND:-}
if [ -z "$CPU_BACKEND" ]; then
  CPU_BACKEND=OFF
  if [ -n "${LLVM_DIR:-}" ] || ls /usr/lib/llvm-*/lib/cmake/llvm/LLVMConfig.cmake >/dev/null 2>&1; then CPU_BACKEND=ON; fi
fi
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
command -v cmake >/dev/null 2>&1 || { echo "cmake is needed (pip install cmake)"; exit 1; }
PYBIND11_DIR=$("$PY" -m pybind11 --cmakedir) || { echo "pybind11 is needed (pip install pybind11)"; exit 1; }
mkdir -p "$BUILD"
t0=$(date +%s)
if ! cmake -S "$ROOT" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DKEOPS_BUILD_PYTHON=ON \
      -DKEOPS_CPU_BACKEND=$CPU_BACKEND -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$PYBIND11_DIR" \
      > "$BUILD/cmake.log" 2>&1 ||
   ! cmake --build "$BUILD" --target _engine -j "$(nproc)" > "$BUILD/build.log" 2>&1; then
  tail -40 "$BUILD/cmake.log" "$BUILD/build.log" 2>/dev/null
  echo "build failed"
  exit 1
fi
# The package: the Python sources plus the engine, first on PYTHONPATH.
SITE=$BUILD/site
rm -rf "$SITE" && mkdir -p "$SITE" && cp -r "$ROOT/python/pykeops" "$SITE/" && cp "$BUILD"/_engine*.so "$SITE/pykeops/"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export KEOPS_CACHE_FOLDER=${KEOPS_CACHE_FOLDER:-$BUILD/cache}
echo "built in $(( $(date +%s) - t0 )) s (CPU backend $CPU_BACKEND)"
NEED_GPU=$NEED_GPU "$PY" - <<'EOF' || exit 1
import os
import pykeops
from pykeops.common import gpu
s = gpu.status()
print("pykeops", pykeops.__file__, "| gpu_available", pykeops.config.gpu_available, "| nvrtc", s.get("nvrtc_path") or s.get("nvrtc_reason"))
if not pykeops.config.gpu_available and os.environ["NEED_GPU"] == "1":
    raise SystemExit("the GPU backend is not available: " + s["reason"])
for d in range(s["devices"]):
    print(f"device {d}:", gpu.engine().gpu_device_info(d))
EOF

if [ $RUN_TESTS = 1 ]; then
  echo "== GPU tests"
  if "$PY" -c "import pytest" 2>/dev/null; then
    "$PY" -m pytest -q -p no:cacheprovider -rs tests/python/test_gpu.py || status=1
  else
    echo "pytest is not installed: tests skipped"
  fi
fi

if [ $RUN_BENCH = 1 ]; then
  echo "== timings (benchmarks/bench_gpu.py)"
  KEOPS23_ARGS=()
  if [ -n "${KEOPS23_DIST:-}" ]; then  # pykeops 2.3 and keopscore 2.3 (sdists or wheels), for the comparison
    if "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$BUILD/keops23" "$KEOPS23_DIST"/*; then
      KEOPS23_ARGS=(--keops-path "$BUILD/keops23")
    else
      echo "KeOps 2.3 could not be installed from $KEOPS23_DIST: compared with dense torch only"
    fi
  fi
  "$PY" "$ROOT/benchmarks/bench_gpu.py" --ours-path "$SITE" "${KEOPS23_ARGS[@]}" || status=1
fi
exit $status
