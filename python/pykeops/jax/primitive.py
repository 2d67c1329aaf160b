"""pykeops.jax reductions as XLA FFI custom calls: lowering of a Genred call, its custom_vjp, vmap, KernelSolve.

Every call of a pykeops.jax Genred (jitted or not) is a custom call of the target `pykeops_genred`, whose handler
(bindings/jax_ffi.cpp) runs the engine's CPU kernel on XLA's buffers: no host callback, no copy. The arguments are
checked and the kernel compiled while JAX traces the call (shapes and dtypes are static then); the kernel's handle
is a static attribute of the call. Gradients are a jax.custom_vjp whose backward is the shared derivative formulas
of common/derivatives.py, run as more custom calls (so that they are differentiable again). Under jax.vmap the
custom call gets a leading batch axis on every buffer ("expand_dims"), which the handler takes as a KeOps batch
dimension.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..common import derivatives
from ..common.call_cache import LruCache
from ..common.engine import load_engine
from ..common.genred import check_backend, check_ranges, reduction_ops
from ..common.operations import GenericKernelSolve

TARGET = "pykeops_genred"


@functools.lru_cache(maxsize=None)
def engine():
    """The engine, its FFI handler registered with XLA (ImportError when the engine was built without it)."""
    e = load_engine()
    if not hasattr(e, "jax_ffi_handler"):
        raise ImportError("pykeops.jax needs the engine's XLA FFI handler, which is built only when jaxlib is "
                          "installed in the Python that builds pykeops: `pip install jax jaxlib`, then rebuild "
                          "pykeops (`pip install --no-build-isolation .`)")
    jax.ffi.register_ffi_target(TARGET, e.jax_ffi_handler(), platform="cpu")
    return e


def tracing():
    """Every pykeops.jax reduction is a custom call (jit or not): GenericGenred and LazyTensor hand them here."""
    return True


def x64():
    return bool(jax.config.jax_enable_x64)


def int64_words(x):
    """An integer array as the engine's int64: itself with jax_enable_x64, else int32 (low, high) words pairs."""
    if x64():
        return x.astype(jnp.int64)
    lo = x.astype(jnp.int32)
    pairs = jnp.stack([lo, jnp.where(lo < 0, -1, 0).astype(jnp.int32)], -1)
    return pairs.reshape(lo.shape[:-1] + (2 * lo.shape[-1],)) if lo.ndim else pairs


def kernel_handle(genred, dtype):
    """The handle of genred's CPU kernel for dtype (compiled at the first trace, cached on the Genred)."""
    handles = genred.__dict__.setdefault("_jax_handles", {})
    if dtype not in handles:
        handles[dtype] = engine().jax_kernel_handle(genred._kernel(dtype))
    return handles[dtype]


def custom_call(genred, args, ranges):
    """The raw outputs of genred on args (and ranges or None) as one custom call; indices are int64, or int32
    without jax_enable_x64."""
    layout, bound = genred._layout(args, "CPU", -1)
    words = []
    if ranges is not None:
        arrays, _, range_batch = check_ranges(ranges, layout.device, genred.tools)
        if range_batch and tuple(range_batch) != tuple(bound.batch):
            raise ValueError(f"ranges: per-batch patterns have batch dimensions {tuple(range_batch)} but the "
                             f"arguments' batch dimensions are {tuple(bound.batch)}")
        words = [int64_words(r) for r in arrays]
    wide = x64()
    shapes = [jax.ShapeDtypeStruct(layout.lead + (c,), kind) if kind != "int64" or wide
              else jax.ShapeDtypeStruct(layout.lead + (2 * c,), jnp.int32)
              for c, kind in zip(layout.cols, layout.kinds)]
    # Under vmap, buffers without the mapped axis get one of size 1 (a broadcast batch dimension), except with
    # ranges: the engine reads one pattern per batch from each of the six arrays, so they all get the full axis.
    call = jax.ffi.ffi_call(TARGET, shapes, vmap_method="expand_dims" if ranges is None else "broadcast_all")
    outs = call(*bound.arrays, *words, kernel=np.int64(kernel_handle(genred, layout.dtype)))
    return [o if kind != "int64" or wide else o[..., 0::2] for o, kind in zip(outs, layout.kinds)]


