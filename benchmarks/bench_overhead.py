"""Per-call overhead of small reductions (M = N = 100, D = 3, float32 CPU): pykeops paths against dense torch.

Times, in microseconds, the Gaussian kernel sum a_i = sum_j exp(-|x_i - y_j|^2) b_j through: a LazyTensor
reduction, a prebuilt torch Genred, forward + backward (grad wrt x) of both, the same with dense torch, and a
prebuilt NumPy Genred. The contenders run interleaved (one call of each per round, after a warm-up) and each
reports its minimum over the rounds; ratios are to the dense torch time of the same kind (forward or
forward + backward). Usage: python benchmarks/bench_overhead.py [--n 100] [--rounds 2000] [--threads 1]
"""
import argparse
import time

import numpy as np
import torch

from pykeops.numpy import Genred as NumpyGenred
from pykeops.torch import Genred, LazyTensor

FORMULA = "Exp(-SqDist(x,y))*b"
ALIASES = ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"]


def contenders(n):
    torch.manual_seed(0)
    x, y, b = torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 1)
    xg = x.clone().requires_grad_(True)
    g = Genred(FORMULA, ALIASES, reduction_op="Sum", axis=1)
    xn, yn, bn = x.numpy(), y.numpy(), b.numpy()
    gn = NumpyGenred(FORMULA, ALIASES, reduction_op="Sum", axis=1)

    def lazy(x):
        x_i, y_j, b_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
        return ((-((x_i - y_j) ** 2).sum(-1)).exp() * b_j).sum(dim=1)

    def dense(x, y=y, b=b):
        return torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b

    def backward(f):
        def run():
            f(xg).sum().backward()
            xg.grad = None
        return run

    forward = {
        "dense torch": lambda: dense(x),
        "LazyTensor": lambda: lazy(x),
        "Genred (torch)": lambda: g(x, y, b),
        "Genred (numpy)": lambda: gn(xn, yn, bn),
    }
    both = {
        "dense torch": backward(dense),
        "LazyTensor": backward(lazy),
        "Genred (torch)": backward(lambda x: g(x, y, b)),
    }
    # Same results, or the timings mean nothing.
    ref = dense(x.double(), y.double(), b.double()).float()
    for name, f in forward.items():
        out = torch.as_tensor(f())
        assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5), name
    return forward, both


def interleaved_minima(fns, rounds, warmup=50):
    for f in fns.values():
        for _ in range(warmup):
            f()
    best = {name: float("inf") for name in fns}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, f in fns.items():
            t = clock()
            f()
            best[name] = min(best[name], clock() - t)
    return {name: t / 1e3 for name, t in best.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (dense torch)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    forward, both = contenders(a.n)
    print(f"M = N = {a.n}, D = 3, float32, CPU, torch threads {a.threads}; min of {a.rounds} interleaved rounds")
    print(f"{'':<40}{'us':>10}{'/ dense':>10}")
    for title, fns in (("forward", forward), ("forward + backward (dx)", both)):
        times = interleaved_minima(fns, a.rounds)
        for name, t in times.items():
            print(f"{title + ': ' + name:<40}{t:>10.2f}{t / times['dense torch']:>10.2f}")


if __name__ == "__main__":
    main()
