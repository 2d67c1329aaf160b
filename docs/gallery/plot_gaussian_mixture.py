"""
Gaussian mixture fitted by gradient descent
===========================================

The log-likelihood of a Gaussian mixture with full covariances is a ``logsumexp`` over its components of
``log w_j - |x_i - mu_j|^2_{Gamma_j} / 2 + log det(Gamma_j) / 2 - log(2 pi)``, Gamma_j the precision matrices.
It is written as a LazyTensor over (points x components), and torch's autograd differentiates it through the
reduction, so that Adam can fit the weights, means and precisions. The final value is checked against a dense
torch computation.
"""

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

from pykeops.torch import LazyTensor

SMALL = os.environ.get("KEOPS_EXAMPLE_SMALL") == "1"  # the tests run every example at a tiny size
N, K, STEPS = (2000, 4, 30) if SMALL else (10_000, 6, 120)

gen = torch.Generator().manual_seed(3)
true_means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.5]], dtype=torch.float64)
true_chol = torch.linalg.cholesky(torch.tensor(
    [[[0.4, 0.2], [0.2, 0.3]], [[0.2, -0.1], [-0.1, 0.5]], [[0.6, 0.0], [0.0, 0.1]]], dtype=torch.float64))
which = torch.randint(0, 3, (N,), generator=gen)
x = true_means[which] + torch.einsum("nij,nj->ni", true_chol[which], torch.randn(N, 2, generator=gen,
                                                                                    dtype=torch.float64))

# %%
# The parameters: weights softmax(logits), means mu, precisions Gamma = A A^T (+ a small ridge).
mu = x[torch.randperm(N, generator=gen)[:K]].clone().requires_grad_()
A = torch.eye(2, dtype=torch.float64).repeat(K, 1, 1).requires_grad_()
logits = torch.zeros(K, dtype=torch.float64, requires_grad=True)


def precisions():
    return A @ A.transpose(1, 2) + 1e-6 * torch.eye(2, dtype=torch.float64)


def log_terms():
    return torch.log_softmax(logits, 0) + 0.5 * torch.logdet(precisions()) - math.log(2 * math.pi)


def log_likelihood(points):
    """Mean log-density of the points: a logsumexp over the K components, as a LazyTensor reduction."""
    x_i = LazyTensor(points[:, None, :])
    mu_j = LazyTensor(mu[None, :, :])
    gamma_j = LazyTensor(precisions().reshape(1, K, 4))
    c_j = LazyTensor(log_terms().reshape(1, K, 1))
    return (c_j - 0.5 * x_i.weightedsqdist(mu_j, gamma_j)).logsumexp(dim=1).mean()


# %%
# Gradient ascent on the log-likelihood.
optimizer = torch.optim.Adam([mu, A, logits], lr=0.05)
history = []
for step in range(STEPS):
    optimizer.zero_grad()
    ll = log_likelihood(x)
    (-ll).backward()
    optimizer.step()
    history.append(ll.item())

# %%
# Check the last value against a dense (N, K) computation.
with torch.no_grad():
    d = x[:, None, :] - mu[None]
    dense = torch.logsumexp(log_terms() - 0.5 * torch.einsum("nki,kij,nkj->nk", d, precisions(), d), 1).mean()
    ours = log_likelihood(x)
assert abs(ours.item() - dense.item()) < 1e-9 * max(1.0, abs(dense.item()))
assert history[-1] > history[0] + 0.1, "the fit did not improve the log-likelihood"
print(f"mean log-likelihood {history[0]:.4f} -> {history[-1]:.4f} in {STEPS} steps (dense: {dense.item():.6f})")

# %%
# The fitted density over the data, and the log-likelihood along the steps.
u = torch.linspace(-4, 4, 120, dtype=torch.float64)
grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
with torch.no_grad():
    x_i, mu_j = LazyTensor(grid[:, None, :]), LazyTensor(mu[None, :, :])
    gamma_j, c_j = LazyTensor(precisions().reshape(1, K, 4)), LazyTensor(log_terms().reshape(1, K, 1))
    density = (c_j - 0.5 * x_i.weightedsqdist(mu_j, gamma_j)).logsumexp(dim=1).exp().reshape(120, 120)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5))
left.scatter(x[:, 0], x[:, 1], s=1, c="gray", alpha=0.3)
left.contour(u, u, density, levels=8, cmap="viridis")
left.scatter(mu.detach()[:, 0], mu.detach()[:, 1], c="red", marker="x")
left.set_title(f"{K} components fitted to {N} points")
left.set_aspect("equal")
right.plot(history)
right.set_xlabel("Adam step")
right.set_ylabel("mean log-likelihood")
fig.tight_layout()
plt.show()
