"""
RBF interpolation
=================

Interpolate scattered values f(x_j) with a Gaussian radial basis function: find weights a such that
``(K + alpha Id) a = f`` with ``K_ij = exp(-|x_i - x_j|^2 / (2 s^2))``, by conjugate gradient on the symbolic
matrix (``LazyTensor.solve``), then evaluate the interpolant on a grid with one more reduction. The weights are
checked against a dense solve, and the interpolant against the function.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from pykeops.numpy import Vi, Vj

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
N, GRID = (400, 40) if SMALL else (1500, 120)
SIGMA, ALPHA = 0.1, 1e-2


def f(p):
    """The function to interpolate: a smooth bump pattern on [0, 1]^2."""
    return np.sin(6 * p[:, :1]) * np.cos(4 * p[:, 1:]) + 0.5 * p[:, :1]


rng = np.random.default_rng(2)
x = rng.uniform(0, 1, (N, 2))
values = f(x)

# %%
# Solve (K + alpha Id) a = f with the symbolic kernel matrix K_ij.
g = np.array([1 / (2 * SIGMA**2)])
K_ij = (-Vi(x).sqdist(Vj(x)) * g).exp()
a = K_ij.solve(Vi(values), alpha=ALPHA, eps=1e-10)

# %%
# Check against the dense system (float64), and evaluate on a grid: s(p) = sum_j K(p, x_j) a_j.
K = np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) * g[0])
dense_a = np.linalg.solve(K + ALPHA * np.eye(N), values)
residual = np.abs(K @ a + ALPHA * a - values).max()
assert residual < 1e-6, f"conjugate gradient residual {residual:.2e}"
assert np.abs(K @ (a - dense_a)).max() < 1e-5

u = np.linspace(0.05, 0.95, GRID)
grid = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
s = ((-Vi(grid).sqdist(Vj(x)) * g).exp() * Vj(a)).sum(dim=1)
error = np.abs(s - f(grid)).max()
assert error < 0.2, f"interpolation error {error:.3f}"
print(f"{N} samples: residual {residual:.1e}, largest error on the grid {error:.3f}")

# %%
# The function, the interpolant and the samples.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, field, title in zip(axes, (f(grid), s), ("function", f"interpolant from {N} samples")):
    im = ax.imshow(field.reshape(GRID, GRID), origin="lower", extent=(0.05, 0.95, 0.05, 0.95), cmap="viridis")
    ax.set_title(title)
axes[1].scatter(x[:, 0], x[:, 1], s=0.5, c="white", alpha=0.5)
axes[1].set(xlim=(0.05, 0.95), ylim=(0.05, 0.95))
fig.colorbar(im, ax=axes)
plt.show()
