"""K nearest neighbours with argKmin: for each query point, the indices of its K closest reference points.

Usage: python examples/knn.py [--n 100000] [--m 10000] [--k 10] [--framework numpy|torch|both]
The reduction runs twice per variant (LazyTensor and Genred): the first call includes compiling the kernel
(or loading it from the engine's disk cache), the second reuses it. A brute-force NumPy search on --check
random queries is the reference; the script exits with status 1 if any checked neighbour list differs (up to
ties, compared by distance).
"""

import argparse
import sys
import time

import numpy as np

D = 3  # dimension of the points


def sqdist(x, y):
    """Exact float64 squared distances between matching rows of x and y (..., D)."""
    return ((x.astype(np.float64) - y.astype(np.float64)) ** 2).sum(-1)


def brute_force(x, y, rows, K):
    """Distances (float64) and indices of the K nearest references of the selected queries.

    Candidates come from the |x|^2 + |y|^2 - 2 x.y expansion (no (rows, N, D) temporary); the K + 10 best are
    then re-ranked with exact distances.
    """
    xs, y64 = x[rows].astype(np.float64), y.astype(np.float64)
    d2 = (xs**2).sum(1)[:, None] + (y64**2).sum(1)[None, :] - 2 * xs @ y64.T
    candidates = np.argpartition(d2, min(K + 10, y.shape[0] - 1), axis=1)[:, : K + 10]
    exact = sqdist(xs[:, None, :], y64[candidates])
    order = np.argsort(exact, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(exact, order, 1), np.take_along_axis(candidates, order, 1)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def variants(module, x, y, K):
    """(name, callable) for the LazyTensor and the Genred formulation of the same K-NN search."""
    x_i, y_j = module.LazyTensor(x[:, None, :]), module.LazyTensor(y[None, :, :])
    knn = module.Genred("SqDist(x,y)", [f"x = Vi({D})", f"y = Vj({D})"], reduction_op="ArgKMin", opt_arg=K, axis=1)
    return [
        ("LazyTensor", lambda: ((x_i - y_j) ** 2).sum(-1).argKmin(K, dim=1)),
        ("Genred", lambda: knn(x, y)),
    ]


def check(name, search, to_numpy, x, y, rows, reference, tol):
    _, first = timed(search)
    idx, second = timed(search)
    idx = to_numpy(idx)
    ref_d2, ref_idx = reference
    # Same neighbours, or ties: the distances of the returned points match the true K smallest ones.
    ok = idx.shape == (x.shape[0], ref_idx.shape[1]) and idx.dtype == np.int64
    if ok:
        got_d2 = sqdist(x[rows, None, :], y[idx[rows]])
        ok = bool(np.allclose(got_d2, ref_d2, rtol=0, atol=tol))
    same = np.mean(idx[rows] == ref_idx) if ok else 0.0
    status = "ok" if ok else "FAILED"
    print(f"{name:22s} first call {first:8.3f} s   second call {second:8.3f} s   same indices {same:6.1%}  {status}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of reference points y_j")
    parser.add_argument("--m", type=int, default=10_000, help="number of query points x_i")
    parser.add_argument("--k", type=int, default=10, help="number of neighbours")
    parser.add_argument("--check", type=int, default=200, help="number of queries checked by brute force")
    parser.add_argument("--framework", choices=["numpy", "torch", "both"], default="both")
    parser.add_argument("--tol", type=float, default=1e-6, help="absolute tolerance on the neighbours' squared distances")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.random((args.m, D), dtype=np.float32)
    y = rng.random((args.n, D), dtype=np.float32)
    rows = rng.choice(args.m, size=min(args.check, args.m), replace=False)
    reference, seconds = timed(lambda: brute_force(x, y, rows, args.k))
    print(f"{args.k}-NN search, {args.m} queries among {args.n} points, D = {D}, float32")
    print(f"{'brute force (NumPy)':22s} {seconds:8.3f} s for {len(rows)} queries")

    ok = []
    if args.framework in ("numpy", "both"):
        import pykeops.numpy

        for name, fn in variants(pykeops.numpy, x, y, args.k):
            ok.append(check(f"numpy {name}", fn, np.asarray, x, y, rows, reference, args.tol))
    if args.framework in ("torch", "both"):
        try:
            import torch

            import pykeops.torch
        except ImportError:
            print("torch is not importable: skipping pykeops.torch")
        else:
            tensors = (torch.from_numpy(a) for a in (x, y))
            for name, fn in variants(pykeops.torch, *tensors, args.k):
                ok.append(check(f"torch {name}", fn, lambda t: t.numpy(), x, y, rows, reference, args.tol))
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
