"""Scattered-data interpolation with a Gaussian radial basis function: KernelSolve, then a kernel sum.

Usage: python examples/rbf_interpolation.py [--n 5000] [--m 2000] [--sigma 0.1] [--alpha 1e-2] [--framework ...]
Samples f(x) = sin(3 x_0) cos(2 x_1) + x_0 x_1 at --n random points of the unit square, solves
(alpha Id + K) a = f(x) with K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)) by conjugate gradient without ever storing
K, and evaluates the interpolant s(t) = sum_j K(t, x_j) a_j at --m new points. Checks: the linear system holds on
--check random rows (evaluated densely in float64), and s is close to f at the new points; the script exits with
status 1 if either check fails.
"""

import argparse
import sys
import time

import numpy as np


def target(x):
    return (np.sin(3 * x[:, 0]) * np.cos(2 * x[:, 1]) + x[:, 0] * x[:, 1])[:, None]


FORMULA = "Exp(-g * SqDist(x, y)) * a"
ALIASES = ["x = Vi(2)", "y = Vj(2)", "a = Vj(1)", "g = Pm(1)"]


def interpolate_numpy(x, fx, t, gamma, alpha, eps):
    from pykeops.numpy import KernelSolve, LazyTensor

    g = np.array([gamma])
    a = KernelSolve(FORMULA, ALIASES, "a", axis=1)(x, x, fx, g, alpha=alpha, eps=eps)
    K_tj = (-gamma * LazyTensor(t[:, None, :]).sqdist(LazyTensor(x[None, :, :]))).exp()
    return a, K_tj @ a


def interpolate_torch(x, fx, t, gamma, alpha, eps):
    import torch

    from pykeops.torch import KernelSolve, LazyTensor

    x, fx, t = (torch.from_numpy(v) for v in (x, fx, t))
    g = torch.tensor([gamma], dtype=x.dtype)
    a = KernelSolve(FORMULA, ALIASES, "a", axis=1)(x, x, fx, g, alpha=alpha, eps=eps)
    K_tj = (-gamma * LazyTensor(t[:, None, :]).sqdist(LazyTensor(x[None, :, :]))).exp()
    return a.numpy(), (K_tj @ a).numpy()


def check(name, run, x, fx, t, args, rows):
    gamma = 1 / (2 * args.sigma**2)
    start = time.perf_counter()
    a, s = run(x, fx, t, gamma, args.alpha, args.eps)
    seconds = time.perf_counter() - start
    # The system on some rows, densely in float64: alpha a_r + sum_j K(x_r, x_j) a_j = f(x_r).
    K_rows = np.exp(-gamma * ((x[rows, None, :] - x[None, :, :]) ** 2).sum(-1))
    residual = np.abs(args.alpha * a[rows] + K_rows @ a - fx[rows]).max() / np.abs(fx).max()
    error = np.abs(s - target(t)).max() / np.abs(target(t)).max()
    ok = residual < 10 * args.eps and error < args.tol
    print(f"{name:8s} {seconds:8.3f} s   system residual {residual:.1e}   interpolation error {error:.1e}   "
          f"{'ok' if ok else 'FAILED'}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000, help="number of sample points")
    parser.add_argument("--m", type=int, default=2_000, help="number of evaluation points")
    parser.add_argument("--sigma", type=float, default=0.1, help="width of the Gaussian basis function")
    parser.add_argument("--alpha", type=float, default=1e-2, help="ridge regularisation (smaller: closer fit, more CG steps)")
    parser.add_argument("--eps", type=float, default=1e-6, help="conjugate gradient tolerance")
    parser.add_argument("--tol", type=float, default=1e-2, help="allowed max relative interpolation error")
    parser.add_argument("--check", type=int, default=200, help="number of rows of the system checked densely")
    parser.add_argument("--framework", choices=["numpy", "torch", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(0, 1, (args.n, 2))
    t = rng.uniform(0.05, 0.95, (args.m, 2))  # inside the hull of the samples
    fx = target(x)
    rows = rng.choice(args.n, size=min(args.check, args.n), replace=False)
    print(f"RBF interpolation, N = {args.n} samples, M = {args.m} evaluations, sigma = {args.sigma}, float64")

    ok = []
    if args.framework in ("numpy", "both"):
        ok.append(check("numpy", interpolate_numpy, x, fx, t, args, rows))
    if args.framework in ("torch", "both"):
        try:
            import torch  # noqa: F401

            import pykeops.torch  # noqa: F401
        except ImportError:
            print("torch is not importable: skipping pykeops.torch")
        else:
            ok.append(check("torch", interpolate_torch, x, fx, t, args, rows))
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
