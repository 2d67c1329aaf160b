"""Cost of symbolic derivatives: the Gaussian kernel sum, its gradient and its gradient of gradient, side by side.

Prints node counts of the formulas (dag size after simplification) and the time per call of each kernel at
M = N (default 10,000, float32, D = 3), with the ratio to the forward kernel.
Usage: python benchmarks/bench_autodiff.py [--n 10000] [--repeats 5]
"""
import argparse
import time

import numpy as np

from pykeops.common.engine import load_engine
from pykeops.numpy import Genred

ALIASES = ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "e = Vi(1)", "u = Vi(3)"]
F = "Exp(-SqDist(x,y))*b"
FORMULAS = {
    "forward  F": F,
    "gradient Grad(F, x, e)": f"Grad({F},x,e)",
    "2nd order Grad((Grad(F,x,e)|u), x, e)": f"Grad((Grad({F},x,e)|u),x,e)",
}


def best_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    engine = load_engine()
    rng = np.random.default_rng(0)
    n = a.n
    args = [rng.random((n, d), dtype=np.float32) for d in (3, 3, 1, 1, 3)]
    print(f"M = N = {n}, float32, D = 3; best of {a.repeats} calls")
    print(f"{'formula':<40}{'canonical length':>18}{'scalar ops':>12}{'time':>12}{'ratio':>8}")
    base = None
    for name, formula in FORMULAS.items():
        g = Genred(formula, ALIASES, axis=1)
        canonical = engine.parse(formula, ALIASES)
        kernel = engine.get_kernel(f"Sum_Reduction({formula},0)", ALIASES, "float32")
        t = best_time(lambda: g(*args), a.repeats)
        base = base or t
        print(f"{name:<40}{len(canonical):>18}{kernel.num_instructions:>12}{t * 1e3:>10.2f}ms{t / base:>8.2f}")


if __name__ == "__main__":
    main()
