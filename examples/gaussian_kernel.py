"""Gaussian kernel sum a_i = sum_j exp(-|x_i - y_j|^2) b_j with pykeops (NumPy, then torch on CPU), checked densely.

Usage: python examples/gaussian_kernel.py [--m 100000] [--n 200000]
Each variant (LazyTensor and Genred, per framework) runs twice: the first call includes compiling the kernel
(or loading it from the engine's disk cache), the second reuses it. 100 random output rows are compared with
a dense float64 computation; the script exits with status 1 if the relative error exceeds --tol.
"""

import argparse
import sys
import time

import numpy as np

D = 3  # dimension of the points


def dense_rows(x, y, b, rows):
    """The selected output rows, in float64, without ever forming the full M x N matrix."""
    x, y, b = (a.astype(np.float64) for a in (x, y, b))
    return np.exp(-((x[rows, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b


def check(name, reduce, to_numpy, reference, rows, tol):
    """Run reduce() twice, print the timings and the error on the sampled rows; return whether it passed."""
    start = time.perf_counter()
    reduce()
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = to_numpy(reduce())
    second = time.perf_counter() - start
    error = np.max(np.abs(result[rows] - reference) / np.abs(reference))
    status = "ok" if error <= tol else "FAILED"
    print(f"{name:22s} first call {first:8.3f} s   second call {second:8.3f} s   max rel. error {error:.2e}  {status}")
    return error <= tol


def variants(module, x, y, b):
    """(name, callable) for the LazyTensor and the Genred formulation of the same reduction."""
    x_i, y_j, b_j = module.LazyTensor(x[:, None, :]), module.LazyTensor(y[None, :, :]), module.Vj(b)
    gaussian = module.Genred("Exp(-SqDist(x,y))*b", [f"x = Vi({D})", f"y = Vj({D})", "b = Vj(1)"], axis=1)
    return [
        ("LazyTensor", lambda: ((-((x_i - y_j) ** 2).sum(-1)).exp() * b_j).sum(dim=1)),
        ("Genred", lambda: gaussian(x, y, b)),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=100_000, help="number of points x_i (output rows)")
    parser.add_argument("--n", type=int, default=200_000, help="number of points y_j (reduced)")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest accepted relative error (float32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.random((args.m, D), dtype=np.float32)
    y = rng.random((args.n, D), dtype=np.float32)
    b = rng.random((args.n, 1), dtype=np.float32)
    rows = rng.choice(args.m, size=min(100, args.m), replace=False)
    reference = dense_rows(x, y, b, rows)
    print(f"Gaussian kernel sum, M = {args.m}, N = {args.n}, D = {D}, float32")

    import pykeops.numpy

    ok = [check(f"numpy {name}", fn, np.asarray, reference, rows, args.tol) for name, fn in variants(pykeops.numpy, x, y, b)]
    try:
        import torch

        import pykeops.torch
    except ImportError:
        print("torch is not importable: skipping pykeops.torch")
    else:
        tensors = (torch.from_numpy(a) for a in (x, y, b))
        ok += [
            check(f"torch {name}", fn, lambda t: t.numpy(), reference, rows, args.tol)
            for name, fn in variants(pykeops.torch, *tensors)
        ]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
