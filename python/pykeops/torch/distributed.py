"""Reductions sharded over torch.distributed: the reduced side's shards pass around a ring, partial states merge exactly.

Every rank of `group` holds a shard of the i-variables and a shard of the j-variables (parameters are replicated).
A reduction over j called with group= returns the rank's own rows of the reduction over the j-variables of every
rank (over i: the same with the roles swapped). The shards of the reduced side ("travelling" variables) go around
the ring rank -> rank + 1 with batch_isend_irecv while the rank reduces its rows against the block it holds, so
that after P steps it has seen every block. Each block's result is asked from the engine in a mergeable form:

- Sum: block sums added in order (in float64 when dtype_acc is float64, else in the output dtype);
- LogSumExp, SoftMax, Max_SumShiftExp...: the raw (max, sum) states, merged by max-shift;
- Min, Max, ArgMin, ArgMax and their pairs: Min_ArgMin / Max_ArgMax with the block's global offset added to the
  indices, merged with the engine's rule (NaN after every number, ties to the smallest global index);
- KMin, ArgKMin, KMin_ArgKMin: KMin_ArgKMin, the 2K candidates sorted stably by the same rule.

Backward (first order) runs the derived reductions of pykeops.torch.autograd sharded too: a gradient indexed by
the rank's own rows is another ring reduction; one indexed by the travelling side is accumulated along the ring
(each rank adds its rows' contribution to the block it holds) and arrives at the block's owner after P steps;
a parameter's gradient is all-reduced. Every rank must take part in each call and in its backward, as with DDP.
"""

import contextlib
import math

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable

from ..common.genred import reduction_ops
from .autograd import Call, gradient, selected_terms, selection_ranges, sum_to_shape

# How the partial results of each engine reduction merge, and the mergeable reduction_op each block runs.
MERGE = {
    "Sum_Reduction": ("sum", "Sum"),
    "Max_SumShiftExpWeight_Reduction": ("shift", None),  # (None: the op itself, its raw outputs are the state)
    "Min_Reduction": ("min", "Min_ArgMin"), "ArgMin_Reduction": ("min", "Min_ArgMin"),
    "Min_ArgMin_Reduction": ("min", "Min_ArgMin"),
    "Max_Reduction": ("max", "Max_ArgMax"), "ArgMax_Reduction": ("max", "Max_ArgMax"),
    "Max_ArgMax_Reduction": ("max", "Max_ArgMax"),
    "KMin_Reduction": ("kmin", "KMin_ArgKMin"), "ArgKMin_Reduction": ("kmin", "KMin_ArgKMin"),
    "KMin_ArgKMin_Reduction": ("kmin", "KMin_ArgKMin"),
}


@contextlib.contextmanager
def transfers(what):
    """Names a failed transfer: a peer that ended or never made the call (Gloo / NCCL say only what timed out)."""
    try:
        yield
    except RuntimeError as e:
        raise RuntimeError(
            f"sharded reduction: {what} failed ({e}); another rank of the group ended or did not make the same call "
            "(every rank must make the same sharded calls; the wait is bounded by the process group's timeout)"
        ) from e


def wait(works):
    with transfers("a ring transfer"):
        for w in works:
            w.wait()


def exchange(group, local):
    """Every rank's local() (a small picklable summary), or an error on every rank when one rank's local() raised:
    its own exception there, a RuntimeError naming it on the others (so that no rank waits for a failed one)."""
    try:
        info, error = local(), None
    except Exception as e:  # (re-raised below, after the others have heard of it)
        info, error = None, e
    infos = [None] * dist.get_world_size(group)
    with transfers("the exchange of the ranks' layouts"):
        dist.all_gather_object(infos, (None if error is None else f"{type(error).__name__}: {error}", info), group=group)
    if error is not None:
        raise error
    failed = [(k, msg) for k, (msg, _) in enumerate(infos) if msg is not None]
    if failed:
        k, msg = failed[0]
        raise RuntimeError(f"sharded reduction: rank {k} of the group failed: {msg}")
    return [info for _, info in infos]


