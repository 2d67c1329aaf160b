"""
Kernel ridge regression
=======================

Kernel ridge regression fits ``f(x) = sum_j k(x, x_j) a_j`` to noisy samples ``y_j`` by solving
``(K + lambda Id) a = y`` with the Gaussian kernel ``k(x, x') = exp(-|x - x'|^2 / (2 s^2))``. ``KernelSolve``
solves the system by conjugate gradient without storing K, and ``Genred`` evaluates the fit at new points. The
weights are checked against a dense solve, and the fits for three values of lambda are plotted.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from pykeops.numpy import Genred, KernelSolve

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
N = 300 if SMALL else 1500
SIGMA = 0.05

rng = np.random.default_rng(4)
x = np.sort(rng.uniform(0, 1, (N, 1)), axis=0)
truth = lambda t: np.sin(10 * t) * np.exp(-2 * t)  # noqa: E731
y = truth(x) + 0.2 * rng.standard_normal((N, 1))

# %%
# One formula serves both: the kernel sum to invert, and the same sum to evaluate the fit at new points.
formula = "Exp(-g * SqDist(x, y)) * a"
aliases = ["x = Vi(1)", "y = Vj(1)", "a = Vj(1)", "g = Pm(1)"]
solve = KernelSolve(formula, aliases, "a", axis=1)
evaluate = Genred(formula, aliases, reduction_op="Sum", axis=1)
g = np.array([1 / (2 * SIGMA**2)])
t = np.linspace(0, 1, 500).reshape(-1, 1)

K = np.exp(-g[0] * (x - x.T) ** 2)  # the dense matrix, for the check only
fits = {}
for lam in (1e-3, 1e-1, 10.0):
    a = solve(x, x, y, g, alpha=lam, eps=1e-10)
    dense_a = np.linalg.solve(K + lam * np.eye(N), y)
    assert np.abs(K @ a + lam * a - y).max() < 1e-6, "KernelSolve residual too large"
    assert np.abs(K @ (a - dense_a)).max() < 1e-5, "KernelSolve disagrees with the dense solve"
    fits[lam] = evaluate(t, x, a, g)
    print(f"lambda = {lam:g}: mean squared error to the truth {np.mean((fits[lam] - truth(t)) ** 2):.4f}")

# %%
# Small lambda follows the noise, large lambda flattens the curve.
fig, ax = plt.subplots(figsize=(8, 4.5))
ax.scatter(x, y, s=2, c="gray", label=f"{N} noisy samples")
ax.plot(t, truth(t), "k--", label="truth")
for lam, fit in fits.items():
    ax.plot(t, fit, label=f"lambda = {lam:g}")
ax.legend()
ax.set_title("Gaussian kernel ridge regression")
plt.show()
