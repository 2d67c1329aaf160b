"""Fit a Gaussian mixture with full covariances by gradient descent on its log-likelihood, computed with a
LazyTensor logsumexp over the components (never an N x K matrix), and check it against a dense computation.

    python examples/gaussian_mixture.py [--n 20000] [--k 8] [--steps 150]
"""
import argparse
import math
import time

import torch

from pykeops.torch import LazyTensor


def sample(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.5]], dtype=torch.float64)
    covs = torch.tensor([[[0.4, 0.2], [0.2, 0.3]], [[0.2, -0.1], [-0.1, 0.5]], [[0.6, 0.0], [0.0, 0.1]]],
                        dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=g)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return centers[labels] + torch.einsum("nij,nj->ni", torch.linalg.cholesky(covs)[labels], z)


class Mixture(torch.nn.Module):
    """Weights softmax(logits), means mu, precisions Gamma = A A^T + eps I (full covariances)."""

    def __init__(self, k, x, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.nn.Parameter(x[torch.randperm(len(x), generator=g)[:k]].clone())
        self.A = torch.nn.Parameter(torch.eye(2, dtype=x.dtype).repeat(k, 1, 1))
        self.logits = torch.nn.Parameter(torch.zeros(k, dtype=x.dtype))

    def precisions(self):
        return self.A @ self.A.transpose(1, 2) + 1e-6 * torch.eye(2, dtype=self.A.dtype)

    def log_terms(self):
        """log w_j + log det(Gamma_j) / 2 - log(2 pi): the per-component part of log w_j N(x | mu_j, Gamma_j^-1)."""
        gamma = self.precisions()
        return torch.log_softmax(self.logits, 0) + 0.5 * torch.logdet(gamma) - math.log(2 * math.pi)

    def log_likelihood(self, x):
        """Mean over points of log sum_j w_j N(x_i | mu_j, Sigma_j), as a LazyTensor logsumexp over j."""
        k = len(self.mu)
        x_i = LazyTensor(x[:, None, :])
        mu_j = LazyTensor(self.mu[None, :, :])
        gamma_j = LazyTensor(self.precisions().reshape(1, k, 4))
        c_j = LazyTensor(self.log_terms().reshape(1, k, 1))
        log_p_ij = c_j - 0.5 * x_i.weightedsqdist(mu_j, gamma_j)
        return log_p_ij.logsumexp(dim=1).mean()

    def dense_log_likelihood(self, x):
        d = x[:, None, :] - self.mu[None]
        quad = torch.einsum("nki,kij,nkj->nk", d, self.precisions(), d)
        return torch.logsumexp(self.log_terms()[None] - 0.5 * quad, dim=1).mean()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--steps", type=int, default=150)
    a = p.parse_args()
    x = sample(a.n)
    model = Mixture(a.k, x)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    t0 = time.perf_counter()
    first = None
    for step in range(a.steps):
        opt.zero_grad()
        ll = model.log_likelihood(x)
        (-ll).backward()
        opt.step()
        first = ll.item() if first is None else first
        if step % 25 == 0 or step == a.steps - 1:
            print(f"step {step:4d}  mean log-likelihood {ll.item():.5f}")
    elapsed = time.perf_counter() - t0
    with torch.no_grad():
        ours, dense = model.log_likelihood(x).item(), model.dense_log_likelihood(x).item()
    print(f"{a.steps} steps in {elapsed:.2f} s; log-likelihood {first:.4f} -> {ours:.4f}; dense {dense:.6f}, "
          f"difference {abs(ours - dense):.2e}")
    ok = ours > first + 0.1 and abs(ours - dense) < 1e-9 * max(1.0, abs(dense))
    print("check:", "passed" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
