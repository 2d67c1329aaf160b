#!/usr/bin/env bash
# GPU check, on a machine with a GPU: builds pykeops without pip or network (the LLVM CPU backend only where LLVM's
# development files exist, else KEOPS_CPU_BACKEND=OFF), runs the GPU tests, then times the Gaussian kernel sum
# (D=3, float32) and an argKmin (K=10) against dense torch on the same GPU for M = N = 1e4, 1e5, 1e6, printing a
# table of times and ratios. Dense torch runs out of memory at 1e6: that is reported, and torch in row chunks is
# timed as well.
#
# Needs: python with torch (CUDA), pybind11, numpy, cmake (ninja if present), pytest for the tests, libnvrtc (the
# nvidia-cuda-nvrtc wheel torch depends on, or CUDA_HOME).
# Usage: benchmarks/gpu_check.sh [--no-tests] [--no-bench] [--without-gpu]
#   --without-gpu: rehearsal on a machine without a GPU: build, import, the tests (GPU ones skip), no timings.
# Environment: PYTHON (default python3), BUILD_DIR (default build/gpu_check), KEOPS_CACHE_FOLDER,
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
  echo "== timings (float32, D = 3; times per call after a warm-up, kernels compiled beforehand)"
  "$PY" - <<'EOF' || status=1
import time
import torch
from pykeops.common import gpu
from pykeops.torch import Genred

dev = torch.device("cuda", 0)
gauss = Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)"], axis=1)
argk = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgKMin", opt_arg=10, axis=1)
CHUNK_ELEMENTS = 1 << 28  # torch in row chunks: at most 1 GiB of float32 per (rows, N) block


def timed(fn, budget=1.0, max_reps=20):
    fn()  # warm-up (and compilation)
    torch.cuda.synchronize()
    reps, start = 0, time.perf_counter()
    while reps < max_reps and (reps < 2 or time.perf_counter() - start < budget):
        fn()
        torch.cuda.synchronize()
        reps += 1
    return (time.perf_counter() - start) / reps


def sqdist(x, y):
    d = x @ y.T
    return d.mul_(-2).add_((x * x).sum(1, keepdim=True)).add_((y * y).sum(1)[None, :]).clamp_(min=0)


def dense_gauss(x, y, b, g):
    return sqdist(x, y).mul_(-g).exp_() @ b


def dense_argk(x, y):
    return sqdist(x, y).topk(10, dim=1, largest=False).indices


def chunked(fn, x, *rest):
    rows = max(1, CHUNK_ELEMENTS // max(1, rest[0].shape[0]))
    return torch.cat([fn(x[k:k + rows], *rest) for k in range(0, x.shape[0], rows)])


def try_time(fn):
    try:
        t = timed(fn)
        return t, f"{t * 1e3:10.2f}"
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None, "       OOM"


rows = []
for n in (10**4, 10**5, 10**6):
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(n, 3, device=dev, generator=gen)
    y = torch.randn(n, 3, device=dev, generator=gen)
    b = torch.randn(n, 1, device=dev, generator=gen)
    g = torch.tensor([0.5], device=dev)
    for task, keops, dense, args in (("gauss sum", gauss, dense_gauss, (x, y, b, g)), ("argKmin K=10", argk, dense_argk, (x, y))):
        tk = timed(lambda: keops(*args))
        scheme = gpu.last_launch["scheme"]
        td, sd = try_time(lambda: dense(*args))  # 1e6: a (1e6, 1e6) matrix is 4 TB, torch raises OOM at once
        tc, sc = try_time(lambda: chunked(dense, *args)) if not (task.startswith("argK") and n >= 10**6) else (None, "    (skip)")
        check = ""
        if n <= 10**4:
            ref, got = dense(*args), keops(*args)
            if task.startswith("gauss"):
                check = f"max rel err {((got - ref).abs().max() / ref.abs().max()).item():.1e}"
            else:
                check = f"indices equal {(got == ref).float().mean().item() * 100:.1f}%"
        rows.append((task, n, tk, scheme, td, sd, tc, sc, check))
        torch.cuda.empty_cache()

print(f"{'task':14s} {'M=N':>8s} {'KeOps ms':>10s} {'scheme':>6s} {'dense ms':>10s} {'dense/KeOps':>11s} "
      f"{'chunked ms':>10s} {'chunked/KeOps':>13s}  check")
for task, n, tk, scheme, td, sd, tc, sc, check in rows:
    r1 = f"{td / tk:11.1f}" if td else f"{'-':>11s}"
    r2 = f"{tc / tk:13.1f}" if tc else f"{'-':>13s}"
    print(f"{task:14s} {n:8.0e} {tk * 1e3:10.2f} {scheme:>6s} {sd} {r1} {sc} {r2}  {check}")
EOF
fi
exit $status