class Plan:
    """The layout of one sharded call, agreed by every rank: the travelling (reduced-side) arguments, their rows on
    each rank and global offsets, the ring's neighbours."""

    def __init__(self, genred, args, group, backend, device_id, tracking):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("group= needs an initialised torch.distributed process group (init_process_group)")
        self.group, self.backend, self.device_id = group, backend, device_id
        self.rank, self.size = dist.get_rank(group), dist.get_world_size(group)
        if self.rank < 0:
            raise ValueError("group= names a process group this process is not a member of")
        sig = genred.signature()
        self.ring_cat = 1 - sig.tag
        self.ring_pos = [k for k, c in enumerate(sig.arg_cats) if c == self.ring_cat]

        def local():
            if not self.ring_pos:
                raise ValueError(f"a sharded reduction over {'ji'[sig.tag]} needs a {('Vi', 'Vj')[self.ring_cat]} "
                                 "variable: there is nothing to shard")
            layout, _ = genred._layout(args, backend, device_id)  # every check of the local arguments
            shapes = [tuple(args[k].shape) for k in self.ring_pos]
            return dict(rows=shapes[0][-2], shapes=[s[:-2] + s[-1:] for s in shapes], dtype=layout.dtype,
                        tracking=tracking, device=args[self.ring_pos[0]].device.type)

        infos = exchange(group, local)
        for key, what in (("dtype", "dtype"), ("shapes", "shapes (but for the rows)"), ("device", "device type"),
                          ("tracking", "autograd tracking (requires_grad / grad mode)")):
            for k, info in enumerate(infos):
                if info[key] != infos[0][key]:
                    raise ValueError(f"sharded reduction: rank {k} has {what} {info[key]} for the sharded variables "
                                     f"but rank 0 has {infos[0][key]}: every rank must agree")
        self.rows = [info["rows"] for info in infos]
        self.offsets = [sum(self.rows[:q]) for q in range(self.size)]
        self.total = sum(self.rows)
        self.shapes = infos[0]["shapes"]
        first = args[self.ring_pos[0]]
        self.dtype, self.device = first.dtype, first.device
        self.next = dist.get_global_rank(group, (self.rank + 1) % self.size)  # (P2P ops name global ranks)
        self.prev = dist.get_global_rank(group, (self.rank - 1) % self.size)

    def block_shapes(self, q):
        return [s[:-1] + (self.rows[q], s[-1]) for s in self.shapes]

    def pack(self, args):
        """This rank's travelling arguments as one flat buffer."""
        return torch.cat([args[k].detach().reshape(-1) for k in self.ring_pos])

    def unpack(self, buffer, q, args):
        """args with the travelling arguments replaced by the block of rank q held in buffer."""
        block, start = list(args), 0
        for k, shape in zip(self.ring_pos, self.block_shapes(q)):
            n = math.prod(shape)
            block[k] = buffer[start:start + n].view(shape)
            start += n
        return block

    def without_blocks(self, args):
        """args with empty travelling arguments: the engine's result for an empty reduced set."""
        empty = list(args)
        for k in self.ring_pos:
            empty[k] = args[k].new_empty(args[k].shape[:-2] + (0, args[k].shape[-1]))
        return empty

    def packed_numel(self, q):
        return sum(map(math.prod, self.block_shapes(q)))

    def _post(self, sends, recvs, tag):
        """Start the nonempty transfers (both ends know every size, so both skip the same empty ones)."""
        ops = [dist.P2POp(dist.isend, t, self.next, self.group, tag) for t in sends if t.numel()]
        ops += [dist.P2POp(dist.irecv, t, self.prev, self.group, tag) for t in recvs if t.numel()]
        with transfers("a ring transfer"):
            return dist.batch_isend_irecv(ops) if ops else []

    def ring(self, args, visit, carry=None):
        """visit(q, block_args) for every rank q's block (own first), each while the next block is in flight.

        carry(q) -> the shape of a value accumulated for block q: then visit returns this rank's contribution, the
        sum of every rank's contributions travels with the block and ring returns the one of this rank's block."""
        buffer = self.pack(args)
        pending, acc = None, None  # the carry being received (buffer, works)
        for s in range(self.size):
            q = (self.rank - s) % self.size
            nxt, works = None, []
            if s < self.size - 1:
                nxt = torch.empty(self.packed_numel((q - 1) % self.size), dtype=self.dtype, device=self.device)
                works = self._post([buffer], [nxt], 2 * s)
            part = visit(q, self.unpack(buffer, q, args))
            if carry is not None:
                if pending is not None:
                    wait(pending[1])
                    part = part + pending[0]
                if self.size == 1:
                    acc = part
                else:
                    incoming = torch.empty(carry((q - 1) % self.size), dtype=part.dtype, device=part.device)
                    part = part.contiguous()
                    pending = (incoming, self._post([part], [incoming], 2 * s + 1), part)
            wait(works)
            buffer = nxt
        if carry is not None and self.size > 1:
            wait(pending[1])
            acc = pending[0]
        return acc


