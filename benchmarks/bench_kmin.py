"""CPU benchmark of argKmin over K: compile time and best time per call, two builds side by side.

Each build runs in its own fresh process with an empty kernel cache; the processes alternate for --rounds rounds
and every figure is the minimum over rounds. The baseline skips K above --baseline-max-k (its compile time grows
steeply with K). Usage:
  python benchmarks/bench_kmin.py --baseline-python /work/main/.venv/bin/python [--rounds 2] [--ks 1,5,10,20,50]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SIZES = [(10_000, 1_000), (10_000, 10_000)]  # (M, N), D = 2


def worker(ks, repeats):
    import numpy as np
    from pykeops.numpy import Genred

    rng = np.random.default_rng(0)
    out = {}
    for k in ks:
        g = Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op="ArgKMin", axis=1, opt_arg=k)
        small = [rng.random((max(100, k), 2), dtype=np.float32) for _ in range(2)]
        t0 = time.perf_counter()
        g(*small)
        t1 = time.perf_counter()
        g(*small)
        t2 = time.perf_counter()
        res = {"compile_s": (t1 - t0) - (t2 - t1)}
        for m, n in SIZES:
            if n < k:  # K larger than the reduced size is an error
                continue
            x, y = rng.random((m, 2), dtype=np.float32), rng.random((n, 2), dtype=np.float32)
            g(x, y)
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                g(x, y)
                best = min(best, time.perf_counter() - t)
            res[f"{m}x{n}_s"] = best
        out[str(k)] = res
    return out


def run(python, ks, repeats):
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        env["KEOPS_CACHE_FOLDER"] = cache
        cmd = [python, os.path.abspath(__file__), "--worker", "--ks", ",".join(map(str, ks)), "--repeats", str(repeats)]
        res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=cache).stdout
    return json.loads(res.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--baseline-python", help="python of the environment to compare with")
    p.add_argument("--ks", default="1,5,10,20,50,100,1024")
    p.add_argument("--baseline-max-k", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    if a.worker:
        print(json.dumps(worker(ks, a.repeats)))
        return
    runs = {"ours": (sys.executable, ks)}
    if a.baseline_python:
        runs["baseline"] = (a.baseline_python, [k for k in ks if k <= a.baseline_max_k])
    best = {}
    for _ in range(a.rounds):
        for side, (python, side_ks) in runs.items():  # interleaved: ours, baseline, ours, baseline...
            for k, res in run(python, side_ks, a.repeats).items():
                for key, v in res.items():
                    cur = best.setdefault(side, {}).setdefault(k, {})
                    cur[key] = min(cur.get(key, float("inf")), v)
    keys = ["compile_s"] + [f"{m}x{n}_s" for m, n in SIZES]
    print(f"{'K':>5} " + " ".join(f"{key:>14} {'base/ours':>9}" for key in keys))
    for k in map(str, ks):
        ours, base = best["ours"][k], best.get("baseline", {}).get(k)
        cells = []
        for key in keys:
            if key not in ours:
                cells.append(f"{'-':>14} {'-':>9}")
                continue
            ratio = f"{base[key] / ours[key]:9.2f}" if base and key in base else f"{'-':>9}"
            cells.append(f"{ours[key]:14.4f} {ratio}")
        print(f"{k:>5} " + " ".join(cells))
    print(json.dumps(best))


if __name__ == "__main__":
    main()
