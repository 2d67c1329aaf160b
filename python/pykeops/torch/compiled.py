"""torch.compile and torch.export support: torch reductions as the torch.library custom op pykeops::genred (and
KernelSolve as pykeops::kernel_solve).

Eager calls keep the autograd Function of autograd.py (cheaper per call). While torch compiles or exports
(torch.compiler.is_compiling()), a reduction becomes a call of the custom op instead, which Dynamo records as one
opaque node: the op's schema holds what defines the Genred (formula, aliases, reduction and accuracy options, as
strings and ints), the tensors and the call options, and its implementation finds the Genred in a cache. The fake
kernel gives the raw outputs' shapes from the reduction's signature, so no code is generated while tracing; the
post-processing (logsumexp, K-shapes) stays torch code in the graph. Gradients are registered with the op
(register_autograd): they are the derived reductions of autograd.py, run through the op again, so that every
order of derivative is traced too.
"""

import functools
from typing import List, Optional

import torch

from ..common.call_cache import LruCache
from ..common.engine import constant_when_traced, load_engine
from ..common.genred import POST, broadcast_batch, reduction_ops
from . import autograd

# Genreds of the op's calls, by their spec (a compiled graph names each of its reductions by spec alone).
GENREDS = LruCache("compiled_genred", 256, process=True)


def tracing():
    """Whether the current call is being traced by torch.compile / torch.export: then the custom op is used, except
    under torch.func transforms (their autograd.Function, which torch generates for an op's registered autograd,
    has no setup_context: the eager path, its graph breaks included, serves them)."""
    return torch.compiler.is_compiling() and not torch._C._are_functorch_transforms_active()


def spec_of(genred):
    """The op's description of a Genred: (formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc,
    sum_scheme, use_fast_math, enable_chunks), plain values only."""
    c = genred._construction
    return (c["formula"], ";".join(c["aliases"]), genred.reduction_op, c["axis"], c["opt_arg"], c["formula2"],
            c["dtype_acc"], str(c["sum_scheme"]), c["use_fast_math"], c["enable_chunks"])


def genred_of(spec):
    """The torch Genred of a spec, built once (its checks raise the usual errors)."""
    formula, aliases, op, axis, opt_arg, formula2, dtype_acc, sum_scheme, fast_math, chunks = spec
    key = (formula, aliases, op, axis, opt_arg, formula2, dtype_acc, sum_scheme, fast_math, chunks)

    def build():
        from .genred import Genred
        return Genred(formula, aliases.split(";") if aliases else [], reduction_op=op, axis=axis, opt_arg=opt_arg, formula2=formula2,
                      dtype_acc=dtype_acc, sum_scheme=sum_scheme, use_fast_math=fast_math, enable_chunks=chunks)

    return GENREDS.get(key, build)


@torch.library.custom_op("pykeops::genred", mutates_args=())
def genred_op(formula: str, aliases: str, reduction_op: str, axis: int, opt_arg: Optional[int],
              formula2: Optional[str], dtype_acc: str, sum_scheme: str, use_fast_math: bool, enable_chunks: bool,
              backend: str, device_id: int, args: List[torch.Tensor],
              ranges: List[torch.Tensor]) -> List[torch.Tensor]:
    """The raw engine outputs (values and/or int64 indices, before post-processing) of one Genred call; aliases
    are joined by ";", ranges is [] or the six block-sparse arrays (the schema has no list of strings, no optional
    list)."""
    g = genred_of((formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc, sum_scheme, use_fast_math,
                   enable_chunks))
    return list(g._raw_outputs(args, backend, device_id, ranges or None))


@functools.lru_cache(maxsize=None)
def _outputs(engine_reduction):
    """(kind, ...) of each raw output of an engine reduction, from the engine's table."""
    return [kind for kind, _ in next(r["outputs"] for r in load_engine().reductions() if r["name"] == engine_reduction)]


