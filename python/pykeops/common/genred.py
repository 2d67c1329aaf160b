"""GenericGenred: checks options and arguments, builds the KeOps reduction string, runs the engine's kernel.

One Genred call goes: check the options (constructor, by the engine's reduction table) -> choose the backend
(CpuBackend here, gpu.GpuBackend) -> check the arrays and their batch dimensions -> get the backend's kernel for
the data dtype (cached on the object) -> allocate (or check) the outputs the kernel announces -> run -> post-process
the raw outputs the way KeOps does (logsumexp, softmax, K-shapes). Only the backend object differs between the CPU
and the GPU: what it computes in, where the arrays go and come back from, how it launches.
"""

import functools
import math
import re
from collections import namedtuple

from . import gpu, log
from .call_cache import LruCache
from .engine import load_engine
from .tools import as_int, class_name, type_name

CATEGORY_NAMES = ("Vi", "Vj", "Pm")

# A Genred reduction_op as the engine's tables describe it (reduction_ops() joined with its engine reduction):
#   engine: "<name>_Reduction" it runs;  formula2: "no" | "optional" | "required";  post: how the raw outputs become
#   the result (a key of POST);  with_indices: the op also returning the selected indices (for gradients), or None;
#   takes_k: opt_arg is K;  accumulates: a sum type (dtype_acc, sum_scheme apply);  grad: how it is differentiated.
ReductionOp = namedtuple("ReductionOp", "name engine formula2 post with_indices takes_k accumulates grad")


@functools.lru_cache(maxsize=None)
def reduction_ops():
    """{reduction_op name: ReductionOp}, read once per process from the engine."""
    engine = load_engine()
    reductions = {r["name"]: r for r in engine.reductions()}
    return {
        op["name"]: ReductionOp(**op, **{k: reductions[op["engine"]][k] for k in ("takes_k", "accumulates", "grad")})
        for op in engine.reduction_ops()
    }