class JaxOps:
    """The array primitives of the shared derivative formulas (common/derivatives.py) and of POST on jax.Arrays."""
    stop_gradient = staticmethod(jax.lax.stop_gradient)
    zeros_like = staticmethod(jnp.zeros_like)
    log = staticmethod(jnp.log)

    @staticmethod
    def contiguous(x):
        return x

    @staticmethod
    def sum_rows(x):
        return x.sum(axis=-2)

    @staticmethod
    def sum_to_shape(g, shape):
        """Sums a gradient computed over the broadcast batch shape back to an input's own shape."""
        lead = g.ndim - len(shape)
        if lead > 0:
            g = g.sum(axis=tuple(range(lead)))
        axes = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
        return g.sum(axis=axes, keepdims=True) if axes else g

    @staticmethod
    def selection_ranges(idx, n_red, tag):
        """As torch/autograd.py's selection_ranges, on jax.Arrays: output row o reduces over idx[..., o] only,
        reduced row r over the output rows that selected it."""
        n_out, lead = idx.shape[-1], idx.shape[:-1]
        rows = jnp.broadcast_to(jnp.arange(n_out), idx.shape)
        valid = idx >= 0
        sel = jnp.where(valid, idx, 0)
        ranges_o, slices_o = jnp.stack([rows, rows + 1], -1), rows + 1
        red_o = jnp.stack([sel, sel + valid.astype(sel.dtype)], -1)
        key = jnp.where(valid, idx, n_red - 1)
        order = jnp.argsort(key, axis=-1, stable=True)
        src, src_valid = jnp.take_along_axis(rows, order, -1), jnp.take_along_axis(valid, order, -1)
        red_r = jnp.stack([jnp.where(src_valid, src, 0), jnp.where(src_valid, src + 1, 0)], -1)
        counts = jnp.sum(key[..., None, :] == jnp.arange(n_red)[:, None], axis=-1)
        targets = jnp.broadcast_to(jnp.arange(n_red), lead + (n_red,))
        ranges_r, slices_r = jnp.stack([targets, targets + 1], -1), jnp.cumsum(counts, -1)
        sides = (ranges_o, slices_o, red_o, ranges_r, slices_r, red_r)
        return sides if tag == 0 else (*sides[3:], *sides[:3])


class Call(derivatives.Call):
    ops = JaxOps


def _is_zero_cotangent(ct):
    return ct is None or ct.dtype == jax.dtypes.float0 or not jnp.issubdtype(ct.dtype, jnp.floating)


def differentiable(genred):
    """genred's raw outputs as a function (args, ranges) -> outputs with a custom_vjp (built once per Genred)."""
    f = genred.__dict__.get("_jax_vjp")
    if f is not None:
        return f

    @jax.custom_vjp
    def f(args, ranges):
        return tuple(custom_call(genred, args, ranges or None))

    def fwd(args, ranges):
        outs = f(args, ranges)  # (f, not the custom call: an outer derivative of the forward goes through f's rule)
        return outs, (args, ranges, outs)

    def bwd(res, cts):
        args, ranges, outs = res
        grads = [None if _is_zero_cotangent(c) else c for c in cts]
        call = Call(genred, "CPU", -1, ranges or None)
        result = []
        for k, a in enumerate(args):
            g = derivatives.gradient(call, args, outs, grads, k) if grads[0] is not None else None
            result.append(jnp.zeros_like(a) if g is None else g.astype(a.dtype))
        return tuple(result), None

    f.defvjp(fwd, bwd)
    genred._jax_vjp = f
    return f


def check_call(backend, out):
    if out is not None:
        raise ValueError("out= is not supported by pykeops.jax (jax.Arrays are immutable): use the returned array")
    check_backend(backend)
    if backend not in ("auto", "CPU"):
        raise ValueError(f"backend={backend!r}: pykeops.jax runs on the CPU (XLA's CPU target) only")


def call(genred, args, backend="auto", device_id=-1, ranges=None, out=None):
    """The results of genred (a Genred) on args, post-processed by jax code."""
    check_call(backend, out)
    red = reduction_ops()[genred.reduction_op]
    # Min, Max, KMin run as their variant with indices, whose gradient flows through the selected pairs.
    run = genred.twin(red.with_indices) if red.with_indices else genred
    raw = differentiable(run)(tuple(args), () if ranges is None else tuple(ranges))
    raw = list(raw[:1] if red.with_indices else raw)
    post = genred._post
    shapes = post.shapes([b.shape[-1] for b in raw], tuple(raw[0].shape[:-1]), genred.opt_arg)
    results = post.finish(JaxOps, raw, shapes)
    return results[0] if len(results) == 1 else tuple(results)