@genred_op.register_fake
def _(formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc, sum_scheme, use_fast_math, enable_chunks,
      backend, device_id, args, ranges):
    g = genred_of((formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc, sum_scheme, use_fast_math,
                   enable_chunks))
    sig = g.signature()
    if len(args) != sig.nargs:
        raise ValueError(f"the formula has {sig.nargs} variables but {len(args)} arguments were given")
    rows, batches = [1, 1], []
    for k, (a, dim, cat) in enumerate(zip(args, sig.arg_dims, sig.arg_cats)):
        core = 1 if cat == 2 else 2
        if a.dim() < core or a.shape[-1] != dim:
            raise ValueError(f"argument {k} should have {dim} columns (shape {'(D,)' if cat == 2 else '(M/N, D)'} "
                             f"after the batch dimensions), got {tuple(a.shape)}")
        if cat < 2:
            rows[cat] = a.shape[-2]
        batches.append(tuple(a.shape[:-core]))
    lead = broadcast_batch(batches, lambda k: f"argument {k}") + (rows[sig.tag],)
    kinds = _outputs(reduction_ops()[reduction_op].engine)
    cols = sig.dim_out // len(kinds)
    dtype = args[0].dtype if args else torch.get_default_dtype()
    device = args[0].device if args else torch.device("cpu")
    return [torch.empty(lead + (cols,), dtype=dtype if kind == "values" else torch.int64, device=device)
            for kind in kinds]


def _setup_context(ctx, inputs, output):
    ctx.spec, (ctx.backend, ctx.device_id, args, ctx.ranges) = inputs[:10], inputs[10:]
    ctx.n_args = len(args)
    ctx.save_for_backward(*args, *output)
    ctx.mark_non_differentiable(*[o for o in output if not o.is_floating_point()])


def _backward(ctx, grads):
    saved = ctx.saved_tensors
    args, outs = saved[: ctx.n_args], saved[ctx.n_args:]
    call = OpCall(genred_of(ctx.spec), ctx.backend, ctx.device_id, ctx.ranges)
    need = ctx.needs_input_grad[12]
    arg_grads = [autograd.gradient(call, args, outs, list(grads), k) if need[k] else None for k in range(len(args))]
    return (None,) * 12 + (arg_grads, [None] * len(ctx.ranges))


genred_op.register_autograd(_backward, setup_context=_setup_context)


class OpCall(autograd.Call):
    """autograd.Call whose derived reductions run through the custom op (backward of a traced reduction)."""

    def run(self, genred, args, ranges="same"):
        return call(genred, args, self.backend, self.device_id, self.ranges if ranges == "same" else ranges)


@constant_when_traced
def _post_and_variant(reduction_op):
    """(post-processing name, the variant that also returns the selected indices or ""), without tracing the
    engine's table."""
    red = reduction_ops()[reduction_op]
    return red.post, red.with_indices or ""


class _TorchOps:
    """What POST's functions use of the tools."""
    log = staticmethod(torch.log)


def call(genred, args, backend="auto", device_id=-1, ranges=None, out=None):
    """The results of genred (a Genred or a spec) on args through the custom op, post-processed by torch code."""
    spec = spec_of(genred) if not isinstance(genred, tuple) else genred
    if out is not None and any(a.requires_grad for a in args):  # (as in eager mode, GenericGenred.__call__)
        raise ValueError("out= cannot be used when an argument requires grad: results written in place are not "
                         "differentiable; drop out= or detach the arguments")
    post, variant = _post_and_variant(spec[2])
    # Min, Max, KMin run as their variant with indices, whose gradient flows through the selected pairs.
    run = spec if not variant else spec[:2] + (variant,) + spec[3:]
    raw = genred_op(*run, backend, device_id, list(args), [] if ranges is None else list(ranges))
    if variant:
        raw = raw[:1]
    p = POST[post]
    shapes = p.shapes([b.shape[-1] for b in raw], tuple(raw[0].shape[:-1]), spec[4])
    results = p.finish(_TorchOps, raw, shapes)
    if out is not None:
        outs = [out] if len(results) == 1 else list(out)
        for o, r in zip(outs, results):
            o.copy_(r)
        results = outs
    return results[0] if len(results) == 1 else tuple(results)


