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

from ..common.call_cache import LruCache
from ..common.genred import reduction_ops

# Derived Genreds (gradients, tangents) remembered per Genred: a KMin's gradient asks for one per rank and component.
DERIVED_PER_GENRED = 256


def var(pos, dim, cat):
    return f"Var({pos},{dim},{cat})"


class Call:
    """What a differentiable call needs besides the tensors: the Genred and its call-time options."""

    def __init__(self, genred, backend, device_id, ranges):
        self.genred, self.backend, self.device_id, self.ranges = genred, backend, device_id, ranges

    def derived(self, formula, extra_aliases, reduction_op="Sum", axis=None, opt_arg=None, formula2=None):
        """A Genred of the same class and accuracy options over the extended argument list, built once per
        Genred and derived formula (backward and jvp ask for the same ones at every call)."""
        axis = self.genred.axis if axis is None else axis
        key = (formula, tuple(extra_aliases), reduction_op, axis, opt_arg, formula2)
        return self.cached(key, lambda: self.new_derived(formula, extra_aliases, reduction_op, axis, opt_arg, formula2))

    def new_derived(self, formula, extra_aliases, reduction_op="Sum", axis=None, opt_arg=None, formula2=None):
        """The Genred that derived() remembers, made anew."""
        g = self.genred
        return type(g)(
            formula, g.aliases + extra_aliases, reduction_op=reduction_op, axis=g.axis if axis is None else axis,
            opt_arg=opt_arg, formula2=formula2,
            dtype_acc=g.dtype_acc if reduction_ops()[reduction_op].accumulates else "auto",
            sum_scheme=g.sum_scheme if reduction_op == "Sum" else "auto")

    def cached(self, key, build):
        """The Genred's derived entry of key, made by build() on a miss (an exception caches nothing)."""
        g = self.genred
        cache = g.__dict__.get("_derived")
        if cache is None:
            cache = g._derived = LruCache("derived", DERIVED_PER_GENRED)
        return cache.get(key, build)

    def run(self, genred, args, ranges="same"):
        return genred(*args, backend=self.backend, device_id=self.device_id,
                      ranges=self.ranges if ranges == "same" else ranges)


def sum_to_shape(g, shape):
    """Sums a gradient computed over the broadcast batch shape back to an input's own shape."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.dim() - len(shape)
    if lead > 0:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(dim=dims, keepdim=True) if dims else g


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

def gradient(call, args, outs, grads, k):
    """Gradient with respect to argument k, as the input's shape."""
    kind = reduction_ops()[call.genred.reduction_op].grad
    if kind == "select":
        return selected_gradient(call, args, outs, grads, k)
    if grads[0] is None:  # always so for the "index" kind: integer outputs
        return None
    extra_args = [grads[0]] if kind == "sum" else [outs[0][..., :1].detach(), grads[0][..., 1:]]
    # (the derived Genred depends on the Genred and k only: found by them, its formula written once)
    out = call.run(call.cached(("gradient", k), lambda: gradient_genred(call, k)), list(args) + extra_args)
    if call.genred.signature().arg_cats[k] == 2:  # a parameter: computed per output row, then summed over rows
        out = out.sum(dim=-2)
    return sum_to_shape(out, args[k].shape)


def gradient_genred(call, k):
    """The Genred of the gradient with respect to argument k of a "sum" or "logsumexp" kind reduction, over the
    arguments followed by the incoming gradient (sum), or by the saved max m and the gradient of s (logsumexp)."""
    g = call.genred
    sig = g.signature()
    dims, cats, n, tag = sig.arg_dims, sig.arg_cats, sig.nargs, sig.tag
    v = var(k, dims[k], cats[k])
    if reduction_ops()[g.reduction_op].grad == "sum":
        e = var(n, sig.dim_out, tag)
        formula, extra = f"Grad({g.inner_formula},{v},{e})", [e]
    else:  # Max_SumShiftExpWeight: d/dv of s = sum exp(F - m) G, m held constant (see the module docstring)
        m, e = var(n, 1, tag), var(n + 1, sig.dim_out - 1, tag)
        h = f"Exp({g.inner_formula}-{m})" + (f"*{g.weight_formula}" if g.weight_formula else "")
        formula, extra = f"Grad({h},{v},{e})", [m, e]
    # Summed over the index that argument k is not indexed by (a parameter: per output row, summed by gradient).
    # The 6-tuple of ranges describes both sides: the engine takes the triple of the output's side.
    return call.new_derived(formula, extra, axis=1 - tag if cats[k] == 2 else 1 - cats[k])


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


def reduced_rows(args, cats, tag):
    """Rows of the reduced side (the variables of category 1 - tag; 1 when there is none, as for the kernel)."""
    return next((a.shape[-2] for a, c in zip(args, cats) if c == 1 - tag), 1)


def selected_pairs(call, args, outs):
    """Values and int64 indices of a selecting reduction's forward, with K."""
    K = call.genred.opt_arg if reduction_ops()[call.genred.reduction_op].takes_k else 1
    return outs[0], outs[-1], K


def selected_gradient(call, args, outs, grads, k):
    """Gradient through the selected pairs: one restricted Sum(Grad(Elem(F, c), v, e)) per rank and component."""
    sig = call.genred.signature()
    cats, tag = sig.arg_cats, sig.tag
    if grads[0] is None:
        return None
    n_red = reduced_rows(args, cats, tag)
    if n_red == 0:
        return torch.zeros_like(args[k])
    values, idx, K = selected_pairs(call, args, outs)
    total = None
    for col, derived in selected_terms(call, k, K, values.shape[-1] // K):
        ranges = selection_ranges(idx[..., col], n_red, tag)
        out = call.run(derived, list(args) + [grads[0][..., col:col + 1].contiguous()], ranges)
        if cats[k] == 2:
            out = out.sum(dim=-2)
        total = out if total is None else total + out
    return sum_to_shape(total, args[k].shape)


def selected_terms(call, k, K, D):
    """(output column, derived Genred) for each selected rank r < K and component c < D: the Sum of
    Grad(Elem(F, c), v_k, e) over the pairs the forward selected, e the column's incoming gradient (a new last arg)."""
    g = call.genred
    sig = g.signature()
    dims, cats, n, tag = sig.arg_dims, sig.arg_cats, sig.nargs, sig.tag
    e = var(n, 1, tag)
    axis = 1 - tag if cats[k] == 2 else 1 - cats[k]
    for r in range(K):
        for c in range(D):
            f = g.inner_formula if D == 1 else f"Elem({g.inner_formula},{c})"
            yield r * D + c, call.derived(f"Grad({f},{var(k, dims[k], cats[k])},{e})", [e], axis=axis)


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
