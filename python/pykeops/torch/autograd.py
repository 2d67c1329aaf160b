"""Autograd for pykeops.torch reductions: backward, forward mode and vmap, each built from more KeOps reductions.

A reduction's raw engine outputs are the result of one torch.autograd.Function (new style: forward /
setup_context / backward / jvp / vmap). Its backward and jvp are themselves torch Genred calls on the saved
inputs, so they are recorded again when a graph is being built: derivatives of any order work.

- Sum: the gradient with respect to v is Sum(Grad(F, v, e)) over the other index (parameters: summed over all).
- Max_SumShiftExpWeight, raw [m, s]: s = sum exp(F - m) G is differentiated with m held constant (the saved m);
  m gets no gradient. The log-sum-exp m + log(s) and the softmax s_1.../s_0 computed from them by torch are then
  exact, at every order, because m + log(s) does not depend on the value of m.
- Min, Max, KMin and the values of Min_ArgMin, Max_ArgMax, KMin_ArgKMin (beyond KeOps): the gradient flows through
  the selected (i, j) pairs, as torch.min / torch.topk do. The forward computes the indices too; the gradient of
  each selected pair is a Sum(Grad(Elem(F, c), v, e)) restricted to that pair with block-sparse ranges.
- Indices (ArgMin, ArgKMin, ...) are integers: not differentiable.
"""

import torch
import torch.autograd.forward_ad as fwAD

try:  # the step of torch's Function.apply that GenredFunction.apply keeps
    from torch._functorch.utils import unwrap_dead_wrappers
except ImportError:
    unwrap_dead_wrappers = None

from ..common import derivatives
from ..common.derivatives import (  # noqa: F401  (gradient and its helpers: used by compiled.py, distributed.py)
    gradient, reduced_rows, selected_pairs, selected_terms, var)
from ..common.genred import reduction_ops



