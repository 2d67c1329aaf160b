"""jax.jit(jax.grad(loss)) of a Gaussian-kernel loss through pykeops.jax beside the torch module's backward.

loss(x, y, b) = sum_i (sum_j exp(-|x_i - y_j|^2) b_j)^2, gradient in x, y and b, at M = N (default 10,000, D = 3,
float32). The two contenders are interleaved, each time is the minimum over --repeats calls, and the ratio
jax / torch is printed (below 1: pykeops.jax is faster).
Usage: python benchmarks/bench_jax.py [--n 10000] [--repeats 7] [--dtype float32]
"""
import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, nargs="+", default=[10_000])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    a = p.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    jax.config.update("jax_enable_x64", a.dtype == "float64")
    from pykeops.jax import Vi as jVi, Vj as jVj
    from pykeops.torch import Vi as tVi, Vj as tVj

    def jax_loss(x, y, b):
        return (((-jVi(x).sqdist(jVj(y))).exp() * jVj(b)).sum(1) ** 2).sum()

    jax_grad = jax.jit(jax.grad(jax_loss, argnums=(0, 1, 2)))

    def torch_grad(x, y, b):
        loss = (((-tVi(x).sqdist(tVj(y))).exp() * tVj(b)).sum(1) ** 2).sum()
        return torch.autograd.grad(loss, (x, y, b))

    print(f"{'N':>8} {'jax (ms)':>10} {'torch (ms)':>11} {'jax/torch':>10}")
    for n in a.n:
        rng = np.random.default_rng(0)
        x, y, b = (rng.random(s).astype(a.dtype) for s in ((n, 3), (n, 3), (n, 1)))
        jargs = [jnp.asarray(v) for v in (x, y, b)]
        targs = [torch.tensor(v, requires_grad=True) for v in (x, y, b)]
        gj, gt = jax_grad(*jargs), torch_grad(*targs)  # compile, and check that both agree
        for u, v in zip(gj, gt):
            assert np.allclose(np.asarray(u), v.numpy(), rtol=1e-3, atol=1e-3 * float(np.abs(v.numpy()).max()))
        tj, tt = [], []
        for _ in range(a.repeats):  # interleaved
            t0 = time.perf_counter()
            jax.block_until_ready(jax_grad(*jargs))
            tj.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            torch_grad(*targs)
            tt.append(time.perf_counter() - t0)
        print(f"{n:>8} {1e3 * min(tj):>10.2f} {1e3 * min(tt):>11.2f} {min(tj) / min(tt):>10.2f}")


if __name__ == "__main__":
    main()
