"""The formulas of a reduction's derivatives, shared by the differentiable front-ends (pykeops.torch, pykeops.jax).

A gradient is more KeOps reductions on the saved inputs: Sum(Grad(F, v, e)) for sums, the shifted exponential
for log-sum-exp (m held constant), restricted sums over the selected pairs for Min / Max / KMin. What differs
between frameworks is only array arithmetic on the results (summing rows, stopping gradients, the block-sparse
ranges of the selected pairs): a Call subclass supplies it as `ops` (see torch/autograd.py, jax/primitive.py).
"""

from .call_cache import LruCache
from .genred import reduction_ops

# Derived Genreds (gradients, tangents) remembered per Genred: a KMin's gradient asks for one per rank and component.
DERIVED_PER_GENRED = 256


def var(pos, dim, cat):
    return f"Var({pos},{dim},{cat})"


class Call:
    """What a differentiable call needs besides the arrays: the Genred and its call-time options; subclasses set
    `ops`, the array primitives of their framework: stop_gradient, zeros_like, sum_rows (over axis -2),
    sum_to_shape(g, shape), contiguous, selection_ranges(idx, n_red, tag)."""

    ops = None

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


# ---------------------------------------------------------------------------------------------- backward

def gradient(call, args, outs, grads, k):
    """Gradient with respect to argument k, as the input's shape."""
    kind = reduction_ops()[call.genred.reduction_op].grad
    if kind == "select":
        return selected_gradient(call, args, outs, grads, k)
    if grads[0] is None:  # always so for the "index" kind: integer outputs
        return None
    extra_args = [grads[0]] if kind == "sum" else [call.ops.stop_gradient(outs[0][..., :1]), grads[0][..., 1:]]
    # (the derived Genred depends on the Genred and k only: found by them, its formula written once)
    out = call.run(call.cached(("gradient", k), lambda: gradient_genred(call, k)), list(args) + extra_args)
    if call.genred.signature().arg_cats[k] == 2:  # a parameter: computed per output row, then summed over rows
        out = call.ops.sum_rows(out)
    return call.ops.sum_to_shape(out, args[k].shape)


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
    else:  # Max_SumShiftExpWeight: d/dv of s = sum exp(F - m) G, m held constant (m + log(s) does not depend
        # on the value of m: exact at every order)
        m, e = var(n, 1, tag), var(n + 1, sig.dim_out - 1, tag)
        h = f"Exp({g.inner_formula}-{m})" + (f"*{g.weight_formula}" if g.weight_formula else "")
        formula, extra = f"Grad({h},{v},{e})", [m, e]
    # Summed over the index that argument k is not indexed by (a parameter: per output row, summed by gradient).
    # The 6-tuple of ranges describes both sides: the engine takes the triple of the output's side.
    return call.new_derived(formula, extra, axis=1 - tag if cats[k] == 2 else 1 - cats[k])


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
        return call.ops.zeros_like(args[k])
    values, idx, K = selected_pairs(call, args, outs)
    total = None
    for col, derived in selected_terms(call, k, K, values.shape[-1] // K):
        ranges = call.ops.selection_ranges(idx[..., col], n_red, tag)
        out = call.run(derived, list(args) + [call.ops.contiguous(grads[0][..., col:col + 1])], ranges)
        if cats[k] == 2:
            out = call.ops.sum_rows(out)
        total = out if total is None else total + out
    return call.ops.sum_to_shape(total, args[k].shape)


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