# Python's side of each `post` of the engine's table: whether the results are the raw buffers (reshaped); the
# results' shapes from the raw column counts, the batch-and-row shape `lead` and K; the results from the raw buffers.
Post = namedtuple("Post", "direct shapes finish")
POST = {
    "raw": Post(True, lambda cols, lead, K: [lead + (c,) for c in cols], lambda tools, raw, shapes: raw),
    "kshape": Post(
        True, lambda cols, lead, K: [lead + ((K,) if c == K else (K, c // K)) for c in cols],
        lambda tools, raw, shapes: [b.reshape(s) for b, s in zip(raw, shapes)],
    ),
    # raw [m, s_1 .. s_DG]: m = max F, s = sum exp(F - m) * G
    "logsumexp": Post(
        False, lambda cols, lead, K: [lead + (cols[0] - 1,)],
        lambda tools, raw, shapes: [raw[0][..., :1] + tools.log(raw[0][..., 1:])],
    ),
    # G ran as Concat(1, G), so s_1 = sum exp(F - m)
    "softmax": Post(
        False, lambda cols, lead, K: [lead + (cols[0] - 2,)],
        lambda tools, raw, shapes: [raw[0][..., 2:] / raw[0][..., 1:2]],
    ),
}

# The user-facing docstring of Genred, filled in per framework by pykeops.numpy.Genred and pykeops.torch.Genred.
GENRED_DOC = """Reduction of a KeOps formula over {arrays}: out_i = reduce_j F(x_i, y_j, p) (axis=1) or out_j (axis=0).

    The formula and its reduction are compiled once (on first call, per dtype) and cached in memory and on disk;
    the M x N matrix F(x_i, y_j) is never stored.

    Args:
        formula (str): the formula in the KeOps language, e.g. ``"Exp(-SqDist(x,y)) * b"`` (the operations are
            listed in the operation table).
        aliases (list of str): one declaration per argument, in call order: ``"x = Vi(3)"`` (indexed by i, dim 3),
            ``"y = Vj(3)"`` (indexed by j), ``"s = Pm(1)"`` (a parameter); ``"Vi(pos,dim)"`` and
            ``"Var(pos,dim,cat)"`` give the position explicitly.
        reduction_op (str): ``"Sum"`` (default), ``"LogSumExp"``, ``"SumSoftMaxWeight"``, ``"Min"``, ``"Max"``,
            ``"ArgMin"``, ``"ArgMax"``, ``"Min_ArgMin"``, ``"Max_ArgMax"``, ``"KMin"``, ``"ArgKMin"``,
            ``"KMin_ArgKMin"``, ...
        axis (int): 1 reduces over j (one result row per i), 0 over i.
        opt_arg (int): K of the K-nearest reductions (KMin, ArgKMin, KMin_ArgKMin).
        formula2 (str): the weight formula G of LogSumExp / SumSoftMaxWeight with weights.
        dtype_acc (str): accumulator dtype of sums: ``"auto"`` (the backend's default), ``"float16"``,
            ``"float32"`` or ``"float64"``.
        sum_scheme (str): ``"auto"``, ``"direct_sum"``, ``"block_sum"`` or ``"kahan_scheme"``.
        use_double_acc (bool): same as ``dtype_acc="float64"``.

    ``enable_chunks`` and ``use_fast_math`` tune the GPU backend only; ``dtype`` and ``cuda_type`` are deprecated
    and ignored (the dtype comes from the arguments); ``rec_multVar_highdim`` is accepted and has no effect.

    Calling the object, ``g(*args, backend="auto", device_id=-1, ranges=None, out=None)``, runs it on
    {call_arrays},
    ordered as the aliases and all of one dtype (float16, float32 or float64), of shapes (M, D) for Vi, (N, D) for
    Vj, (D,) for Pm, with optional leading batch dimensions that broadcast. ``ranges`` is the
    6-tuple of a block-sparse reduction (see the cluster helpers) and ``out`` an array that receives the result.

    Returns:
        {returns} of shape (M, D_out) for axis=1, (N, D_out) for axis=0, D_out the formula's dim (K, or
        (K, D) for a formula of dim D > 1, for the K-nearest reductions);
        a pair (values, int64 indices) for the *_Arg* pairs. ArgMin/ArgMax/ArgKMin give int64 indices.

    Raises:
        ValueError: a formula or aliases that do not parse or whose dims do not fit (by the first call at the
            latest), arguments of the wrong number, shape, dtype or device, unknown options.
        TypeError: arguments that are not arrays of this framework.

    Example:
        >>> g = Genred("Exp(-SqDist(x,y)) * b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], reduction_op="Sum", axis=1)
        >>> {example}
        >>> g(x, y, b).shape
        {shape}
    """


# The six arrays of a block-sparse `ranges=` argument and their number of axes.
RANGE_NAMES = ("ranges_i", "slices_i", "redranges_j", "ranges_j", "slices_j", "redranges_i")
RANGE_NDIMS = (2, 1, 2, 2, 1, 2)


def check_backend(backend):
    """Rejects unknown backend names (GPU ones are routed to gpu.GpuBackend, which checks the device)."""
    if backend not in ("auto", "CPU") + gpu.GPU_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected 'auto', 'CPU' or one of {', '.join(gpu.GPU_BACKENDS)}")


def check_arrays(args, tools, target=None):
    """Return the common (dtype, device) of the arguments: arrays of one framework, dtype and device, the dtype one
    that the target backend (default: the CPU) computes in (target.dtype_of) and the device one it runs on
    (target.use_device)."""
    target = target or CpuBackend("CPU", -1, tools)
    if not args:
        dtype, device = tools.default_dtype(), "cpu"
    else:
        for k, a in enumerate(args):
            if not tools.is_array(a):
                raise TypeError(
                    f"argument {k} is a {type_name(a)}: pykeops.{tools.name} expects {class_name(tools.array_type)} "
                    "arguments"
                )
        dtype = target.dtype_of(args[0], "argument 0")
        device = tools.device(args[0])
        for k, a in enumerate(args[1:], 1):
            other = target.dtype_of(a, f"argument {k}")
            if other != dtype:
                raise ValueError(f"argument {k} has dtype {other} but argument 0 has {dtype}: all arguments must share "
                                 "one dtype")
            if tools.device(a) != device:
                raise ValueError(f"argument {k} is on device {tools.device(a)} but argument 0 is on {device}: all "
                                 "arguments must be on one device")
    target.use_device(device)
    return dtype, device


class CpuBackend:
    """The LLVM CPU backend: host arrays are read and written in place, outputs allocated by the caller's framework."""

    def __init__(self, backend, device_id, tools):
        check_backend(backend)
        self.tools, self.in_place = tools, True

    def dtype_of(self, a, what):
        return self.tools.check_dtype(a, what)

    def use_device(self, device):
        if device != "cpu":
            raise ValueError(f"the arguments are on device {device}: only CPU arrays are supported (no GPU backend is "
                             "available)")

    def kernel(self, genred, dtype):
        return genred._kernel(dtype)

    def bind(self, args, kernel):
        return bind_arguments(args, kernel, self.tools)

    def use_ranges(self, ranges):
        """Pointers to the checked ranges arrays, as the kernel reads them."""
        return [self.tools.data_ptr(r) for r in ranges]

    def empty(self, shape, kind):
        return self.tools.empty(shape, kind, "cpu")

    def launch(self, kernel, bound, buffers, extra):
        ptrs = self.tools.data_ptrs(bound.arrays + buffers)
        n = len(bound.arrays)
        kernel.run(ptrs[:n], bound.nx, bound.ny, ptrs[n:], **extra)

    def results(self, buffers):
        return buffers


def broadcast_batch(batches, what):
    """NumPy broadcast of batch shapes; what(k) names the k-th shape in the error message."""
    ndims = max((len(b) for b in batches), default=0)
    result = [1] * ndims
    for k, b in enumerate(batches):
        for axis, size in enumerate((1,) * (ndims - len(b)) + tuple(b)):
            if size != 1:
                if result[axis] not in (1, size):
                    raise ValueError(
                        f"{what(k)} has batch dimensions {tuple(b)} that do not broadcast with the others "
                        f"(batch axis {axis - ndims}: {size} vs {result[axis]})"
                    )
                result[axis] = size
    return tuple(result)


Signature = namedtuple("Signature", "nargs arg_dims arg_cats dim_out tag")
BoundArguments = namedtuple("BoundArguments", "arrays nx ny batch arg_batch")
# What the checks of a call conclude from its arguments' types, dtypes, devices and shapes alone (GenericGenred._layout):
# the backend, the kernel, the bound sizes (bound.arrays: this call's), the results' columns, kinds and shapes, and
# reshapes[k], the shape argument k is viewed as (batch dims padded with leading 1's) or None when it keeps its own;
# nonempty: whether there is an output row; batch: the launch's batch arguments; raw: the (shape, kind) of each raw buffer.
CallLayout = namedtuple("CallLayout", "target dtype device kernel bound lead cols kinds shapes reshapes nonempty batch raw")
LAYOUTS_PER_GENRED = 16  # distinct argument layouts (shapes, dtypes) remembered by one Genred


def bind_arguments(args, spec, tools):
    """Check each argument against the kernel's signature (spec.nargs, .arg_dims, .arg_cats).

    Vi variables are (..., M, D) arrays, Vj (..., N, D), Pm (..., D); the leading dims are batch dims that
    broadcast NumPy-style. Returns a BoundArguments: the arguments as C-contiguous arrays of shape
    arg_batch[k] + core shape (copies only where needed, silently), the sizes nx, ny (the row counts of the
    i- and j-variables, 1 when there is none), the broadcast batch shape and each argument's own batch shape
    padded with leading 1's to its length.
    """
    if len(args) != spec.nargs:
        raise ValueError(f"the formula has {spec.nargs} variables but {len(args)} arguments were given")
    sizes, setters = [None, None], [None, None]
    batches, whats = [], []
    for k, (a, dim, cat) in enumerate(zip(args, spec.arg_dims, spec.arg_cats)):
        shape = tuple(a.shape)
        what = f"argument {k} ({CATEGORY_NAMES[cat]} variable of dim {dim})"
        core, expected = (1, f"({dim},)") if cat == 2 else (2, f"({'MN'[cat]}, {dim})")
        if len(shape) < core or shape[-1] != dim:
            raise ValueError(
                f"{what} should have shape {expected}, got {shape} (batch dimensions may precede {expected})"
                if len(shape) > core
                else f"{what} should have shape {expected}, got {shape}"
            )
        if cat < 2:
            rows = shape[-2]
            if sizes[cat] is None:
                sizes[cat], setters[cat] = rows, k
            elif rows != sizes[cat]:
                raise ValueError(
                    f"{what} has {rows} rows but argument {setters[cat]} has {sizes[cat]}: all "
                    f"{CATEGORY_NAMES[cat]} variables must have the same number of rows"
                )
        batches.append(shape[:-core])
        whats.append(what)
    batch = broadcast_batch(batches, lambda k: whats[k])
    arg_batch, reshapes = [], []
    for a, b in zip(args, batches):
        padded = (1,) * (len(batch) - len(b)) + tuple(b)
        arg_batch.append(padded)
        reshapes.append(None if len(b) == len(batch) else padded + tuple(a.shape[len(b):]))
    nx, ny = (1 if s is None else s for s in sizes)
    return BoundArguments(kernel_arrays(args, reshapes, tools), nx, ny, batch, arg_batch)


def kernel_arrays(args, reshapes, tools):
    """The arguments as the kernel reads them: C-contiguous (copies only where needed), batch dims padded."""
    contiguous = tools.contiguous
    return [contiguous(a) if r is None else contiguous(a).reshape(r) for a, r in zip(args, reshapes)]


def check_ranges(ranges, device, tools):
    """Check a block-sparse `ranges=` 6-tuple; return it as C-contiguous int64 arrays and the range counts.

    Only types and shapes are checked here; the engine checks the values (bounds, ordering).
    """
    if not isinstance(ranges, (tuple, list)) or len(ranges) != 6:
        raise ValueError(
            "ranges must be a 6-tuple (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i) of "
            f"integer arrays, got {type_name(ranges)}"
            + (f" of length {len(ranges)}" if isinstance(ranges, (tuple, list)) else "")
        )
    arrays, batches = [], []
    for name, r, ndim in zip(RANGE_NAMES, ranges, RANGE_NDIMS):
        if not tools.is_array(r):
            raise TypeError(f"ranges: {name} is a {type_name(r)}, expected a {class_name(tools.array_type)}")
        tools.check_storage(r, f"ranges: {name}")
        if not tools.is_integer(r):
            raise TypeError(f"ranges: {name} has dtype {tools.dtype_name(r)}, expected integers (int64)")
        shape = tuple(r.shape)
        # Leading dims, if any, are batch dims: one block-sparse pattern per batch (KeOps refuses ranges with batches).
        core = shape[len(shape) - ndim:] if len(shape) >= ndim else shape
        if len(shape) < ndim or (ndim == 2 and core[1] != 2):
            raise ValueError(f"ranges: {name} should have shape {'(n, 2)' if ndim == 2 else '(n,)'} (optionally "
                             f"preceded by the batch dimensions), got {shape}")
        batches.append(shape[: len(shape) - ndim])
        if tools.device(r) != device:
            raise ValueError(f"ranges: {name} is on device {tools.device(r)} but the arguments are on {device}")
        arrays.append(tools.as_int64(r))
    if len(set(batches)) != 1:
        raise ValueError(f"ranges: the six arrays must have the same batch dimensions, got {batches}")
    for ranges_name, slices_name, k in (("ranges_i", "slices_i", 0), ("ranges_j", "slices_j", 3)):
        if arrays[k].shape[-2] != arrays[k + 1].shape[-1]:
            raise ValueError(
                f"ranges: {slices_name} has {arrays[k + 1].shape[-1]} entries but {ranges_name} has "
                f"{arrays[k].shape[-2]} ranges: there must be one slice end per range"
            )
    counts = [arrays[0].shape[-2], arrays[2].shape[-2], arrays[3].shape[-2], arrays[5].shape[-2]]
    return arrays, counts, batches[0]


def check_out(out, shape, dtype, device, tools, what=None):
    """Check that a user-given out= array can receive the result in place; what names the expected dtype."""
    if not tools.is_array(out):
        raise TypeError(f"out is a {type_name(out)}: pykeops.{tools.name} expects a {class_name(tools.array_type)}")
    tools.check_storage(out, "out")
    if tuple(out.shape) != shape:
        raise ValueError(f"out should have shape {shape}, got {tuple(out.shape)}")
    if tools.dtype_name(out) != dtype:
        raise ValueError(f"out has dtype {tools.dtype_name(out)} but {what or f'the arguments have {dtype}'}")
    if tools.device(out) != device:
        raise ValueError(f"out is on device {tools.device(out)} but the arguments are on {device}")
    if not tools.is_writable_contiguous(out):
        raise ValueError("out must be a C-contiguous, aligned and writable array")
    if tools.needs_grad((out,)):
        raise ValueError("out requires grad: results written in place into out= are not differentiable")


def writes_in_place(outs, reads, tools):
    """Whether the kernel may write straight into the out= arrays: none holds lazy bits (torch neg/conj views) or
    overlaps an array the kernel reads. Otherwise it computes into temporaries copied into out afterwards (as torch
    does for an out= that aliases an input), so that out=x gives the same result as a fresh output."""
    return all(tools.holds_its_values(o) and not any(tools.may_share_memory(o, a) for a in reads) for o in outs)


def copy_into(outs, buffers):
    """Copy raw result buffers into the out= arrays; returns the views of out shaped like the buffers."""
    views = [o.reshape(tuple(b.shape)) for o, b in zip(outs, buffers)]
    for v, b in zip(views, buffers):
        v[...] = b
    return views


class GenericGenred:
    """Generic reduction over a KeOps formula; subclasses set `tools` (see pykeops.numpy.Genred)."""

    tools = None

    def __init__(
        self, formula, aliases, reduction_op="Sum", axis=0, dtype=None, opt_arg=None, formula2=None,
        cuda_type=None, dtype_acc="auto", use_double_acc=False, sum_scheme="auto", enable_chunks=True,
        rec_multVar_highdim=False, use_fast_math=True,
    ):
        # enable_chunks and use_fast_math tune the GPU backend only; rec_multVar_highdim: accepted, no effect.
        # dtype and cuda_type: ignored silently, as pykeops does (its own examples still pass them); the dtype is the
        # arguments'.
        if not isinstance(formula, str):
            raise TypeError(f"formula must be a string, got {type_name(formula)}")
        if isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases):
            raise TypeError("aliases must be a list of strings such as 'x = Vi(3)'")
        ops = reduction_ops()
        if reduction_op not in ops:
            raise ValueError(f"unknown reduction_op {reduction_op!r}: expected one of {', '.join(ops)}")
        red = ops[reduction_op]
        if red.takes_k:
            K = as_int(opt_arg)
            if K is None or K < 1:
                raise (TypeError if K is None and opt_arg is not None else ValueError)(
                    f"the {reduction_op} reduction needs opt_arg = K, an integer >= 1, got {opt_arg!r}")
            opt_arg = K
        elif opt_arg is not None:
            with_k = ", ".join(name for name, op in ops.items() if op.takes_k)
            raise ValueError(f"the {reduction_op} reduction takes no opt_arg (only {with_k} do)")
        if formula2 is not None and red.formula2 == "no":
            raise ValueError(f"the {reduction_op} reduction takes no formula2")
        if formula2 is None and red.formula2 == "required":
            raise ValueError(f"the {reduction_op} reduction needs formula2 (the weights)")
        if formula2 is not None and not isinstance(formula2, str):
            raise TypeError(f"formula2 must be a string, got {type_name(formula2)}")
        axis_int = as_int(axis)
        if axis_int not in (0, 1):
            raise (TypeError if axis_int is None else ValueError)(
                f"axis must be 0 (reduce over i) or 1 (reduce over j), got {axis!r}")
        axis = axis_int
        if use_double_acc and dtype_acc != "auto":
            raise ValueError("use_double_acc=True and dtype_acc are mutually exclusive")
        self.dtype_acc = "float64" if use_double_acc else str(dtype_acc)
        self._acc_option = "use_double_acc=True" if use_double_acc else f"dtype_acc={dtype_acc!r}"
        # The engine decides which accuracy options a reduction takes (ValueError naming reduction_op otherwise).
        engine = load_engine()
        engine.check_dtype_acc(reduction_op, self.dtype_acc, option=self._acc_option)
        engine.check_sum_scheme(reduction_op, str(sum_scheme))

        self.reduction_op = reduction_op
        self.axis = int(axis)
        self.aliases = list(aliases)
        self.opt_arg = opt_arg
        self.formula2 = formula2
        # The category of the output: 0 = indexed by i (reduction over j), as in KeOps.
        tag = (self.axis + 1) % 2
        self.inner_formula = formula  # F, and G below: the parts that derived reductions (autograd) build on
        self.weight_formula = formula2 if formula2 is None or red.post != "softmax" else f"Concat(IntCst(1),{formula2})"
        parts = [formula] + ([str(opt_arg)] if red.takes_k else []) + [str(tag)]
        self.formula = f"{red.engine}({','.join(parts + ([self.weight_formula] if formula2 is not None else []))})"
        self.sum_scheme = sum_scheme
        self._kernels = {}  # dtype name (GPU: a tuple with the GPU options) -> engine kernel, filled on first call
        self._layouts = LruCache("layout", LAYOUTS_PER_GENRED)  # CPU calls' CallLayouts, by argument layout keys
        self._post = POST[red.post]
        self.use_fast_math, self.enable_chunks = bool(use_fast_math), bool(enable_chunks)  # GPU backend (common/gpu.py)
        self._construction = dict(formula=formula, aliases=self.aliases, axis=self.axis, opt_arg=opt_arg,
                                  formula2=formula2, dtype_acc=self.dtype_acc, sum_scheme=sum_scheme,
                                  use_fast_math=self.use_fast_math, enable_chunks=self.enable_chunks)

    def __getstate__(self):
        # native kernels and the post-processing functions do not pickle; they are rebuilt
        state = {**self.__dict__, "_kernels": {}, "_layouts": LruCache("layout", LAYOUTS_PER_GENRED)}
        state.pop("_post")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._post = POST[reduction_ops()[self.reduction_op].post]

    def twin(self, reduction_op):
        """The same formula and options with another reduction (e.g. Min_ArgMin for a differentiable Min)."""
        twins = self.__dict__.setdefault("_twins", {})
        if reduction_op not in twins:
            twins[reduction_op] = type(self)(reduction_op=reduction_op, **self._construction)
        return twins[reduction_op]

    def engine_acc(self, dtype):
        """The dtype_acc to request for data of this dtype (ValueError when less precise than the data)."""
        return load_engine().check_dtype_acc(self.reduction_op, self.dtype_acc, dtype, self._acc_option)

    def signature(self):
        """The reduction's arguments and output (nargs, arg_dims, arg_cats, dim_out, tag), from the engine's parser:
        no code is generated, so this holds for every backend and dtype."""
        sig = self.__dict__.get("_signature")
        if sig is None:
            sig = self._signature = Signature(**load_engine().reduction_signature(self.formula, self.aliases))
        return sig

    def _kernel(self, dtype):
        """The CPU kernel for one dtype (the GPU ones: gpu.GpuBackend.kernel)."""
        kernel = self._kernels.get(dtype)
        if kernel is None:
            acc = self.engine_acc(dtype)
            engine = load_engine()
            kernel = log.lookup(lambda: engine.get_kernel(self.formula, self.aliases, dtype, acc, self.sum_scheme),
                                self.formula, "CPU", dtype)
            self._kernels[dtype] = kernel
        return kernel

    def __call__(self, *args, backend="auto", device_id=-1, ranges=None, out=None, group=None):
        """Run the reduction; args follow the alias positions. device_id only matters for GPU backends.

        group: a torch.distributed process group (e.g. dist.group.WORLD): every rank holds shards of the
        variables and gets its own rows of the reduction over every rank's shards (pykeops.torch.distributed).

        out: a C-contiguous array (a pair of them for Min_ArgMin, Max_ArgMax, KMin_ArgKMin: values, int64 indices)
        of the result's shape and dtype, which receives the result and is returned. out may overlap the arguments
        or the ranges (e.g. out=x): the result is then computed into a temporary and copied into out, so it is
        always the result of the call without out=. The two arrays of a pair must not overlap (ValueError).
        """
        tools = self.tools
        if group is not None:
            return tools.sharded(self, args, group, backend, device_id, ranges, out)
        if tools.compiled is not None and tools.compiled.tracing():  # torch.compile / export: one custom op
            return tools.compiled.call(self, args, backend, device_id, ranges, out)
        post = self._post
        if out is None and tools.autograd is not None and not tools.autograd.untracked(args):
            # Differentiable (torch): the raw outputs come from an autograd Function, post-processing is torch's.
            buffers = tools.autograd.apply(self, args, backend, device_id, ranges)
            shapes = post.shapes([b.shape[-1] for b in buffers], tuple(buffers[0].shape[:-1]), self.opt_arg)
            results = post.finish(tools, buffers, shapes)
            return results[0] if len(results) == 1 else tuple(results)
        if out is not None and tools.needs_grad(args):  # (else untracked: nothing requires grad)
            raise ValueError("out= cannot be used when an argument requires grad: results written in place are not "
                             "differentiable; drop out= or detach the arguments")
        buffers, shapes, outs = self._run(args, backend, device_id, ranges, out)
        results = post.finish(tools, buffers, shapes)
        if outs is not None:
            if not post.direct:
                outs[0][...] = results[0]
            results = outs
        return results[0] if len(results) == 1 else tuple(results)

    def _raw_outputs(self, args, backend="auto", device_id=-1, ranges=None):
        """The engine's raw output arrays (values and/or int64 indices), without post-processing."""
        return self._run(args, backend, device_id, ranges, None)[0]

    def _remembered(self, args, backend, device_id):
        """(key, layout): the key a CPU layout of this call is remembered under (None when the arguments have no
        layout key), and that layout if it is remembered and the build still has its CPU backend (else None)."""
        keys = tuple(map(self.tools.layout_key, args))
        # (only CPU layouts are remembered: host arrays run on the CPU whenever the build has its backend, gpu.selected)
        if None in keys or type(backend) is not str or type(device_id) is not int:
            return None, None
        key = (backend, device_id, keys)
        layout = self._layouts.find(key)
        return key, layout if layout is not None and gpu.cpu_backend() else None

    def _layout(self, args, backend, device_id):
        """(CallLayout, bound arguments) of a call on args: every check of the arguments, then the kernel and the
        results' shapes. CPU layouts are remembered by the arguments' layout keys (what the checks read), so that
        a repeated call only makes its arrays contiguous."""
        tools = self.tools
        key, layout = self._remembered(args, backend, device_id)
        if layout is not None:
            return layout, BoundArguments(kernel_arrays(args, layout.reshapes, tools), *layout.bound[1:])
        for k, a in enumerate(args):  # before the device is looked at: a meta tensor has no data on any device
            if tools.is_array(a):
                tools.check_storage(a, f"argument {k}")
        # A GPU backend asked for, or CUDA tensors: the GPU.
        target = (gpu.GpuBackend if gpu.selected(backend, args, tools) else CpuBackend)(backend, device_id, tools)
        dtype, device = check_arrays(args, tools, target)
        kernel = target.kernel(self, dtype)
        bound = target.bind(args, kernel)
        cols = [ncols for _, ncols in kernel.outputs]
        kinds = [dtype if kind == "values" else "int64" for kind, _ in kernel.outputs]
        lead = bound.batch + (bound.nx if kernel.tag == 0 else bound.ny,)
        shapes = self._post.shapes(cols, lead, self.opt_arg)
        batch = dict(batch=list(bound.batch), arg_batch=[list(b) for b in bound.arg_batch]) if bound.batch else {}
        layout = CallLayout(target, dtype, device, kernel, bound._replace(arrays=None), lead, cols, kinds, shapes, None,
                            math.prod(lead) > 0, batch, [(lead + (c,), kind) for c, kind in zip(cols, kinds)])
        if key is not None and isinstance(target, CpuBackend) and gpu.cpu_backend():  # (a GPU backend: per-call state)
            reshapes = [None if tuple(b.shape) == tuple(a.shape) else tuple(b.shape) for a, b in zip(args, bound.arrays)]
            self._layouts.add(key, layout._replace(reshapes=reshapes))
        return layout, bound

    def _run(self, args, backend, device_id, ranges, out):
        """Checks, allocates (or adopts out=) and runs on the chosen backend (CpuBackend, gpu.GpuBackend); returns
        (raw buffers, final shapes, out arrays or None), in the caller's framework."""
        tools = self.tools
        if ranges is None and out is None:
            # A layout seen before (a CPU one, see _layout): its checks passed for arguments of these types, dtypes,
            # devices and shapes; what is left is per call: contiguous arrays, fresh buffers, the launch.
            layout = self._remembered(args, backend, device_id)[1]
            if layout is not None:
                arrays = kernel_arrays(args, layout.reshapes, tools)
                empty = tools.empty
                buffers = [empty(shape, kind, "cpu") for shape, kind in layout.raw]
                if layout.nonempty:
                    ptrs = tools.data_ptrs(arrays + buffers)
                    n, bound = len(arrays), layout.bound
                    layout.kernel.run(ptrs[:n], bound.nx, bound.ny, ptrs[n:], **layout.batch)
                return buffers, layout.shapes, None
        layout, bound = self._layout(args, backend, device_id)
        target, kernel, lead, cols, kinds, shapes = layout.target, layout.kernel, layout.lead, layout.cols, layout.kinds, layout.shapes
        if ranges is not None:
            ranges, range_counts, range_batch = check_ranges(ranges, layout.device, tools)
            if range_batch and tuple(range_batch) != tuple(bound.batch):
                raise ValueError(f"ranges: per-batch patterns have batch dimensions {tuple(range_batch)} but the "
                                 f"arguments' batch dimensions are {tuple(bound.batch)}")
        post = self._post
        outs = self._check_outs(out, shapes, kinds, layout.device) if out is not None else None

        # The engine's buffers: the user's out= arrays (reshaped views) when the result is a view of them, the
        # backend writes where they are, and they overlap no input (see writes_in_place).
        in_place = (post.direct and outs is not None and target.in_place
                    and writes_in_place(outs, bound.arrays + list(ranges or ()), tools))
        buffers = [
            outs[k].reshape(lead + (c,)) if in_place else target.empty(lead + (c,), kind)
            for k, (c, kind) in enumerate(zip(cols, kinds))
        ]
        if layout.nonempty:
            extra = layout.batch
            if ranges is not None:
                extra = dict(extra, ranges=target.use_ranges(ranges), range_counts=list(range_counts),
                             range_sets=math.prod(range_batch) if range_batch else 1)
            target.launch(kernel, bound, buffers, extra)
        buffers = target.results(buffers)
        if post.direct and outs is not None and not in_place:
            buffers = copy_into(outs, buffers)
        return buffers, shapes, outs

    def _check_outs(self, out, shapes, kinds, device):
        """The out= arrays as a list, checked against the result's shapes and dtypes (int64 for indices)."""
        if len(shapes) == 1:
            outs = [out]
        elif isinstance(out, (tuple, list)) and len(out) == len(shapes):
            outs = list(out)
        else:
            raise TypeError(
                f"the {self.reduction_op} reduction returns (values, indices): out must be a tuple of "
                f"{len(shapes)} arrays, got {type_name(out)}"
            )
        for o, shape, kind in zip(outs, shapes, kinds):
            check_out(o, shape, kind, device, self.tools, "the indices are int64" if kind == "int64" else None)
        if len(outs) == 2 and self.tools.may_share_memory(outs[0], outs[1]):
            raise ValueError("the two out= arrays (values and indices) overlap in memory: give separate arrays")
        return outs


# ---------------------------------------------------------------------------------------- generic_* helpers

_OUTPUT_ALIAS = re.compile(r"^\s*(\w+)\s*=\s*(Vi|Vj)\s*\(\s*(\d+)\s*\)\s*$")


def parse_output_alias(output):
    """'name = Vi(dim)' / 'name = Vj(dim)' -> (axis, dim): a Vi output is indexed by i, i.e. axis=1."""
    m = _OUTPUT_ALIAS.match(output) if isinstance(output, str) else None
    if m is None:
        raise ValueError(f"the output must be written 'name = Vi(dim)' or 'name = Vj(dim)', got {output!r}")
    return (1 if m.group(2) == "Vi" else 0), int(m.group(3))


def generic_reductions(genred_class):
    """generic_sum, generic_logsumexp, generic_argmin, generic_argkmin for one framework's Genred class."""

    def generic_sum(formula, output, *aliases, **kwargs):
        """Genred Sum reduction whose output alias ('s = Vi(D)' or 'Vj') fixes the axis."""
        axis, _ = parse_output_alias(output)
        return genred_class(formula, list(aliases), reduction_op="Sum", axis=axis, **kwargs)

    def generic_logsumexp(formula, output, *aliases, **kwargs):
        """Genred LogSumExp reduction whose output alias fixes the axis."""
        axis, _ = parse_output_alias(output)
        return genred_class(formula, list(aliases), reduction_op="LogSumExp", axis=axis, **kwargs)

    def generic_argmin(formula, output, *aliases, **kwargs):
        """Genred ArgMin reduction whose output alias fixes the axis."""
        axis, _ = parse_output_alias(output)
        return genred_class(formula, list(aliases), reduction_op="ArgMin", axis=axis, **kwargs)

    def generic_argkmin(formula, output, *aliases, **kwargs):
        """Genred ArgKMin reduction: the output alias fixes the axis and its dim is K."""
        axis, K = parse_output_alias(output)
        return genred_class(formula, list(aliases), reduction_op="ArgKMin", axis=axis, opt_arg=K, **kwargs)

    helpers = (generic_sum, generic_logsumexp, generic_argmin, generic_argkmin)
    for helper in helpers:
        helper.__qualname__ = helper.__name__
    return helpers