def sum_to_shape(g, shape):
    """Sums a gradient computed over the broadcast batch shape back to an input's own shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.dim() - len(shape)
    if lead > 0:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


class TorchOps:
    """The array primitives of the shared derivative formulas (common/derivatives.py) on torch tensors."""
    stop_gradient = staticmethod(torch.Tensor.detach)
    zeros_like = staticmethod(torch.zeros_like)
    contiguous = staticmethod(torch.Tensor.contiguous)

    @staticmethod
    def sum_rows(x):
        return x.sum(dim=-2)

    @staticmethod
    def sum_to_shape(g, shape):
        return sum_to_shape(g, shape)

    @staticmethod
    def selection_ranges(idx, n_red, tag):
        return selection_ranges(idx, n_red, tag)


class Call(derivatives.Call):
    """What a differentiable call needs besides the tensors: the Genred and its call-time options."""
    ops = TorchOps


class GenredFunction(torch.autograd.Function):
    """Raw outputs of call.genred on args, differentiable in every argument."""

    @classmethod
    def apply(cls, *args):
        # torch's Function.apply binds forward's default arguments through inspect.signature at every call (~10 us);
        # forward has none, so outside functorch transforms this goes straight to the C++ apply that it ends in.
        if unwrap_dead_wrappers is None or torch._C._are_functorch_transforms_active():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*unwrap_dead_wrappers(args))

    @staticmethod
    def forward(call, *args):
        return tuple(call.genred._raw_outputs(args, call.backend, call.device_id, call.ranges))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.call = inputs[0]
        ctx.save_for_backward(*inputs[1:], *output)
        if fwAD._current_level >= 0 or _transforms_active():  # (only then may jvp be asked for, during apply)
            ctx.save_for_forward(*inputs[1:], *output)
        ctx.n_args = len(inputs) - 1
        indices = [o for o in output if not o.is_floating_point()]
        if indices:
            ctx.mark_non_differentiable(*indices)

    @staticmethod
    def backward(ctx, *grads):
        saved, n, needs = ctx.saved_tensors, ctx.n_args, ctx.needs_input_grad
        args, outs = saved[:n], saved[n:]
        return (None, *(gradient(ctx.call, args, outs, grads, k) if needs[k + 1] else None for k in range(n)))

    @staticmethod
    def jvp(ctx, _call_tangent, *tangents):
        saved = ctx.saved_tensors
        args, outs = saved[: ctx.n_args], saved[ctx.n_args:]
        return tuple(tangent_of_outputs(ctx.call, args, outs, tangents))

    @staticmethod
    def vmap(info, in_dims, call, *args):
        # The vmapped dimension becomes a leading KeOps batch dimension (broadcast where an input has none).
        moved = [a.unsqueeze(0) if d is None else a.movedim(d, 0) for a, d in zip(args, in_dims[1:])]
        outs = GenredFunction.apply(call, *moved)
        return outs, tuple(0 for _ in outs)


_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda a: False)
_transforms_active = torch._C._are_functorch_transforms_active


def may_differentiate(args):
    """Whether a derivative of the call may be asked for: grad, forward mode or a torch.func transform."""
    return any(a.requires_grad or _wrapped(a) or fwAD.unpack_dual(a).tangent is not None for a in args)


def untracked(args):
    """Whether no autograd mode can see this call (no grad to record, no dual level, no torch.func transform, no
    left-over functorch wrapper): then the autograd Function is skipped."""
    if fwAD._current_level >= 0 or _transforms_active():
        return False
    Tensor, grad = torch.Tensor, torch.is_grad_enabled()
    for a in args:
        if isinstance(a, Tensor) and ((grad and a.requires_grad) or _wrapped(a)):
            return False
    return True


def apply(genred, args, backend, device_id, ranges):
    """The raw engine outputs of a Genred call that an autograd mode sees (not untracked(args)), recorded for
    autograd (Min, Max, KMin also keep their indices when a derivative may be asked for)."""
    # (the engine's table names, for Min, Max, KMin, the variant that also returns the selected indices)
    variant = reduction_ops()[genred.reduction_op].with_indices
    if variant is not None and may_differentiate(args):
        sig = genred.signature()
        # (over an empty set nothing is selected: the values are +-inf and their derivatives zero)
        if reduced_rows(args, sig.arg_cats, sig.tag) != 0:
            return list(GenredFunction.apply(Call(genred.twin(variant), backend, device_id, ranges), *args))[:1]
    return list(GenredFunction.apply(Call(genred, backend, device_id, ranges), *args))


# ---------------------------------------------------------------------------------------------- backward

def selection_ranges(idx, n_red, tag):
    """Block-sparse ranges (KeOps order: i side, then j side) in which output row o (indexed by i if tag == 0)
    reduces over the single index idx[..., o] only (-1: over nothing), and symmetrically: reduced row r over the
    output rows that selected it. idx has shape batch + (n_out,); the arrays get the same leading batch dims (one
    pattern per batch), so every batch has the same counts: one interval per output row, empty where idx is -1."""
    dev, n_out = idx.device, idx.shape[-1]
    lead = idx.shape[:-1]
    rows = torch.arange(n_out, device=dev).expand(idx.shape)
    valid = idx >= 0
    sel = torch.where(valid, idx, 0)
    ranges_o = torch.stack([rows, rows + 1], -1)
    slices_o = rows + 1
    red_o = torch.stack([sel, sel + valid.to(torch.int64)], -1)
    # The other side: reduced rows 0..n_red-1, each over its selecting output rows (invalid ones count, as empty
    # intervals, towards the last reduced row, so that every batch has n_out intervals).
    key = torch.where(valid, idx, n_red - 1)
    order = torch.argsort(key, dim=-1, stable=True)
    src, src_valid = torch.gather(rows, -1, order), torch.gather(valid, -1, order)
    red_r = torch.stack([torch.where(src_valid, src, 0), torch.where(src_valid, src + 1, 0)], -1)
    counts = torch.zeros(*lead, n_red, dtype=torch.int64, device=dev).scatter_add_(-1, key, torch.ones_like(key))
    targets = torch.arange(n_red, device=dev).expand(*lead, n_red)
    ranges_r = torch.stack([targets, targets + 1], -1)
    slices_r = torch.cumsum(counts, -1)
    sides = tuple(a.contiguous() for a in (ranges_o, slices_o, red_o, ranges_r, slices_r, red_r))
    return sides if tag == 0 else (*sides[3:], *sides[:3])


# ---------------------------------------------------------------------------------------------- forward mode

def tangent_of_outputs(call, args, outs, tangents):
    """Tangents of the raw outputs given the inputs' tangents (None: zero)."""
    g = call.genred
    sig = g.signature()
    dims, cats, n, tag = sig.arg_dims, sig.arg_cats, sig.nargs, sig.tag
    kind = reduction_ops()[g.reduction_op].grad
    active = [k for k, t in enumerate(tangents) if t is not None]
    zero = [torch.zeros_like(o) if o.is_floating_point() else None for o in outs]
    if not active or kind == "index":
        return zero
    tvars = [var(n + q, dims[k], cats[k]) for q, k in enumerate(active)]
    targs = [tangents[k] for k in active]
    if kind == "select":
        return selected_tangent(call, args, outs, active, tvars, targs)
    if kind == "sum":
        diff = "+".join(f"Diff({g.inner_formula},{var(k, dims[k], cats[k])},{t})" for k, t in zip(active, tvars))
        return [call.run(call.derived(diff, tvars), list(args) + targs)]
    m = var(n + len(active), 1, tag)
    h = f"Exp({g.inner_formula}-{m})" + (f"*{g.weight_formula}" if g.weight_formula else "")
    diff = "+".join(f"Diff({h},{var(k, dims[k], cats[k])},{t})" for k, t in zip(active, tvars))
    ds = call.run(call.derived(diff, tvars + [m]), list(args) + targs + [outs[0][..., :1].detach()])
    return [torch.cat([torch.zeros_like(ds[..., :1]), ds], -1)]


