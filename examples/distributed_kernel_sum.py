"""A Gaussian kernel sum, its gradient and a kernel ridge regression sharded over torch.distributed ranks.

Usage: torchrun --nproc-per-node 2 examples/distributed_kernel_sum.py [--points 200000] [--d 3]
Each rank holds points / world_size points (its shard of x, which serves as both the i- and the j-variable) and its
shard of the weights b. The reductions ask for the whole group with group=: each rank gets its own rows of
a_i = sum_j exp(-|x_i - x_j|^2 / 2 s^2) b_j over every rank's points, the gradient of a loss with respect to
its shards, and its rows of the solution of (alpha Id + K) c = a. NCCL when CUDA is available (one GPU per
rank), else Gloo on the CPU. Rows of the results are checked against dense float64 computations on the
all-gathered points; every rank exits with status 1 when a check fails.
"""

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

from pykeops.torch import LazyTensor, Vi, Vj


def dense_rows(x_all, b_all, x_rows, scale):
    """sum_j exp(-|x_i - x_j|^2 / 2 s^2) b_j for the given rows, in float64."""
    d2 = ((x_rows.double()[:, None, :] - x_all.double()[None, :, :]) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * scale**2)) @ b_all.double()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000, help="points over all ranks")
    parser.add_argument("--d", type=int, default=3, help="dimension of the points")
    parser.add_argument("--check", type=int, default=100, help="rows per rank checked densely")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest relative error accepted")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    group = dist.group.WORLD

    # This rank's shard: the last ranks hold one point less when n does not divide evenly.
    rows = args.points // size + (rank < args.points % size)
    gen = torch.Generator().manual_seed(rank)
    x = torch.rand(rows, args.d, generator=gen).to(device)
    b = torch.randn(rows, 1, generator=gen).to(device)
    scale = 0.1

    x_i, x_j = LazyTensor(x[:, None, :] / scale), LazyTensor(x[None, :, :] / scale)
    K_ij = (-((x_i - x_j) ** 2).sum(-1) / 2).exp()

    def kernel_sum(b):
        return (K_ij * Vj(b)).sum(dim=1, group=group)  # this rank's rows of the sum over every rank's points

    kernel_sum(b)  # (the first call compiles the kernel)
    dist.barrier()
    start = time.perf_counter()
    a = kernel_sum(b)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    # Autograd: the backward is sharded too; each rank gets the gradients of its own shards.
    xg, bg = x.clone().requires_grad_(), b.clone().requires_grad_()
    K_g = (-Vi(xg).sqdist(Vj(xg)) / (2 * scale**2)).exp()
    ag = (K_g * Vj(bg)).sum(dim=1, group=group)
    (ag**2).sum().backward()

    # Kernel ridge regression: (alpha Id + K) c = a, by conjugate gradient with all-reduced dot products.
    alpha = 0.1
    c = (-Vi(x).sqdist(Vj(x)) / (2 * scale**2)).exp().solve(a, alpha=alpha, eps=1e-6, group=group)
    residual = kernel_sum(c) + alpha * c - a
    sq = torch.stack([(residual.double() ** 2).sum(), (a.double() ** 2).sum()])
    dist.all_reduce(sq, group=group)

    # Checks against dense float64 computations on the gathered points (small sizes only).
    sizes = [None] * size
    dist.all_gather_object(sizes, rows, group=group)
    parts_x = [torch.empty(s, args.d, device=device) for s in sizes]
    parts_b = [torch.empty(s, 1, device=device) for s in sizes]
    dist.all_gather(parts_x, x.contiguous(), group=group)
    dist.all_gather(parts_b, b.contiguous(), group=group)
    x_all, b_all = torch.cat(parts_x), torch.cat(parts_b)
    sample = torch.randperm(rows, generator=gen)[: args.check].to(device)
    ref = dense_rows(x_all, b_all, x[sample], scale)
    err_sum = ((a[sample].double() - ref).abs().max() / ref.abs().max()).item() if rows else 0.0
    # d/db_j of sum_i a_i^2 = 2 sum_i K_ij a_i (K symmetric): a kernel sum of 2 a, checked on the sampled rows
    a_all = [torch.empty(s, 1, device=device) for s in sizes]
    dist.all_gather(a_all, a.contiguous(), group=group)
    ref_grad = 2 * dense_rows(x_all, torch.cat(a_all), x[sample], scale)
    err_grad = ((bg.grad[sample].double() - ref_grad).abs().max() / ref_grad.abs().max()).item() if rows else 0.0
    err_solve = (sq[0] / sq[1]).sqrt().item()
    ok = torch.tensor([float(max(err_sum, err_grad) <= args.tol and err_solve <= 1e-3)], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=group)
    print(f"rank {rank}/{size} ({device}): {rows} of {args.points} points, kernel sum {elapsed:.3f} s, "
          f"rel. error {err_sum:.1e}, gradient {err_grad:.1e}, solve residual {err_solve:.1e}", flush=True)
    passed = bool(ok.item())
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        print("ok" if passed else "FAILED")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
