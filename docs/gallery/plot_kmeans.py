"""
K-means clustering
==================

Lloyd's algorithm: assign every point to its nearest centroid (an ``argmin`` reduction over the symbolic
(points x centroids) distance matrix), then move each centroid to the mean of its points. The assignments are
checked against a dense computation at every iteration, and the cost must never increase.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from pykeops.numpy import Vi, Vj

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
N, C, ITERS = (2000, 8, 5) if SMALL else (50_000, 12, 15)

rng = np.random.default_rng(1)
centers = rng.uniform(-4, 4, (C, 2))
x = centers[rng.integers(0, C, N)] + 0.6 * rng.standard_normal((N, 2))

# %%
# The loop. ``Vi(x).sqdist(Vj(c)).argmin(dim=1)`` is an (N, 1) int64 array of nearest-centroid indices.
c = x[rng.choice(N, C, replace=False)].copy()
costs = []
for it in range(ITERS):
    assign = Vi(x).sqdist(Vj(c)).argmin(dim=1).ravel()
    dense = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    # Equal distances (ties) may pick another index, never a farther centroid.
    assert np.allclose(dense[np.arange(N), assign], dense.min(1), rtol=1e-12, atol=1e-14)
    costs.append(dense[np.arange(N), assign].mean())
    counts = np.bincount(assign, minlength=C)
    sums = np.stack([np.bincount(assign, weights=x[:, d], minlength=C) for d in range(2)], 1)
    c = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)  # empty clusters stay put

assert all(b <= a * (1 + 1e-12) for a, b in zip(costs, costs[1:])), "the k-means cost increased"
print(f"{N} points, {C} clusters: mean squared distance {costs[0]:.4f} -> {costs[-1]:.4f} in {ITERS} iterations")

# %%
# The clusters found, and the cost along the iterations.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
left.scatter(x[:, 0], x[:, 1], c=assign, cmap="tab20", s=1)
left.scatter(c[:, 0], c[:, 1], c="black", marker="x", s=60)
left.set_title(f"{C} clusters of {N} points")
left.set_aspect("equal")
right.plot(range(1, ITERS + 1), costs, "o-")
right.set_xlabel("iteration")
right.set_ylabel("mean squared distance to the centroid")
fig.tight_layout()
plt.show()