# ------------------------------------------------------------------------------------------ merging states

def ranks_before(a, ia, b, ib, maximize):
    """Whether (value a, index ia) ranks before (b, ib): an index before none (-1), a number before NaN, the smaller
    (Max: larger) value, at equal values the smaller index, as the engine orders one device's candidates."""
    va, vb = ia >= 0, ib >= 0
    na, nb = torch.isnan(a), torch.isnan(b)
    better = (a > b) if maximize else (a < b)
    same = (a == b) | (na & nb)
    return (va & ~vb) | ((va == vb) & ((~na & nb) | better | (same & (ia < ib))))


def sort_candidates(v, i, K):
    """The K best of the candidates (..., n, D) along n, by the order of ranks_before (Min), stably."""
    big = torch.iinfo(torch.int64).max
    keys = (lambda v, i: torch.where(i >= 0, i, big), lambda v, i: torch.where(torch.isnan(v), 0, v),
            lambda v, i: torch.isnan(v) + 2 * (i < 0))
    for key in keys:  # (least significant first)
        order = torch.argsort(key(v, i), dim=-2, stable=True)
        v, i = torch.gather(v, -2, order), torch.gather(i, -2, order)
    return v[..., :K, :], i[..., :K, :]


class Merger:
    """The running state of one rank's rows over the blocks seen so far, and the raw outputs it ends as."""

    def __init__(self, genred, plan):
        self.genred, self.plan = genred, plan
        red = reduction_ops()[genred.reduction_op]
        self.kind, twin = MERGE[red.engine]
        self.block_genred = genred if twin is None or twin == genred.reduction_op else genred.twin(twin)
        self.K = genred.opt_arg if red.takes_k else 1
        self.state = None
        self.acc_dtype = torch.float64 if genred.dtype_acc == "float64" else None

    def block_outputs(self, q, block):
        g = self.block_genred
        if self.kind == "kmin" and self.plan.rows[q] < self.K:  # (the engine needs K <= the block's rows)
            cache = g.__dict__.setdefault("_small_k", {})
            n = self.plan.rows[q]
            if n not in cache:
                cache[n] = type(g)(reduction_op="KMin_ArgKMin", **{**g._construction, "opt_arg": n})
            g = cache[n]
        return g._raw_outputs(block, self.plan.backend, self.plan.device_id, None)

    def visit(self, q, block):
        if self.plan.rows[q] == 0:
            return None
        raw = self.block_outputs(q, block)
        kind, state = self.kind, self.state
        if kind == "sum":
            part = raw[0] if self.acc_dtype is None else raw[0].to(self.acc_dtype)
            self.state = part if state is None else state + part
        elif kind == "shift":
            part = raw[0] if self.acc_dtype is None else raw[0].to(self.acc_dtype)
            self.state = part if state is None else merge_shift(state, part)
        else:
            v, i = raw
            i = torch.where(i >= 0, i + self.plan.offsets[q], i)
            if kind == "kmin":
                kq = min(self.K, self.plan.rows[q])
                lead, D = v.shape[:-1], v.shape[-1] // kq
                v, i = v.reshape(*lead, kq, D), i.reshape(*lead, kq, D)
                if state is not None:
                    v, i = torch.cat([state[0], v], -2), torch.cat([state[1], i], -2)
                self.state = sort_candidates(v, i, self.K)
            elif state is None:
                self.state = (v, i)
            else:
                win = ranks_before(v, i, state[0], state[1], kind == "max")
                self.state = (torch.where(win, v, state[0]), torch.where(win, i, state[1]))
        return None

    def outputs(self, args):
        """(raw outputs of the user's reduction, the (values, indices) pair of a selection or None)."""
        g = self.genred
        if self.state is None:  # nothing to reduce anywhere: what the engine gives for an empty reduced set
            raw = g._raw_outputs(self.plan.without_blocks(args), self.plan.backend, self.plan.device_id, None)
            return list(raw), None
        if self.kind in ("sum", "shift"):
            out = self.state.to(self.plan.dtype)
            return [out], None
        v, i = self.state
        if self.kind == "kmin":
            lead = v.shape[:-2]
            if v.shape[-2] < self.K:  # (only when the global set has fewer than K elements: refused before)
                raise AssertionError("sharded KMin: fewer candidates than K")
            v, i = v.reshape(*lead, self.K * v.shape[-1]), i.reshape(*lead, self.K * i.shape[-1])
        engine = reduction_ops()[g.reduction_op].engine
        if engine.startswith("Arg"):
            return [i], (v, i)
        if "_Arg" in engine:
            return [v, i], (v, i)
        return [v], (v, i)


