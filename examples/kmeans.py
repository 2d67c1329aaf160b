"""K-means (Lloyd's algorithm) with LazyTensors: the assignment step is an argmin(dim=1) reduction.

Usage: python examples/kmeans.py [--n 100000] [--k 50] [--d 2] [--iters 10] [--framework numpy|torch|both]
Each iteration assigns every point to its closest centroid with pykeops, then moves every centroid to the
mean of its points. After the last iteration the assignments of --check random points are compared with a
brute-force NumPy argmin (up to ties, by distance); the script exits with status 1 if any differs.
"""

import argparse
import sys
import time

import numpy as np


def kmeans_numpy(x, K, iters):
    from pykeops.numpy import LazyTensor

    c = x[:K].copy()  # simple initialisation: the first K points
    x_i = LazyTensor(x[:, None, :])
    for _ in range(iters):
        c_j = LazyTensor(c[None, :, :])
        labels = ((x_i - c_j) ** 2).sum(-1).argmin(dim=1).reshape(-1)
        counts = np.bincount(labels, minlength=K).astype(x.dtype)
        sums = np.zeros_like(c)
        np.add.at(sums, labels, x)
        c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)  # empty cluster: stays
    c_j = LazyTensor(c[None, :, :])
    return ((x_i - c_j) ** 2).sum(-1).argmin(dim=1).reshape(-1), c


def kmeans_torch(x, K, iters):
    import torch

    from pykeops.torch import LazyTensor

    x = torch.from_numpy(x)
    c = x[:K].clone()
    x_i = LazyTensor(x[:, None, :])
    for _ in range(iters):
        c_j = LazyTensor(c[None, :, :])
        labels = ((x_i - c_j) ** 2).sum(-1).argmin(dim=1).view(-1)
        counts = torch.bincount(labels, minlength=K).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], c)
    c_j = LazyTensor(c[None, :, :])
    labels = ((x_i - c_j) ** 2).sum(-1).argmin(dim=1).view(-1)
    return labels.numpy(), c.numpy()


def check(name, run, x, K, iters, rows, tol):
    start = time.perf_counter()
    labels, c = run(x, K, iters)
    seconds = time.perf_counter() - start
    d2 = ((x[rows, None, :].astype(np.float64) - c[None, :, :]) ** 2).sum(-1)
    best = d2.min(1)
    got = d2[np.arange(len(rows)), labels[rows]]
    ok = labels.shape == (x.shape[0],) and labels.dtype == np.int64 and np.allclose(got, best, rtol=tol, atol=tol)
    inertia = float(((x - c[labels]) ** 2).sum() / len(x))
    same = np.mean(labels[rows] == d2.argmin(1))
    status = "ok" if ok else "FAILED"
    print(f"{name:8s} {iters} iterations {seconds:8.3f} s   mean sq. distance {inertia:.5f}   "
          f"same labels {same:6.1%}  {status}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of points")
    parser.add_argument("--k", type=int, default=50, help="number of clusters")
    parser.add_argument("--d", type=int, default=2, help="dimension of the points")
    parser.add_argument("--iters", type=int, default=10, help="number of Lloyd iterations")
    parser.add_argument("--check", type=int, default=1000, help="number of assignments checked by brute force")
    parser.add_argument("--framework", choices=["numpy", "torch", "both"], default="both")
    parser.add_argument("--tol", type=float, default=1e-5, help="relative tolerance on the assigned distances")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    centers = rng.uniform(-5, 5, (args.k, args.d))
    x = (centers[rng.integers(0, args.k, args.n)] + rng.standard_normal((args.n, args.d))).astype(np.float32)
    rows = rng.choice(args.n, size=min(args.check, args.n), replace=False)
    print(f"K-means, N = {args.n} points, K = {args.k} clusters, D = {args.d}, float32")

    ok = []
    if args.framework in ("numpy", "both"):
        ok.append(check("numpy", kmeans_numpy, x, args.k, args.iters, rows, args.tol))
    if args.framework in ("torch", "both"):
        try:
            import torch  # noqa: F401

            import pykeops.torch  # noqa: F401
        except ImportError:
            print("torch is not importable: skipping pykeops.torch")
        else:
            ok.append(check("torch", kmeans_torch, x, args.k, args.iters, rows, args.tol))
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
