"""
K-nearest-neighbour classification
==================================

Each point of a grid gets the majority label of its K nearest training points. The K nearest neighbours come
from one ``argKmin`` reduction over the symbolic (queries x training points) matrix of squared distances, which
is never stored; the answer is checked against a dense NumPy search on some of the queries.
"""

# %%
# Data: three interleaved spirals, with labels 0, 1, 2.
import os

import matplotlib.pyplot as plt
import numpy as np

from pykeops.numpy import Vi, Vj

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
N, GRID, K = (600, 40, 5) if SMALL else (6000, 200, 10)

rng = np.random.default_rng(0)
labels = rng.integers(0, 3, N)
t = rng.uniform(0.2, 1.0, N)
angle = 3.0 * np.pi * t + 2.0 * np.pi * labels / 3.0
train = np.stack([t * np.cos(angle), t * np.sin(angle)], 1) + 0.04 * rng.standard_normal((N, 2))

u = np.linspace(-1.1, 1.1, GRID)
queries = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)

# %%
# The K nearest training points of every query: a (GRID^2, N) symbolic matrix reduced over j.
d_ij = Vi(queries).sqdist(Vj(train))
neighbours = d_ij.argKmin(K, dim=1)  # int64, (GRID^2, K), by ascending distance
votes = np.stack([(labels[neighbours] == c).sum(1) for c in range(3)], 1)
predicted = votes.argmax(1)

# %%
# Check: the distances of the neighbours found are the K smallest of a dense computation (ties may swap
# indices, not distances).
rows = rng.choice(len(queries), 200, replace=False)
dense = ((queries[rows, None, :] - train[None, :, :]) ** 2).sum(-1)
expected = np.sort(dense, 1)[:, :K]
found = np.take_along_axis(dense, neighbours[rows], 1)
assert np.allclose(found, expected, rtol=1e-12, atol=1e-14), "argKmin disagrees with the dense search"
print(f"{len(queries)} queries, {N} training points, K = {K}: neighbours checked on {len(rows)} queries")

# %%
# The predicted classes over the plane, with the training points on top.
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(predicted.reshape(GRID, GRID), origin="lower", extent=(-1.1, 1.1, -1.1, 1.1), cmap="Pastel1",
          vmin=0, vmax=8, interpolation="nearest")
ax.scatter(train[:, 0], train[:, 1], c=labels, cmap="Set1", vmin=0, vmax=8, s=2)
ax.set_title(f"{K}-NN classification of {GRID}x{GRID} grid points")
ax.set_aspect("equal")
plt.show()