def merge_shift(a, b):
    """Max-shift merge of two raw [m, s...] states: m = max, s = s_a exp(m_a - m) + s_b exp(m_b - m)."""
    ma, mb = a[..., :1], b[..., :1]
    m = torch.maximum(ma, mb)
    empty = m == -float("inf")
    wa = torch.where(empty, 1.0, torch.exp(ma - torch.where(empty, 0.0, m)))
    wb = torch.where(empty, 1.0, torch.exp(mb - torch.where(empty, 0.0, m)))
    return torch.cat([m, a[..., 1:] * wa + b[..., 1:] * wb], -1)


# ------------------------------------------------------------------------------------------ calls

def forward_raw(genred, args, plan):
    """(raw outputs over the whole group, selection pair or None) of genred on this rank's rows."""
    red = reduction_ops()[genred.reduction_op]
    if red.takes_k and plan.total < genred.opt_arg:
        raise ValueError(f"{red.engine}: K = {genred.opt_arg} is larger than the number of reduced elements "
                         f"({plan.total}, over the whole group)")
    merger = Merger(genred, plan)
    plan.ring(args, merger.visit)
    return merger.outputs(args)


def ring_sum(genred, args, plan, ranges_of=None):
    """A Sum genred over args, sharded with the travelling side of plan: indexed by this rank's rows (a ring
    reduction) or by the travelling side (accumulated along the ring, returned to the owner). ranges_of(q): the
    block-sparse ranges of block q (None: dense)."""
    sig = genred.signature()
    out_cat = sig.tag
    extra = dict(backend=plan.backend, device_id=plan.device_id)

    def run(q, block):
        return genred(*block, **extra, ranges=None if ranges_of is None else ranges_of(q))

    if out_cat != plan.ring_cat:
        total = [None]

        def visit(q, block):
            if plan.rows[q]:
                part = run(q, block)
                total[0] = part if total[0] is None else total[0] + part

        plan.ring(args, visit)
        if total[0] is None:  # (no travelling rows anywhere: a sum over nothing)
            return genred(*plan.without_blocks(args), **extra)
        return total[0]

    # Indexed by the travelling side: block q's contribution has shape batch + (rows[q], dim_out).
    layout, _ = genred._layout(args, plan.backend, plan.device_id)
    batch = tuple(layout.bound.batch)

    def shape_of(q):
        return batch + (plan.rows[q], sig.dim_out)

    def visit(q, block):
        if plan.rows[q]:
            return run(q, block)
        return torch.zeros(shape_of(q), dtype=plan.dtype, device=plan.device)

    return plan.ring(args, visit, carry=shape_of)