def selected_tangent(call, args, outs, active, tvars, targs):
    g = call.genred
    sig = g.signature()
    dims, cats, tag = sig.arg_dims, sig.arg_cats, sig.tag
    n_red = reduced_rows(args, cats, tag)
    if n_red == 0:
        return [torch.zeros_like(outs[0])] + [None] * (len(outs) - 1)
    values, idx, K = selected_pairs(call, args, outs)
    D = values.shape[-1] // K
    cols = []
    for r in range(K):
        for c in range(D):
            f = g.inner_formula if D == 1 else f"Elem({g.inner_formula},{c})"
            diff = "+".join(f"Diff({f},{var(k, dims[k], cats[k])},{t})" for k, t in zip(active, tvars))
            ranges = selection_ranges(idx[..., r * D + c], n_red, tag)
            cols.append(call.run(call.derived(diff, tvars), list(args) + targs, ranges))
    dvalues = torch.cat(cols, -1)
    return [dvalues] + [None] * (len(outs) - 1)


# ---------------------------------------------------------------------------------------------- KernelSolve

class SolveCall:
    def __init__(self, solver, backend, device_id, alpha, eps, ranges):
        self.solver, self.backend, self.device_id = solver, backend, device_id
        self.alpha, self.eps, self.ranges = alpha, eps, ranges


class KernelSolveFunction(torch.autograd.Function):
    """a = (alpha Id + K)^-1 b, differentiated implicitly: with K symmetric (as KernelSolve assumes),
    dL/db = (alpha Id + K)^-1 G =: c, and for every other input v, dL/dv = -d/dv <c, K(v) a>. Forward mode:
    da = (alpha Id + K)^-1 (db - dK a)."""

    @staticmethod
    def forward(call, *args):
        return call.solver._solve(args, call.backend, call.device_id, call.alpha, call.eps, call.ranges)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.call = inputs[0]
        ctx.save_for_backward(*inputs[1:], output)
        ctx.save_for_forward(*inputs[1:], output)

    @staticmethod
    def jvp(ctx, _call_tangent, *tangents):
        # (alpha Id + K) a = b  =>  (alpha Id + K) da = db - dK a, dK a: the Sum's tangent with a held constant.
        call = ctx.call
        *args, a = ctx.saved_tensors
        pos = call.solver.varinvpos
        with_a = list(args)
        with_a[pos] = a
        others = [None if k == pos else t for k, t in enumerate(tangents)]
        dKa = tangent_of_outputs(Call(call.solver.genred, call.backend, call.device_id, call.ranges), with_a, [a], others)[0]
        rhs = list(args)
        rhs[pos] = (tangents[pos] if tangents[pos] is not None else torch.zeros_like(a)) - dKa
        return solve(call.solver, rhs, call.backend, call.device_id, call.alpha, call.eps, call.ranges)  # vmap-able

    @staticmethod
    def vmap(info, in_dims, call, *args):
        # As for Genred: the vmapped dimension becomes a batch dimension (one block-diagonal system, solved at once).
        moved = [a.unsqueeze(0) if d is None else a.movedim(d, 0) for a, d in zip(args, in_dims[1:])]
        return KernelSolveFunction.apply(call, *moved), 0

    @staticmethod
    def backward(ctx, grad):
        call = ctx.call
        *args, a = ctx.saved_tensors
        pos = call.solver.varinvpos
        rhs = list(args)
        rhs[pos] = grad
        c = solve(call.solver, rhs, call.backend, call.device_id, call.alpha, call.eps, call.ranges)
        with_a = list(args)
        with_a[pos] = a
        genred_call = Call(call.solver.genred, call.backend, call.device_id, call.ranges)
        grads = [None]
        for k in range(len(args)):
            if not ctx.needs_input_grad[k + 1]:
                grads.append(None)
            elif k == pos:
                grads.append(c)
            else:
                grads.append(gradient(genred_call, with_a, [None], [-c], k))
        return tuple(grads)


def solve(solver, args, backend, device_id, alpha, eps, ranges):
    """KernelSolve's solution, recorded for autograd (its backward solves again: any order)."""
    return KernelSolveFunction.apply(SolveCall(solver, backend, device_id, alpha, eps, ranges), *args)
