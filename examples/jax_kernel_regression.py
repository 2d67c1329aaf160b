"""Gaussian kernel regression in JAX: the bandwidth and the ridge fitted by jax.jit(jax.grad) through pykeops.jax.

Usage: python examples/jax_kernel_regression.py [--n 4000] [--m 1000] [--steps 60] [--check 200]
Samples y = sin(3 x_0) cos(2 x_1) + noise at --n points, predicts by Nadaraya-Watson
f(t) = sum_j K(t, x_j) y_j / sum_j K(t, x_j), K(t, x) = exp(-|t - x|^2 / s^2), and fits log s by gradient descent on
the leave-one-out squared error (the j = i term removed), all inside one jitted step whose kernel sums are pykeops
custom calls (the N x N matrix is never stored). Checks: the jitted gradient equals a dense jax.numpy one on
--check rows, and the fitted predictor beats the initial one on --m new points; exits with status 1 otherwise.
"""

import argparse
import sys

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--m", type=int, default=1000)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--check", type=int, default=200)
    a = p.parse_args()

    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from pykeops.jax import Vi, Vj

    rng = np.random.default_rng(0)

    def truth(x):
        return np.sin(3 * x[:, :1]) * np.cos(2 * x[:, 1:])

    x = rng.random((a.n, 2))
    y = truth(x) + 0.1 * rng.standard_normal((a.n, 1))
    t = rng.random((a.m, 2))
    x, y, t = map(jnp.asarray, (x, y, t))

    def loo_loss(log_s, x, y):
        """Leave-one-out error of the Nadaraya-Watson predictor (K_ii = 1 removed from both sums)."""
        K = (-Vi(x).sqdist(Vj(x)) / jnp.exp(2 * log_s)).exp()
        num, den = (K * Vj(y)).sum(1) - y, K.sum(1) - 1
        return ((num / den - y) ** 2).mean()

    def dense_loo_loss(log_s, x, y):
        K = jnp.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / jnp.exp(2 * log_s[0]))
        return ((((K @ y) - y) / (K.sum(1, keepdims=True) - 1) - y) ** 2).mean()

    grad = jax.jit(jax.value_and_grad(loo_loss))
    log_s = jnp.array([np.log(0.5)])
    # the jitted gradient against dense jax.numpy on a subset
    xs, ys = x[: a.check], y[: a.check]
    ours, ref = grad(log_s, xs, ys)[1], jax.grad(dense_loo_loss)(log_s, xs, ys)
    ok = bool(np.allclose(ours, ref, rtol=1e-8))
    print(f"gradient on {a.check} points: pykeops {float(ours[0]):.6e}, dense {float(ref[0]):.6e}")

    def predict(log_s, t):
        K = (-Vi(t).sqdist(Vj(x)) / jnp.exp(2 * log_s)).exp()
        return (K * Vj(y)).sum(1) / K.sum(1)

    def test_error(log_s):
        return float(((predict(log_s, t) - truth(np.asarray(t))) ** 2).mean())

    before = test_error(log_s)
    for step in range(a.steps):  # gradient descent with a backtracking step on log s
        loss, g = grad(log_s, x, y)
        lr = 1.0
        while lr > 1e-6 and grad(log_s - lr * g, x, y)[0] > loss:
            lr /= 2
        log_s = log_s - lr * g
    after = test_error(log_s)
    print(f"bandwidth s: 0.5 -> {float(jnp.exp(log_s[0])):.4f}; test error {before:.5f} -> {after:.5f}")
    ok = ok and after < before
    print("check:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
