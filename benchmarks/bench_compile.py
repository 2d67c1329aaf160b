"""Compile time of CPU kernels against formula size: nested Sin, flat sums of Exp terms, Gaussian sums (D), argKmin (K), 10-NN (D).

Each cell is the first call of get_kernel on a fresh disk cache folder with the memory cache cleared (minimum over
--repeats, in a subprocess per interpreter and repeat, interpreters interleaved), with the per-phase split from
_engine.compile_phases where the engine has it (parse, lower, llvm_ir, llvm_opt, codegen, link).
With --baseline PYTHON (e.g. /work/main/.venv/bin/python) the same cells run on that interpreter too and the table
gives the ratio baseline / ours.
Usage: python benchmarks/bench_compile.py [--baseline PYTHON] [--repeats 3] [--timeout 120] [--quick]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time


def nested_sin(n):
    f = "(x-y)"
    for _ in range(n):
        f = f"Sin({f})"
    return f"Sum_Reduction({f},0)", ["x = Vi(1)", "y = Vj(1)"]


def flat_exp(n):
    terms = "+".join(f"Exp(-(x-y)*{k + 1})" for k in range(n))
    return f"Sum_Reduction({terms},0)", ["x = Vi(1)", "y = Vj(1)"]


def gaussian(d):
    return "Sum_Reduction(Exp(-SqDist(x,y))*b,0)", [f"x = Vi({d})", f"y = Vj({d})", "b = Vj(1)"]


def gaussian_grad(d):
    return "Sum_Reduction(Grad(Exp(-SqDist(x,y))*b,x,e),0)", [f"x = Vi({d})", f"y = Vj({d})", "b = Vj(1)", "e = Vi(1)"]


def knn(k):
    return f"ArgKMin_Reduction(SqDist(x,y),{k},0)", ["x = Vi(3)", "y = Vj(3)"]


def knn_dim(d):
    return "ArgKMin_Reduction(SqDist(x,y),10,0)", [f"x = Vi({d})", f"y = Vj({d})"]


FAMILIES = {"Sin^n(x-y)": nested_sin, "sum of n Exp": flat_exp, "Gaussian, D": gaussian,
            "Gaussian grad, D": gaussian_grad, "ArgKMin, K": knn, "10-NN, D": knn_dim}
SIZES = {"Sin^n(x-y)": [10, 30, 100, 300, 1000], "sum of n Exp": [100, 1000, 10000],
         "Gaussian, D": [3, 100, 1000], "Gaussian grad, D": [3, 100], "ArgKMin, K": [10, 50, 1024],
         "10-NN, D": [64, 784, 10000]}
QUICK = {"Sin^n(x-y)": [10, 100, 300], "sum of n Exp": [100, 1000], "Gaussian, D": [3, 100],
         "Gaussian grad, D": [3], "ArgKMin, K": [10], "10-NN, D": [784]}


def measure(family, n):
    """In a fresh process: seconds of the first get_kernel call, and the phases if the engine reports them."""
    from pykeops.common.engine import load_engine

    engine = load_engine()
    engine.set_cache_folder(tempfile.mkdtemp())
    engine.get_kernel("Sum_Reduction(Exp(x-y),0)", ["x = Vi(1)", "y = Vj(1)"], "float32")  # LLVM set up
    formula, aliases = FAMILIES[family](n)
    engine.clear_memory_cache()
    t = time.perf_counter()
    kernel = engine.get_kernel(formula, aliases, "float32")
    seconds = time.perf_counter() - t
    result = {"seconds": seconds, "chars": len(formula), "instructions": kernel.num_instructions}
    if hasattr(engine, "compile_phases"):
        result["phases"] = dict(engine.compile_phases(formula, aliases, "float32"))
    return result


def run_cell(python, family, n, timeout):
    cmd = [python, __file__, "--one", json.dumps([family, n])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except subprocess.TimeoutExpired:
        return None
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", help="another interpreter whose pykeops is compared")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120, help="seconds per cell and interpreter (then: timeout)")
    p.add_argument("--quick", action="store_true", help="fewer sizes")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(measure(*json.loads(a.one))))
        return
    pythons = {"ours": sys.executable}
    if a.baseline:
        pythons["base"] = a.baseline
    phase_names = ["parse", "lower", "reroll", "llvm_ir", "llvm_opt", "codegen", "link"]
    head = f"{'formula':<18}{'n':>6}{'chars':>8}{'instrs':>7}{'ours ms':>10}{'ms/instr':>9}"
    head += "".join(f"{ph:>9}" for ph in phase_names)
    if a.baseline:
        head += f"{'base ms':>10}{'base/ours':>10}"
    print(f"float32 first-call compile time, min of {a.repeats}; phases in ms (ours)")
    print(head)
    for family, sizes in (QUICK if a.quick else SIZES).items():
        for n in sizes:
            best = {name: None for name in pythons}
            for _ in range(a.repeats):
                for name, python in pythons.items():  # interleaved
                    if best[name] == "timeout":
                        continue
                    r = run_cell(python, family, n, a.timeout)
                    if r is None:
                        best[name] = "timeout"
                    elif best[name] is None or r["seconds"] < best[name]["seconds"]:
                        best[name] = r
            ours = best["ours"]
            if ours == "timeout":
                line = f"{family:<18}{n:>6}{'':>8}{'':>7}{'timeout':>10}{'':>9}" + " " * 9 * len(phase_names)
            else:
                ms = ours["seconds"] * 1e3
                line = f"{family:<18}{n:>6}{ours['chars']:>8}{ours['instructions']:>7}{ms:>10.1f}"
                line += f"{ms / ours['instructions']:>9.3f}"
                phases = ours.get("phases", {})
                line += "".join(f"{phases[ph] * 1e3:>9.1f}" if ph in phases else f"{'-':>9}" for ph in phase_names)
            if a.baseline:
                base = best["base"]
                if base == "timeout":
                    line += f"{'>' + str(int(a.timeout * 1e3)):>10}{'':>10}"
                else:
                    line += f"{base['seconds'] * 1e3:>10.1f}"
                    line += f"{base['seconds'] / ours['seconds']:>10.2f}" if ours != "timeout" else f"{'':>10}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
