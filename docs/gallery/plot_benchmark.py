"""
Time against problem size
=========================

The Gaussian kernel sum ``a_i = sum_j exp(-|x_i - y_j|^2) b_j`` (points in 3D, M = N) computed three ways on the
CPU of the machine that builds this page: with a LazyTensor, with dense torch (the (M, N) matrix is stored, so the
sizes stop where it would get large), and the LazyTensor's first call, which includes compiling the kernel (or
loading it from the disk cache). Each time is the best of up to five runs. The figures are measured when the page is
built, at small sizes, so they are indicative only: ``benchmarks/bench_suite.py --plots DIR`` measures larger
problems, and times pykeops 2.3 beside them when given ``--pykeops-python``.
"""

# %%
import os
import time

import matplotlib.pyplot as plt
import torch

from pykeops.torch import LazyTensor

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
SIZES = [200, 400, 800] if SMALL else [500, 1000, 2000, 4000, 8000, 16000]
DENSE_MAX = 800 if SMALL else 4000  # dense torch stores M x N floats
REPEATS = 5


def best_time(fn, budget=0.5):
    """The best of REPEATS runs, fewer when they take more than `budget` seconds in all."""
    best, spent = float("inf"), 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def keops_sum(x, y, b):
    x_i, y_j, b_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
    return ((-((x_i - y_j) ** 2).sum(-1)).exp() * b_j).sum(dim=1)


def dense_sum(x, y, b):
    return torch.exp(-torch.cdist(x, y) ** 2) @ b


# %%
# Measure, checking every result against float64.
torch.manual_seed(0)
ours, dense = [], []
for n in SIZES:
    x, y, b = torch.rand(n, 3), torch.rand(n, 3), torch.rand(n, 1)
    rows = slice(0, 100)  # the float64 reference of 100 rows keeps the check small
    reference = dense_sum(x[rows].double(), y.double(), b.double())
    result = keops_sum(x, y, b)
    assert torch.allclose(result[rows].double(), reference, rtol=1e-4), f"wrong LazyTensor result at n = {n}"
    ours.append(best_time(lambda: keops_sum(x, y, b)))
    if n <= DENSE_MAX:
        assert torch.allclose(dense_sum(x, y, b)[rows].double(), reference, rtol=1e-3)
        dense.append(best_time(lambda: dense_sum(x, y, b)))
    print(f"n = {n:6d}: LazyTensor {ours[-1] * 1e3:8.2f} ms" + (f", dense torch {dense[-1] * 1e3:8.2f} ms"
                                                               if n <= DENSE_MAX else ""))

# %%
# A new formula's first call: compiling (in process, with LLVM) plus one run, at the smallest size.
x, y, b = torch.rand(SIZES[0], 3), torch.rand(SIZES[0], 3), torch.rand(SIZES[0], 1)
start = time.perf_counter()
x_i, y_j, b_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
((-((x_i - y_j) ** 2).sum(-1) * 0.731).exp() * b_j).sum(dim=1)  # a formula not met before in this process
first_call = time.perf_counter() - start
print(f"first call of a new formula (compile or disk-cache load, and run): {first_call * 1e3:.1f} ms")

# %%
# Time against size, on log-log axes: both grow as M * N, dense torch with a larger constant and an (M, N) matrix.
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.loglog(SIZES, ours, "o-", label="keops-jit LazyTensor")
ax.loglog(SIZES[: len(dense)], dense, "s-", label="dense torch")
ax.axhline(first_call, color="gray", linestyle=":", label="first call of a new formula")
ax.set_xlabel("M = N")
ax.set_ylabel("seconds (best of up to 5 runs)")
ax.set_title(f"Gaussian kernel sum, D = 3, float32, {torch.get_num_threads()} CPU threads")
ax.legend()
plt.show()