class ShardedCall(Call):
    """Call of pykeops.torch.autograd whose Sum reductions run sharded (its gradient formulas are reused)."""

    def __init__(self, genred, plan):
        super().__init__(genred, plan.backend, plan.device_id, None)
        self.plan = plan

    def run(self, genred, args, ranges="same"):
        if ranges not in ("same", None):
            raise AssertionError("sharded gradients with ranges go through selected_gradient")
        return ring_sum(genred, args, self.plan)


def selected_gradient(call, args, pair, grad, k):
    """Gradient through the selected pairs (Min, Max, KMin), as autograd.selected_gradient, with the global
    indices translated to each block's own (-1 outside it)."""
    plan, g = call.plan, call.genred
    sig = g.signature()
    cats, tag = sig.arg_cats, sig.tag
    values, idx = pair
    K = g.opt_arg if reduction_ops()[g.reduction_op].takes_k else 1
    total = None
    for col, derived in selected_terms(call, k, K, values.shape[-1] // K):
        sel = idx[..., col]

        def ranges_of(q, sel=sel):
            lo, hi = plan.offsets[q], plan.offsets[q] + plan.rows[q]
            local = torch.where((sel >= lo) & (sel < hi), sel - lo, -1)
            return selection_ranges(local, plan.rows[q], tag)

        out = ring_sum(derived, list(args) + [grad[..., col:col + 1].contiguous()], plan, ranges_of)
        if cats[k] == 2:
            out = out.sum(dim=-2)
        total = out if total is None else total + out
    return sum_to_shape(total, args[k].shape)


class ShardedFunction(torch.autograd.Function):
    """Raw outputs of a sharded reduction, differentiable (first order) in every argument."""

    @staticmethod
    def forward(ctx, genred, plan, *args):
        outs, pair = forward_raw(genred, args, plan)
        ctx.genred, ctx.plan, ctx.pair = genred, plan, pair
        ctx.save_for_backward(*args, *outs)
        ctx.n_args = len(args)
        ctx.mark_non_differentiable(*[o for o in outs if not o.is_floating_point()])
        return tuple(outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        args, outs = saved[: ctx.n_args], saved[ctx.n_args:]
        g, plan = ctx.genred, ctx.plan
        call = ShardedCall(g, plan)
        kind = reduction_ops()[g.reduction_op].grad
        cats = g.signature().arg_cats
        # (needs_input_grad is the same on every rank: Plan checked that tracking agrees, so the collectives match)
        result = [None, None]
        for k in range(ctx.n_args):
            if not ctx.needs_input_grad[k + 2] or kind == "index":
                result.append(None)
                continue
            if kind == "select":
                gk = None if ctx.pair is None else selected_gradient(call, args, ctx.pair, grads[0], k)
                if gk is None:
                    gk = torch.zeros_like(args[k])
            else:
                gk = gradient(call, args, outs, grads, k)
            if cats[k] == 2:  # a replicated parameter: the gradient of the sum of every rank's rows
                gk = all_reduced(gk, plan)
            result.append(gk)
        return tuple(result)


def all_reduced(t, plan):
    """The sum of t over the group (a parameter's gradient, CG's dot products)."""
    t = t.contiguous()
    with transfers("an all-reduce"):
        dist.all_reduce(t, group=plan.group)
    return t


def tracked(args):
    """Which arguments autograd tracks (every rank must agree: the backward's collectives follow them)."""
    if not torch.is_grad_enabled():
        return ()
    flags = tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    return flags if any(flags) else ()


def genred_call(genred, args, group, backend, device_id, ranges, out):
    """Genred.__call__ with group=: this rank's rows of the reduction over the whole group."""
    if ranges is not None:
        raise ValueError("group= and ranges= cannot be combined: block-sparse ranges index one device's rows")
    if out is not None:
        raise ValueError("group= and out= cannot be combined: drop out=")
    if torch._C._are_functorch_transforms_active():
        raise ValueError("group= is not supported under torch.func transforms (vmap, grad, jacrev...)")
    grad = tracked(args)
    plan = Plan(genred, args, group, backend, device_id, grad)
    if grad:
        raw = list(ShardedFunction.apply(genred, plan, *args))
    else:
        raw = forward_raw(genred, args, plan)[0]
    post = genred._post
    shapes = post.shapes([b.shape[-1] for b in raw], tuple(raw[0].shape[:-1]), genred.opt_arg)
    results = post.finish(genred.tools, raw, shapes)
    return results[0] if len(results) == 1 else tuple(results)


# ------------------------------------------------------------------------------------------ KernelSolve

def all_sum(plan):
    """The sum of a float over the group (CG's dot products), in float64."""
    def total(x):
        return float(all_reduced(torch.tensor([float(x)], dtype=torch.float64, device=plan.device), plan))
    return total


def sharded_solve(solver, plan, args, alpha, eps):
    """(alpha Id + K) a = b by conjugate gradient, K(a) a sharded Sum, the dot products all-reduced."""
    from ..common.operations import conjugate_gradient

    args, pos = list(args), solver.varinvpos

    def K(a):
        args[pos] = a
        return forward_raw(solver.genred, args, plan)[0][0]

    b = args[pos]
    return conjugate_gradient(lambda a: K(a) + alpha * a, b, eps, total=all_sum(plan))


class ShardedSolveFunction(torch.autograd.Function):
    """A sharded KernelSolve, differentiated as autograd.KernelSolveFunction: dL/db = c = (alpha Id + K)^-1 G,
    dL/dv = -d/dv <c, K(v) a>, both sharded."""

    @staticmethod
    def forward(ctx, solver, plan, alpha, eps, *args):
        a = sharded_solve(solver, plan, args, alpha, eps)
        ctx.solver, ctx.plan, ctx.alpha, ctx.eps = solver, plan, alpha, eps
        ctx.save_for_backward(*args, a)
        return a

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        solver, plan = ctx.solver, ctx.plan
        *args, a = ctx.saved_tensors
        pos = solver.varinvpos
        rhs = list(args)
        rhs[pos] = grad.contiguous()
        c = sharded_solve(solver, plan, rhs, ctx.alpha, ctx.eps)
        with_a = list(args)
        with_a[pos] = a
        call = ShardedCall(solver.genred, plan)
        cats = solver.genred.signature().arg_cats
        result = [None] * 4
        for k in range(len(args)):
            if not ctx.needs_input_grad[k + 4]:
                result.append(None)
            elif k == pos:
                result.append(c)
            else:
                gk = gradient(call, with_a, [None], [-c], k)
                if cats[k] == 2:
                    gk = all_reduced(gk, plan)
                result.append(gk)
        return tuple(result)


def solve_call(solver, args, group, backend, device_id, alpha, eps, ranges):
    """KernelSolve.__call__ with group=: every rank holds the same rows of the i- and j-variables and of b (one
    shard of the points), and gets its rows of the solution of the whole system."""
    if ranges is not None:
        raise ValueError("group= and ranges= cannot be combined: block-sparse ranges index one device's rows")
    g, pos = solver.genred, solver.varinvpos

    def local():
        layout, _ = g._layout(args, backend, device_id)
        if tuple(layout.shapes[0]) != tuple(args[pos].shape):
            raise ValueError(
                f"a sharded KernelSolve needs a square system on every rank (its i- and j-shards the same points): "
                f"the right-hand side (argument {pos}) has shape {tuple(args[pos].shape)} but the reduction maps "
                f"it to shape {tuple(layout.shapes[0])}")

    exchange(group, local)
    grad = tracked(args)
    plan = Plan(g, args, group, backend, device_id, grad)
    if grad:
        return ShardedSolveFunction.apply(solver, plan, alpha, eps, *args)
    return sharded_solve(solver, plan, args, alpha, eps)
