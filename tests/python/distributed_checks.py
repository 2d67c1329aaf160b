"""Checks of sharded reductions run inside spawned Gloo process groups (used by test_distributed.py).

Every rank builds the whole data from one seed, reduces its shard with group= and compares its rows with the
single-process result on the concatenated data (and its gradients with the single-process gradients). Mismatches
are recorded, not raised, so that every rank keeps making the same collective calls.
"""

import datetime
import os
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

GROUP_TIMEOUT = datetime.timedelta(seconds=30)  # no collective of these small checks takes more than a second


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, size, port, check, queue):
    try:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
                                timeout=GROUP_TIMEOUT)
        import pykeops

        pykeops.set_num_threads(1)  # (several processes share the cores)
        failures = globals()[check](Checker(rank), rank, size)
        queue.put((rank, "ok", failures))
    except BaseException:
        queue.put((rank, "error", traceback.format_exc()))
    # Leave at once once the report is sent: a process group whose peer failed may not shut down cleanly.
    queue.close()
    queue.join_thread()
    os._exit(0)


def run_group(size, check, timeout=240):
    """Run check(checker, rank, size) on `size` spawned Gloo ranks; {rank: (status, failures or traceback)}.
    Processes still alive after `timeout` seconds are killed (their rank reports "hung")."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, size, port, check, queue), daemon=True) for r in range(size)]
    for p in procs:
        p.start()
    results, deadline = {}, time.monotonic() + timeout
    try:
        while len(results) < size and time.monotonic() < deadline:
            try:
                rank, status, payload = queue.get(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
                results[rank] = (status, payload)
            except Exception:  # queue.Empty: check that the ranks are alive
                if all(not p.is_alive() for p in procs) and queue.empty():
                    break
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    for r in range(size):
        results.setdefault(r, ("hung", f"rank {r} reported nothing within {timeout} s"))
    return results


class Checker:
    """Records mismatches between a sharded result and the single-process one."""

    def __init__(self, rank):
        self.rank, self.failures, self.count = rank, [], 0

    def close(self, what, got, ref, rtol, atol):
        self.count += 1
        if got is None or ref is None:
            if (got is None) != (ref is None):
                self.failures.append(f"{what}: got {got} vs reference {ref}")
            return
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            self.failures.append(f"{what}: shape/dtype {tuple(got.shape)} {got.dtype} vs {tuple(ref.shape)} {ref.dtype}")
        elif got.is_floating_point():
            if not torch.allclose(got.double(), ref.double(), rtol=rtol, atol=atol, equal_nan=True):
                err = (got.double() - ref.double()).abs().max().item()
                self.failures.append(f"{what}: max abs error {err:.3e} (rtol {rtol}, atol {atol})")
        elif not torch.equal(got, ref):
            self.failures.append(f"{what}: indices differ at {int((got != ref).sum())} places")

    def raises(self, what, fn, kind, text):
        self.count += 1
        try:
            fn()
        except kind as e:
            if text not in str(e):
                self.failures.append(f"{what}: {type(e).__name__} {e!s:.200} does not say {text!r}")
            return
        except Exception as e:
            self.failures.append(f"{what}: {type(e).__name__} {e!s:.200} instead of {kind.__name__}")
            return
        self.failures.append(f"{what}: no error")


def tolerances(dtype):
    return (1e-10, 1e-10) if dtype == torch.float64 else (2e-5, 2e-5)


def shard(t, sizes, rank, dim=-2):
    start = sum(sizes[:rank])
    return t.narrow(dim, start, sizes[rank])


def uneven(size, total_i, total_j):
    """Shard sizes with one empty i-shard and one empty j-shard (on different ranks when size > 1)."""
    if size == 1:
        return [total_i], [total_j]
    Ms = [total_i // (size - 1)] * (size - 1) + [0]
    Ms[0] += total_i - sum(Ms)
    Ns = [0] + [total_j // (size - 1)] * (size - 1)
    Ns[1] += total_j - sum(Ns)
    return Ms[::-1] if size > 2 else Ms, Ns


REDUCTIONS = [  # (reduction_op, K, weighted)
    ("Sum", None, False), ("LogSumExp", None, False), ("LogSumExp", None, True), ("SumSoftMaxWeight", None, True),
    ("Max_SumShiftExpWeight", None, True), ("Min", None, False), ("Max", None, False), ("ArgMin", None, False),
    ("ArgMax", None, False), ("Min_ArgMin", None, False), ("Max_ArgMax", None, False), ("KMin", 3, False),
    ("ArgKMin", 4, False), ("KMin_ArgKMin", 2, False),
]


def data(dtype, Mtot, Ntot, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, Mtot, 3, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(*batch, Ntot, 3, generator=g, dtype=torch.float64).to(dtype)
    bi = torch.randn(*batch, Mtot, 2, generator=g, dtype=torch.float64).to(dtype)
    bj = torch.randn(*batch, Ntot, 2, generator=g, dtype=torch.float64).to(dtype)
    return x, y, bi, bj


def genred(op, K, weighted, axis, D=1):
    from pykeops.torch import Genred

    # b: a variable of the reduced side (Vj when axis = 1), w: one of the output side
    b, w = ("Vj", "Vi") if axis == 1 else ("Vi", "Vj")
    formula = "SqDist(x,y)*Sum(b)+Sum(w)" if D == 1 else "(x-y)*Sum(b)"
    return Genred(formula, ["x=Vi(3)", "y=Vj(3)", f"b={b}(2)", f"w={w}(2)"], reduction_op=op, axis=axis, opt_arg=K,
                  formula2="b" if weighted else None)


def as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def forward_checks(ck, rank, size, dtype, axis, Ms, Ns, batch=()):
    """Every reduction (and D = 3 components for the selections) against the single-process result."""
    group = dist.group.WORLD
    x, y, bi, bj = data(dtype, sum(Ms), sum(Ns), batch=batch)
    xl, yl, bil, bjl = shard(x, Ms, rank), shard(y, Ns, rank), shard(bi, Ms, rank), shard(bj, Ns, rank)
    rtol, atol = tolerances(dtype)
    own = (Ms if axis == 1 else Ns)
    for op, K, weighted in REDUCTIONS:
        for D in (1, 3) if op in ("Min", "ArgMax", "Min_ArgMin", "KMin_ArgKMin") else (1,):
            g = genred(op, K, weighted, axis, D)
            b, w = (bj, bi) if axis == 1 else (bi, bj)
            bl, wl = (bjl, bil) if axis == 1 else (bil, bjl)
            ref = as_tuple(g(x, y, b, w))
            got = as_tuple(g(xl, yl, bl, wl, group=group))
            for k, (r, o) in enumerate(zip(ref, got)):
                ck.close(f"{op} D={D} axis={axis} {dtype} batch={batch} output {k}", o, shard(r, own, rank, dim=len(batch)),
                         rtol, atol)


def tie_checks(ck, rank, size):
    """Equal candidates on different ranks: the smallest global index wins, as on one device."""
    from pykeops.torch import Genred

    z = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.cat([z] * size)  # every point on every rank: each value tied `size` times
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    Ns = [6] * size
    for op, K in (("ArgMin", None), ("ArgMax", None), ("Min_ArgMin", None), ("ArgKMin", 2 * size + 1),
                  ("KMin_ArgKMin", 3)):
        g = Genred("SqDist(x,y)", ["x=Vi(2)", "y=Vj(2)"], reduction_op=op, axis=1, opt_arg=K)
        ref, got = as_tuple(g(x, y)), as_tuple(g(x, shard(y, Ns, rank), group=dist.group.WORLD))
        for k, (r, o) in enumerate(zip(ref, got)):
            ck.close(f"ties {op} output {k}", o, r, 0, 0)
    # NaN never wins (a NaN point on the last rank), and an all-NaN row (a NaN x) selects the first global index
    y_nan, x_nan = y.clone(), x.clone()
    y_nan[-2, 1], x_nan[3, 0] = float("nan"), float("nan")
    for op, K in (("Min_ArgMin", None), ("Max_ArgMax", None), ("KMin_ArgKMin", 3)):
        g = Genred("SqDist(x,y)", ["x=Vi(2)", "y=Vj(2)"], reduction_op=op, axis=1, opt_arg=K)
        ref, got = g(x_nan, y_nan), g(x_nan, shard(y_nan, Ns, rank), group=dist.group.WORLD)
        for k, (r, o) in enumerate(zip(ref, got)):
            ck.close(f"NaN {op} output {k}", o, r, 0, 0)


def lazy_tensor_checks(ck, rank, size):
    """The LazyTensor API: the same code with group= on the reduction."""
    from pykeops.torch import LazyTensor, Vi, Vj

    Ms, Ns = uneven(size, 13, 11)
    x, y, bi, bj = data(torch.float64, sum(Ms), sum(Ns), seed=5)
    xl, yl, bl = shard(x, Ms, rank), shard(y, Ns, rank), shard(bj, Ns, rank)
    group = dist.group.WORLD

    def kernel(x, y):
        return (-((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1)).exp()

    ck.close("LazyTensor sum(dim=1)", (kernel(xl, yl) * Vj(bl)).sum(dim=1, group=group),
             shard((kernel(x, y) * Vj(bj)).sum(dim=1), Ms, rank), 1e-10, 1e-12)
    ck.close("LazyTensor sum(dim=0)", (kernel(xl, yl) * Vi(shard(bi, Ms, rank))).sum(dim=0, group=group),
             shard((kernel(x, y) * Vi(bi)).sum(dim=0), Ns, rank), 1e-10, 1e-12)
    ck.close("LazyTensor argmin(dim=0)", Vi(xl).sqdist(Vj(yl)).argmin(dim=0, group=group),
             shard(Vi(x).sqdist(Vj(y)).argmin(dim=0), Ns, rank), 0, 0)
    ck.close("LazyTensor logsumexp(dim=1)", (-Vi(xl).sqdist(Vj(yl))).logsumexp(dim=1, group=group),
             shard((-Vi(x).sqdist(Vj(y))).logsumexp(dim=1), Ms, rank), 1e-10, 1e-12)
    sym = (-Vi(xl).sqdist(Vj(yl))).exp().sum(dim=1, call=False, group=group)  # a reduced LazyTensor, called later
    ck.close("LazyTensor call=False", sym(), shard((-Vi(x).sqdist(Vj(y))).exp().sum(dim=1), Ms, rank), 1e-10, 1e-12)


def gradient_checks(ck, rank, size, dtype, axis, Ms, Ns):
    """Gradients in every argument (a parameter included) of sharded reductions equal the single-process ones."""
    from pykeops.torch import Genred

    group = dist.group.WORLD
    rtol, atol = (1e-9, 1e-10) if dtype == torch.float64 else (1e-4, 1e-4)
    x, y, bi, bj = data(dtype, sum(Ms), sum(Ns), seed=7)
    s = torch.tensor([0.7], dtype=dtype)
    own, other = (Ms, Ns) if axis == 1 else (Ns, Ms)
    b, bsizes, cat = (bj, Ns, "Vj") if axis == 1 else (bi, Ms, "Vi")
    cases = [("Sum", None, "Exp(-s*SqDist(x,y))*b", None), ("LogSumExp", None, "-s*SqDist(x,y)", "b"),
             ("SumSoftMaxWeight", None, "-s*SqDist(x,y)", "b"), ("Min", None, "s*SqDist(x,y)+Sum(b)", None),
             ("KMin", 3, "s*SqDist(x,y)+Sum(b)", None)]
    for op, K, formula, formula2 in cases:
        g = Genred(formula, ["x=Vi(3)", "y=Vj(3)", f"b={cat}(2)", "s=Pm(1)"], reduction_op=op, axis=axis,
                   opt_arg=K, formula2=formula2)
        full = [t.clone().requires_grad_() for t in (x, y, b, s)]
        ref = g(*full)
        weights = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(11))
        (ref * weights).sum().backward()
        local = [shard(x, Ms, rank), shard(y, Ns, rank), shard(b, bsizes, rank), s]
        local = [t.clone().requires_grad_() for t in local]
        got = g(*local, group=group)
        (got * shard(weights, own, rank)).sum().backward()
        for name, t, f, sizes in zip("xybs", local, full, (Ms, Ns, bsizes, None)):
            ck.close(f"grad {op} axis={axis} {dtype} d/d{name}", t.grad,
                     f.grad if sizes is None else shard(f.grad, sizes, rank), rtol, atol)


def solve_checks(ck, rank, size, dtype):
    """KernelSolve and LazyTensor.solve sharded, and their gradients."""
    from pykeops.torch import KernelSolve, Vi, Vj

    group = dist.group.WORLD
    sizes = [7, 0, 5, 4][:size] if size > 1 else [16]
    g = torch.Generator().manual_seed(13)
    x = torch.rand(sum(sizes), 2, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(sum(sizes), 2, generator=g, dtype=torch.float64).to(dtype)
    eps, tol = (1e-12, 1e-8) if dtype == torch.float64 else (1e-6, 2e-4)
    solver = KernelSolve("Exp(-SqDist(x,y)*4)*a", ["x=Vi(2)", "y=Vj(2)", "a=Vj(2)"], "a", axis=1)
    xf, bf = x.clone().requires_grad_(), b.clone().requires_grad_()
    ref = solver(xf, xf, bf, alpha=0.5, eps=eps)
    w = torch.randn(ref.shape, dtype=dtype, generator=g)
    (ref * w).sum().backward()
    xl, bl = shard(x, sizes, rank).clone().requires_grad_(), shard(b, sizes, rank).clone().requires_grad_()
    got = solver(xl, xl, bl, alpha=0.5, eps=eps, group=group)
    (got * shard(w, sizes, rank)).sum().backward()
    ck.close(f"KernelSolve {dtype}", got.detach(), shard(ref.detach(), sizes, rank), tol, tol)
    ck.close(f"KernelSolve {dtype} d/db", bl.grad, shard(bf.grad, sizes, rank), tol, tol)
    ck.close(f"KernelSolve {dtype} d/dx", xl.grad, shard(xf.grad, sizes, rank), 10 * tol, 10 * tol)
    xs, bs = shard(x, sizes, rank), shard(b, sizes, rank)
    lazy = (-Vi(xs).sqdist(Vj(xs)) * 4).exp().solve(bs, alpha=0.5, eps=eps, group=group)
    ck.close(f"LazyTensor.solve {dtype}", lazy, shard(ref.detach(), sizes, rank), tol, tol)


def error_checks(ck, rank, size):
    """Bad input on one rank: a clear error on every rank, none waits forever."""
    from pykeops.numpy import Genred as NumpyGenred
    from pykeops.torch import Genred

    group = dist.group.WORLD
    g = Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Sum", axis=1)
    x, y = torch.randn(4, 3), torch.randn(5, 3)
    bad = torch.randn(5, 2) if rank == 1 else y
    if rank == 1:
        ck.raises("bad dim on this rank", lambda: g(x, bad, group=group), ValueError, "argument 1")
    else:
        ck.raises("bad dim on rank 1", lambda: g(x, bad, group=group), RuntimeError, "rank 1 of the group failed")
    dt = torch.float64 if rank == 1 else torch.float32
    ck.raises("dtypes differ across ranks", lambda: g(x.to(dt), y.to(dt), group=group), ValueError, "dtype")
    ranges = tuple(torch.zeros(1, 2, dtype=torch.int64) if k != 1 and k != 4 else torch.ones(1, dtype=torch.int64)
                   for k in range(6))
    ck.raises("ranges with group", lambda: g(x, y, group=group, ranges=ranges), ValueError, "ranges")
    k = Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="ArgKMin", axis=1, opt_arg=5 * size + 1)
    ck.raises("K larger than the whole group's rows", lambda: k(x, y, group=group), ValueError, "larger than")
    n = NumpyGenred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Sum", axis=1)
    ck.raises("numpy with group", lambda: n(x.numpy(), y.numpy(), group=group), ValueError, "pykeops.torch")
    # A rank that never takes part: the others fail after the group's timeout instead of waiting forever.
    short = dist.new_group(list(range(size)), timeout=datetime.timedelta(seconds=3))
    if rank == 0:
        start = time.monotonic()
        ck.raises("a rank that never calls", lambda: g(x, y, group=short), RuntimeError, "did not make the same call")
        if time.monotonic() - start > 30:
            ck.failures.append("the timeout took more than 30 s")
    dist.barrier()


def check_two(ck, rank, size):
    Ms, Ns = uneven(size, 9, 8)  # (one rank without i-rows, the other without j-rows)
    even = [5, 4], [3, 5]  # (every rank reduces its rows against two nonempty blocks)
    forward_checks(ck, rank, size, torch.float64, 1, Ms, Ns)
    forward_checks(ck, rank, size, torch.float64, 1, *even)
    forward_checks(ck, rank, size, torch.float32, 0, Ms, Ns)
    forward_checks(ck, rank, size, torch.float32, 0, *even)
    forward_checks(ck, rank, size, torch.float64, 1, [3, 4], [5, 2], batch=(2,))
    tie_checks(ck, rank, size)
    lazy_tensor_checks(ck, rank, size)
    gradient_checks(ck, rank, size, torch.float64, 1, *even)
    gradient_checks(ck, rank, size, torch.float64, 1, Ms, Ns)
    gradient_checks(ck, rank, size, torch.float32, 0, *even)
    for dtype in (torch.float32, torch.float64):
        solve_checks(ck, rank, size, dtype)
    error_checks(ck, rank, size)
    return ck.failures, ck.count


def check_four(ck, rank, size):  # (the kernels of check_two, from the disk cache)
    Ms, Ns = uneven(size, 10, 9)
    forward_checks(ck, rank, size, torch.float64, 1, Ms, Ns)
    forward_checks(ck, rank, size, torch.float32, 0, [3, 1, 0, 4], [2, 0, 3, 3])
    tie_checks(ck, rank, size)
    gradient_checks(ck, rank, size, torch.float64, 1, [3, 1, 0, 4], [2, 3, 3, 0])
    gradient_checks(ck, rank, size, torch.float32, 0, Ms, Ns)
    solve_checks(ck, rank, size, torch.float64)
    return ck.failures, ck.count


def check_dead_rank(ck, rank, size):
    """Rank 1 raises before the reduction and its process ends: rank 0 gets an error, not a hang."""
    from pykeops.torch import Genred

    if rank == 1:
        raise SystemExit(3)
    g = Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Sum", axis=1)
    start = time.monotonic()
    ck.raises("a peer that died", lambda: g(torch.randn(4, 3), torch.randn(5, 3), group=dist.group.WORLD),
              RuntimeError, "another rank of the group ended")
    return ck.failures, time.monotonic() - start

