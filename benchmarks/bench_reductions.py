"""CPU benchmark of every kind of reduction, two builds side by side: compile time and best time per call.

Each build runs in its own fresh process with an empty kernel cache (so the first call includes compilation); the
processes alternate for --rounds rounds and every figure is the minimum over rounds, which keeps a noisy, shared
machine from favouring either side. Usage:
  python benchmarks/bench_reductions.py --baseline-python /path/to/other/venv/bin/python [--rounds 3] [--n 10000]
The baseline may be an earlier build of this project or the original pykeops (any pykeops with numpy.Genred).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# name: (formula, aliases, reduction_op, opt_arg, formula2)
WORKLOADS = {
    "Sum gauss D=3": ("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "Sum", None, None),
    "Sum gauss D=64": ("Exp(-SqDist(x,y))*b", ["x = Vi(64)", "y = Vj(64)", "b = Vj(1)"], "Sum", None, None),
    "Sum kahan D=3": ("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "Sum", None, None),
    "LogSumExp D=3": ("-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], "LogSumExp", None, None),
    "SumSoftMaxWeight": ("-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], "SumSoftMaxWeight", None, "b"),
    "Min_ArgMin D=3": ("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], "Min_ArgMin", None, None),
    "Max D=3": ("-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], "Max", None, None),
    "ArgKMin K=10 D=3": ("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], "ArgKMin", 10, None),
    "KMin_ArgKMin K=5 D=16": ("SqDist(x,y)", ["x = Vi(16)", "y = Vj(16)"], "KMin_ArgKMin", 5, None),
}


def worker(n, repeats):
    import numpy as np
    from pykeops.numpy import Genred

    rng = np.random.default_rng(0)
    out = {}
    for name, (formula, aliases, op, k, f2) in WORKLOADS.items():
        extra = {"sum_scheme": "kahan_scheme"} if "kahan" in name else {}
        g = Genred(formula, aliases, reduction_op=op, axis=1, opt_arg=k, formula2=f2, **extra)
        dims = [int(a.split("(")[1].rstrip(")")) for a in aliases]
        small = [rng.random((100, d), dtype=np.float32) for d in dims]
        t0 = time.perf_counter()
        g(*small)
        t1 = time.perf_counter()
        g(*small)
        t2 = time.perf_counter()
        args = [rng.random((n, d), dtype=np.float32) for d in dims]
        g(*args)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            g(*args)
            best = min(best, time.perf_counter() - t)
        out[name] = {"compile_s": (t1 - t0) - (t2 - t1), "call_s": best}
    return out


def run(python, n, repeats):
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        env["KEOPS_CACHE_FOLDER"] = cache
        cmd = [python, os.path.abspath(__file__), "--worker", "--n", str(n), "--repeats", str(repeats)]
        res = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=cache).stdout
    return json.loads(res.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--baseline-python", required=False, help="python of the environment to compare with")
    p.add_argument("--n", type=int, default=10_000, help="M = N of the timed calls")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.n, a.repeats)))
        return
    pythons = {"ours": sys.executable}
    if a.baseline_python:
        pythons["baseline"] = a.baseline_python
    best = {label: {} for label in pythons}
    for _ in range(a.rounds):
        for label, python in pythons.items():
            for name, r in run(python, a.n, a.repeats).items():
                b = best[label].setdefault(name, {"compile_s": float("inf"), "call_s": float("inf")})
                b["compile_s"], b["call_s"] = min(b["compile_s"], r["compile_s"]), min(b["call_s"], r["call_s"])
    labels = list(pythons)
    print(f"float32, M=N={a.n}, {os.cpu_count()} cores; minimum over {a.rounds} interleaved rounds")
    header = f"{'workload':<24}" + "".join(f"{lab + ' call':>15}{lab + ' compile':>17}" for lab in labels)
    print(header + ("   call ratio  compile ratio" if len(labels) > 1 else ""))
    for name in WORKLOADS:
        cells = [best[lab][name] for lab in labels]
        line = f"{name:<24}" + "".join(f"{c['call_s'] * 1e3:>12.2f} ms{c['compile_s'] * 1e3:>14.1f} ms" for c in cells)
        if len(cells) > 1:
            line += f"{cells[1]['call_s'] / cells[0]['call_s']:>12.2f}x{cells[1]['compile_s'] / cells[0]['compile_s']:>14.2f}x"
        print(line)
    if len(labels) > 1:
        print("ratio = baseline time / our time (> 1: ours is faster)")


if __name__ == "__main__":
    main()
