"""GPU benchmark: Gaussian kernel sum (D=3, float32) and argKmin (K=10), ours beside dense torch and KeOps 2.3.

Each implementation runs in its own process (both are imported as `pykeops`), on the same device, with an empty
kernel cache: the first call includes compilation, which is reported apart. Dense torch runs in our process; it
cannot hold the (N, N) matrix at N = 1e6 (reported as OOM), so torch in row chunks of at most 1 GiB is timed too.

    python benchmarks/bench_gpu.py [--sizes 10000 100000 1000000] [--keops-path DIR | --keops-python PY] [--device cuda]

KeOps 2.3 runs with --keops-python (an interpreter whose pykeops is 2.3) or, with this interpreter, with --keops-path
(a folder holding pykeops 2.3 and keopscore 2.3, e.g. from pip install --target DIR, put first on PYTHONPATH).
--device cpu runs the same script on the CPU (a rehearsal without a GPU).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TASKS = ("gauss sum", "argKmin K=10")
CHUNK_ELEMENTS = 1 << 28  # dense torch in row chunks: at most 1 GiB of float32 per (rows, N) block


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, budget=1.0, max_reps=20):
    """Mean seconds per call after one warm-up call; (None, 'OOM') when the device runs out of memory."""
    import torch

    try:
        fn()
        sync(device)
        reps, start = 0, time.perf_counter()
        while reps < max_reps and (reps < 2 or time.perf_counter() - start < budget):
            fn()
            sync(device)
            reps += 1
        return (time.perf_counter() - start) / reps
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def problem(n, device):
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0)
    x, y, b = (torch.randn(n, d, generator=gen).to(device) for d in (3, 3, 1))
    return x, y, b, torch.tensor([0.5], device=device)


def sqdist(x, y):
    d = x @ y.T
    return d.mul_(-2).add_((x * x).sum(1, keepdim=True)).add_((y * y).sum(1)[None, :]).clamp_(min=0)


def dense(task, x, y, b, g):
    if task == "gauss sum":
        return sqdist(x, y).mul_(-g).exp_() @ b
    return sqdist(x, y).topk(10, dim=1, largest=False).indices


def chunked(task, x, y, b, g):
    import torch

    rows = max(1, CHUNK_ELEMENTS // max(1, y.shape[0]))
    return torch.cat([dense(task, x[k:k + rows], y, b, g) for k in range(0, x.shape[0], rows)])


def keops_worker(sizes, device_name):
    """Runs in a fresh process with whichever pykeops is first on the path; prints one JSON line."""
    import torch
    import pykeops
    from pykeops.torch import Genred

    device = torch.device(device_name)
    gauss = Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)"], axis=1)
    argk = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgKMin", opt_arg=10, axis=1)
    calls = {"gauss sum": lambda x, y, b, g: gauss(x, y, b, g), "argKmin K=10": lambda x, y, b, g: argk(x, y)}
    out = {"module": pykeops.__file__, "compile_s": {}, "call_s": {}, "check": {}, "scheme": {}}
    for task, fn in calls.items():
        args = problem(100, device)
        t0 = time.perf_counter()
        fn(*args)
        sync(device)
        t1 = time.perf_counter()
        fn(*args)
        sync(device)
        out["compile_s"][task] = (t1 - t0) - (time.perf_counter() - t1)
    for n in sizes:
        args = problem(n, device)
        for task, fn in calls.items():
            out["call_s"][f"{task}/{n}"] = timed(lambda: fn(*args), device)
            launch = getattr(getattr(pykeops, "common", None), "gpu", None)
            if launch is not None and getattr(launch, "last_launch", None):
                out["scheme"][f"{task}/{n}"] = launch.last_launch["scheme"]
            if n <= 10**4:  # against float64 dense torch
                got = fn(*args)
                ref = dense(task, *(a.double() for a in args))
                if task == "gauss sum":
                    err = ((got.double() - ref).abs().max() / ref.abs().max()).item()
                    out["check"][f"{task}/{n}"] = f"max rel err {err:.1e}"
                else:
                    same = (got.view(ref.shape) == ref).double().mean().item()
                    out["check"][f"{task}/{n}"] = f"indices equal {100 * same:.1f}%"
        del args
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("RESULT " + json.dumps(out))


def run_worker(pythonpath, sizes, device, python=sys.executable):
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory() as cache:  # empty caches: the first call compiles
        env["KEOPS_CACHE_FOLDER"] = cache  # ours
        env["HOME"] = cache  # KeOps 2.3 keeps its build folder under ~/.cache
        cmd = [python, os.path.abspath(__file__), "--worker", "--device", device, "--sizes", *map(str, sizes)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        return None
    return json.loads(lines[-1][len("RESULT "):])


def fmt(t):
    """Milliseconds; None: out of memory; 0: not run."""
    return f"{t * 1e3:10.2f}" if t else f"{'OOM' if t is None else '-':>10s}"


def ratio(a, b):
    return f"{a / b:8.1f}x" if a and b else f"{'-':>9s}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    p.add_argument("--device", default="cuda")
    p.add_argument("--ours-path", default="", help="folder put first on PYTHONPATH for our package (default: as installed)")
    p.add_argument("--keops-path", help="folder holding pykeops 2.3 and keopscore 2.3")
    p.add_argument("--keops-python", help="a Python interpreter whose pykeops is version 2.3")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        keops_worker(a.sizes, a.device)
        return
    import torch

    device = torch.device(a.device)
    ours = run_worker(a.ours_path, a.sizes, a.device)
    if ours is None:
        sys.exit("our benchmark process failed (output above)")
    compare = a.keops_path or a.keops_python
    theirs = run_worker(a.keops_path or "", a.sizes, a.device, a.keops_python or sys.executable) if compare else None
    if compare and theirs is None:
        print("KeOps 2.3 failed to run (output above): its columns are left empty")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name} | torch {torch.__version__} | float32, D = 3, times in ms per call (after a warm-up)")
    print(f"ours: {ours['module']}" + (f" | KeOps 2.3: {theirs['module']}" if theirs else ""))
    for task in TASKS:
        c2 = f"{theirs['compile_s'][task] * 1e3:.0f} ms" if theirs else "-"
        print(f"compile {task}: ours {ours['compile_s'][task] * 1e3:.0f} ms, KeOps 2.3 {c2}")
    print(f"{'task':14s} {'M=N':>8s} {'ours':>10s} {'scheme':>6s} {'KeOps 2.3':>10s} {'2.3/ours':>9s} {'dense':>10s} "
          f"{'dense/ours':>10s} {'chunked':>10s} {'chunk/ours':>10s}  {'pairs/s':>8s}  check")
    for n in a.sizes:
        args = problem(n, device)
        for task in TASKS:
            key = f"{task}/{n}"
            t = ours["call_s"][key]
            k = theirs["call_s"].get(key) if theirs else 0
            # 0: not tried (the matrix exceeds the device's memory, or torch in chunks would take minutes)
            gpu = device.type == "cuda"
            td = timed(lambda: dense(task, *args), device) if n * n * 4 <= ((64 if gpu else 2) << 30) else 0
            slow = n > 10**5 and task != "gauss sum" if gpu else n > 2 * 10**4
            tc = timed(lambda: chunked(task, *args), device, max_reps=3) if not slow else 0
            pairs = f"{n * n / t:8.1e}" if t else f"{'-':>8s}"
            check = ours["check"].get(key, "") + (f" | 2.3: {theirs['check'][key]}" if theirs and key in theirs["check"] else "")
            print(f"{task:14s} {n:8.0e} {fmt(t)} {ours['scheme'].get(key, '-'):>6s} {fmt(k)} {ratio(k, t)} {fmt(td)} "
                  f"{ratio(td, t):>10s} {fmt(tc)} {ratio(tc, t):>10s}  {pairs}  {check}")
        del args
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