class TracedGenred:
    """What a LazyTensor reduction holds while traced: the Genred's spec, called through the custom op."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, *args, backend="auto", device_id=-1, ranges=None, out=None):
        return call(self.spec, args, backend, device_id, ranges, out)


# ---------------------------------------------------------------------------------------------- KernelSolve

class _Solver:
    """What GenericKernelSolve._solve reads of a solver: its Genred and the position of the unknown."""

    def __init__(self, genred, varinvpos):
        self.genred, self.varinvpos = genred, varinvpos


@torch.library.custom_op("pykeops::kernel_solve", mutates_args=())
def kernel_solve_op(formula: str, aliases: str, reduction_op: str, axis: int, opt_arg: Optional[int],
                    formula2: Optional[str], dtype_acc: str, sum_scheme: str, use_fast_math: bool,
                    enable_chunks: bool, backend: str, device_id: int, varinvpos: int, alpha: float, eps: float,
                    args: List[torch.Tensor], ranges: List[torch.Tensor]) -> torch.Tensor:
    """KernelSolve's solution a of (alpha Id + K) a = b (b: args[varinvpos]), K the Sum of the spec's Genred."""
    from ..common.operations import GenericKernelSolve
    solver = _Solver(genred_of((formula, aliases, reduction_op, axis, opt_arg, formula2, dtype_acc, sum_scheme,
                                use_fast_math, enable_chunks)), varinvpos)
    return GenericKernelSolve._solve(solver, list(args), backend, device_id, alpha, eps, ranges or None)


@kernel_solve_op.register_fake
def _(*inputs):
    varinvpos, args = inputs[12], inputs[15]
    return torch.empty_like(args[varinvpos], memory_format=torch.contiguous_format)


def _solve_setup_context(ctx, inputs, output):
    ctx.spec, (ctx.backend, ctx.device_id, ctx.pos, ctx.alpha, ctx.eps, args, ctx.ranges) = inputs[:10], inputs[10:]
    ctx.save_for_backward(*args, output)


def _solve_backward(ctx, grad):
    # As autograd.KernelSolveFunction.backward: c = (alpha Id + K)^-1 grad, dL/db = c, dL/dv = -d/dv <c, K(v) a>.
    *args, a = ctx.saved_tensors
    pos, need = ctx.pos, ctx.needs_input_grad[15]
    rhs = list(args)
    rhs[pos] = grad
    c = kernel_solve_op(*ctx.spec, ctx.backend, ctx.device_id, pos, ctx.alpha, ctx.eps, rhs, ctx.ranges)
    with_a = list(args)
    with_a[pos] = a
    call = OpCall(genred_of(ctx.spec), ctx.backend, ctx.device_id, ctx.ranges)
    grads = [None if not need[k] else c if k == pos else autograd.gradient(call, with_a, [None], [-c], k)
             for k in range(len(args))]
    return (None,) * 15 + (grads, [None] * len(ctx.ranges))


kernel_solve_op.register_autograd(_solve_backward, setup_context=_solve_setup_context)


def solve(solver, args, backend, device_id, alpha, eps, ranges):
    """A KernelSolve's solution through the custom op (solver: a GenericKernelSolve or a TracedSolve)."""
    spec = spec_of(solver.genred) if not isinstance(solver, TracedSolve) else solver.spec
    return kernel_solve_op(*spec, backend, device_id, solver.varinvpos, float(alpha), float(eps), list(args),
                           [] if ranges is None else list(ranges))


class TracedSolve:
    """What a LazyTensor solve holds while traced: the spec of its Sum and the unknown's position."""

    def __init__(self, spec, varinvpos):
        self.spec, self.varinvpos = spec, varinvpos

    def __call__(self, *args, backend="auto", device_id=-1, alpha=1e-10, eps=1e-6, ranges=None):
        return solve(self, args, backend, device_id, alpha, eps, ranges)
