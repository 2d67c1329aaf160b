"""CPU benchmark of the Gaussian kernel sum: compile time and time per call, ours beside the original pykeops.

Each implementation runs in a fresh process with an empty kernel cache, so the first call includes compilation.
Usage: python benchmarks/bench_cpu.py [--keops-python /path/to/venv-with-pykeops-2.3/bin/python] [--sizes 10000 100000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def worker(sizes, repeats):
    import numpy as np
    from pykeops.numpy import Genred

    rng = np.random.default_rng(0)
    formula, aliases = "Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"]
    result = {"calls": {}}
    g = Genred(formula, aliases, reduction_op="Sum", axis=1)
    x, y, b = (rng.random((100, d), dtype=np.float32) for d in (3, 3, 1))
    t0 = time.perf_counter()
    g(x, y, b)
    t1 = time.perf_counter()
    g(x, y, b)
    t2 = time.perf_counter()
    result["compile_s"] = (t1 - t0) - (t2 - t1)
    for n in sizes:
        x, y = rng.random((n, 3), dtype=np.float32), rng.random((n, 3), dtype=np.float32)
        b = rng.random((n, 1), dtype=np.float32)
        g(x, y, b)  # warm-up at this size
        times = []
        for _ in range(repeats if n <= 20000 else max(1, repeats // 3)):
            t = time.perf_counter()
            g(x, y, b)
            times.append(time.perf_counter() - t)
        result["calls"][str(n)] = min(times)
    return result


def run(python, sizes, repeats):
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        env["KEOPS_CACHE_FOLDER"] = cache
        cmd = [python, os.path.abspath(__file__), "--worker", "--repeats", str(repeats), "--sizes", *map(str, sizes)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=cache).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--keops-python", help="python of an environment with the original pykeops installed")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.sizes, a.repeats)))
        return
    results = {"ours": run(sys.executable, a.sizes, a.repeats)}
    if a.keops_python:
        results["pykeops 2.3"] = run(a.keops_python, a.sizes, a.repeats)
    print(f"Gaussian kernel sum, D=3, float32, {os.cpu_count()} cores; times are the best of several calls")
    names = list(results)
    print(f"{'measure':<28}" + "".join(f"{n:>16}" for n in names) + ("      ratio" if len(names) > 1 else ""))

    def row(label, values, fmt, ratio=True):
        line = f"{label:<28}" + "".join(f"{fmt(v):>16}" for v in values)
        if ratio and len(values) > 1:
            line += f"  {values[1] / values[0]:>8.1f}x"
        print(line)

    row("compile (first - second)", [results[n]["compile_s"] for n in names], lambda v: f"{v * 1e3:.1f} ms")
    for size in map(str, a.sizes):
        row(f"call M=N={size}", [results[n]["calls"][size] for n in names], lambda v: f"{v * 1e3:.2f} ms")
        row("  pairs per second", [int(size) ** 2 / results[n]["calls"][size] for n in names], lambda v: f"{v:.3g}", False)
    if len(names) > 1:
        print("ratio = pykeops 2.3 time / our time (> 1: ours is faster)")


if __name__ == "__main__":
    main()
