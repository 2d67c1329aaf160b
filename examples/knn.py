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


def brute_force(x, y, rows, K):
    """Distances (float64) and indices of the K nearest references of the selected queries."""
    d2 = ((x[rows, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(d2, idx, 1), idx


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
    got_d2 = ((x[rows, None, :].astype(np.float64) - y[idx[rows]]) ** 2).sum(-1)
    # Same neighbours, or ties: the distances of the returned points match the true K smallest ones.
    same = np.mean(idx[rows] == ref_idx)
    ok = idx.shape == (x.shape[0], ref_idx.shape[1]) and np.allclose(got_d2, ref_d2, rtol=tol, atol=tol)
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
    parser.add_argument("--tol", type=float, default=1e-5, help="relative tolerance on the neighbours' distances")
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