# Genreds of LazyTensor reductions, by spec (common/lazy_tensor.py's _traced_spec).
GENREDS = LruCache("jax_genred", 256, process=True)


def genred_of(spec):
    formula, aliases, op, axis, opt_arg, formula2, dtype_acc, sum_scheme, fast_math, chunks = spec

    def build():
        from .genred import Genred
        return Genred(formula, aliases.split(";") if aliases else [], reduction_op=op, axis=axis, opt_arg=opt_arg,
                      formula2=formula2, dtype_acc=dtype_acc, sum_scheme=sum_scheme, use_fast_math=fast_math,
                      enable_chunks=chunks)

    return GENREDS.get(spec, build)


class TracedGenred:
    """What a LazyTensor reduction holds: the Genred of its spec (built once per spec)."""

    def __init__(self, spec):
        self.genred = genred_of(spec)

    def __call__(self, *args, backend="auto", device_id=-1, ranges=None, out=None):
        return call(self.genred, args, backend, device_id, ranges, out)


# ---------------------------------------------------------------------------------------------- KernelSolve

def conjugate_gradient(linop, b, eps):
    """Solve linop(a) = b (symmetric positive definite) from a = 0 until ||r||^2 < numel(b) eps^2 or
    max(100, 2 numel(b)) steps, as common/operations.py's conjugate_gradient, in a jax.lax.while_loop."""
    n = b.size
    if n == 0:
        return b
    tol, maxiter = n * eps**2, max(100, 2 * n)

    def cond(state):
        _, _, _, nr2, it = state
        return (nr2 >= tol) & (it < maxiter)

    def body(state):
        a, r, p, nr2, it = state
        Kp = linop(p)
        step = nr2 / (p * Kp).sum()
        a, r = a + step * p, r - step * Kp
        nr2_new = (r * r).sum()
        return a, r, r + (nr2_new / nr2) * p, nr2_new, it + 1

    return jax.lax.while_loop(cond, body, (jnp.zeros_like(b), b, b, (b * b).sum(), 0))[0]


def solve(solver, args, backend, device_id, alpha, eps, ranges):
    """KernelSolve's solution a = (alpha Id + K)^-1 b, differentiated implicitly as torch/autograd.py's
    KernelSolveFunction: c = (alpha Id + K)^-1 G, dL/db = c, dL/dv = -d/dv <c, K(v) a>."""
    check_call(backend, None)
    genred, pos = solver.genred, solver.varinvpos
    ranges = None if ranges is None else tuple(ranges)

    def K(a, args):
        args = list(args)
        args[pos] = a
        return call(genred, args, ranges=ranges)

    @jax.custom_vjp
    def f(args):
        b = args[pos]
        out = jax.eval_shape(lambda: K(b, args))  # checks the arguments, and that K maps b's space onto itself
        if tuple(out.shape) != tuple(b.shape):
            raise ValueError(f"KernelSolve needs a square system: the right-hand side (argument {pos}) has shape "
                             f"{tuple(b.shape)} but the reduction maps it to shape {tuple(out.shape)}")
        return conjugate_gradient(lambda a: K(a, args) + alpha * a, b, eps)

    def fwd(args):
        a = f(args)
        return a, (args, a)

    def bwd(res, grad):
        args, a = res
        rhs = list(args)
        rhs[pos] = grad
        c = solve(solver, rhs, backend, device_id, alpha, eps, ranges)
        with_a = list(args)
        with_a[pos] = a
        gcall = Call(genred, "CPU", -1, ranges)
        grads = [c if k == pos else derivatives.gradient(gcall, with_a, [None], [-c], k) for k in range(len(args))]
        return (tuple(jnp.zeros_like(x) if g is None else g for x, g in zip(args, grads)),)

    f.defvjp(fwd, bwd)
    return f(tuple(args))


class _ProxySolve(GenericKernelSolve):
    """GenericKernelSolve's argument checks around a spec's Genred."""

    def __init__(self, genred, varinvpos):
        self.genred, self.varinvpos = genred, varinvpos

    @property
    def Genred(self):
        return type(self.genred)


class TracedSolve:
    """What a LazyTensor solve holds: the Sum of its spec and the unknown's position."""

    def __init__(self, spec, varinvpos):
        self._solver = _ProxySolve(genred_of(spec), varinvpos)

    def __call__(self, *args, backend="auto", device_id=-1, alpha=1e-10, eps=1e-6, ranges=None):
        return self._solver(*args, backend=backend, device_id=device_id, alpha=alpha, eps=eps, ranges=ranges)
