"""GenericGenred: checks options and arguments, builds the KeOps reduction string, runs the engine's kernel."""

import numbers
import warnings

from .engine import load_engine
from .tools import class_name, type_name

GPU_BACKENDS = ("GPU", "GPU_1D", "GPU_2D", "GPU_1D_device", "GPU_1D_host", "GPU_2D_device", "GPU_2D_host")
SUM_SCHEMES = ("auto", "direct_sum", "block_sum", "kahan_scheme")
ACC_DTYPES = ("auto", "float16", "float32", "float64")

# KeOps reduction_op names. Only SUPPORTED_REDUCTIONS run for now; the others are valid KeOps
# and get a NotImplementedError rather than an "unknown reduction" error.
SUPPORTED_REDUCTIONS = ("Sum",)
LATER_REDUCTIONS = (
    "Max_SumShiftExp", "Max_SumShiftExpWeight", "LogSumExp", "LogSumExpWeight", "SumSoftMaxWeight",
    "SoftMax", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin",
)

CATEGORY_NAMES = ("Vi", "Vj", "Pm")


def is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_backend(backend):
    """Accept the CPU backends; GPU ones fail clearly since this build has no GPU backend yet."""
    if backend in ("auto", "CPU"):
        return
    if backend in GPU_BACKENDS:
        raise RuntimeError(
            f"backend={backend!r} was requested but no GPU backend is available "
            "(pykeops.config.gpu_available is False); use backend='CPU' or 'auto'"
        )
    raise ValueError(f"unknown backend {backend!r}: expected 'auto', 'CPU' or one of {', '.join(GPU_BACKENDS)}")


def check_arrays(args, tools):
    """Return the common (dtype, device) of the arguments: arrays of one framework, dtype and device."""
    if not args:
        return tools.default_dtype(), "cpu"
    for k, a in enumerate(args):
        if not tools.is_array(a):
            raise TypeError(
                f"argument {k} is a {type_name(a)}: pykeops.{tools.name} expects {class_name(tools.array_type)} "
                "arguments"
            )
    dtype = tools.check_dtype(args[0], "argument 0")
    device = tools.device(args[0])
    for k, a in enumerate(args[1:], 1):
        other = tools.check_dtype(a, f"argument {k}")
        if other != dtype:
            raise ValueError(f"argument {k} has dtype {other} but argument 0 has {dtype}: all arguments must share one dtype")
        if tools.device(a) != device:
            raise ValueError(f"argument {k} is on device {tools.device(a)} but argument 0 is on {device}")
    if device != "cpu":
        raise ValueError(f"the arguments are on device {device}: only CPU arrays are supported (no GPU backend is available)")
    return dtype, device


def bind_arguments(args, spec, tools):
    """Check each argument against the kernel's signature (spec.nargs, .arg_dims, .arg_cats).

    Returns the arguments as C-contiguous arrays (copies only where needed, silently) and the sizes
    nx, ny: the row counts of the i- and j-variables, 1 when there is none.
    """
    if len(args) != spec.nargs:
        raise ValueError(f"the formula has {spec.nargs} variables but {len(args)} arguments were given")
    sizes, setters = [None, None], [None, None]
    arrays = []
    for k, (a, dim, cat) in enumerate(zip(args, spec.arg_dims, spec.arg_cats)):
        shape = tuple(a.shape)
        what = f"argument {k} ({CATEGORY_NAMES[cat]} variable of dim {dim})"
        expected_ndim, expected = (1, f"({dim},)") if cat == 2 else (2, f"({'MN'[cat]}, {dim})")
        if len(shape) > expected_ndim:
            raise NotImplementedError(
                f"{what} has shape {shape}: batch dimensions are not supported yet, expected shape {expected}"
            )
        if len(shape) < expected_ndim or shape[-1] != dim:
            raise ValueError(f"{what} should have shape {expected}, got {shape}")
        if cat < 2:
            if sizes[cat] is None:
                sizes[cat], setters[cat] = shape[0], k
            elif shape[0] != sizes[cat]:
                raise ValueError(
                    f"{what} has {shape[0]} rows but argument {setters[cat]} has {sizes[cat]}: all "
                    f"{CATEGORY_NAMES[cat]} variables must have the same number of rows"
                )
        arrays.append(tools.contiguous(a))
    nx, ny = (1 if s is None else s for s in sizes)
    return arrays, nx, ny


def check_out(out, shape, dtype, device, tools):
    """Check that a user-given out= array can receive the result in place."""
    if not tools.is_array(out):
        raise TypeError(f"out is a {type_name(out)}: pykeops.{tools.name} expects a {class_name(tools.array_type)}")
    if tuple(out.shape) != shape:
        raise ValueError(f"out should have shape {shape}, got {tuple(out.shape)}")
    if tools.dtype_name(out) != dtype:
        raise ValueError(f"out has dtype {tools.dtype_name(out)} but the arguments have {dtype}")
    if tools.device(out) != device:
        raise ValueError(f"out is on device {tools.device(out)} but the arguments are on {device}")
    if not tools.is_writable_contiguous(out):
        raise ValueError("out must be a C-contiguous, aligned and writable array")
    if tools.needs_grad((out,)):
        raise ValueError("out requires grad: results written in place into out= are not differentiable")


class GenericGenred:
    """Generic reduction over a KeOps formula; subclasses set `tools` (see pykeops.numpy.Genred)."""

    tools = None

    def __init__(
        self, formula, aliases, reduction_op="Sum", axis=0, dtype=None, opt_arg=None, formula2=None,
        cuda_type=None, dtype_acc="auto", use_double_acc=False, sum_scheme="auto", enable_chunks=True,
        rec_multVar_highdim=False, use_fast_math=True,
    ):
        # enable_chunks, rec_multVar_highdim and use_fast_math tune the GPU backend only: accepted, no effect.
        for name, value in (("dtype", dtype), ("cuda_type", cuda_type)):
            if value is not None:
                warnings.warn(
                    f"Genred's {name}= argument is deprecated and ignored: the dtype is taken from the arguments",
                    DeprecationWarning, stacklevel=2,
                )
        if not isinstance(formula, str):
            raise TypeError(f"formula must be a string, got {type_name(formula)}")
        if isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases):
            raise TypeError("aliases must be a list of strings such as 'x = Vi(3)'")
        if reduction_op not in SUPPORTED_REDUCTIONS:
            if reduction_op in LATER_REDUCTIONS:
                raise NotImplementedError(f"reduction {reduction_op!r} is not supported yet (only 'Sum' is)")
            raise ValueError(f"unknown reduction_op {reduction_op!r}")
        if opt_arg is not None or formula2 is not None:
            raise ValueError(f"the {reduction_op} reduction takes neither opt_arg nor formula2")
        if not (is_int(axis) and axis in (0, 1)):
            raise ValueError(f"axis must be 0 (reduce over i) or 1 (reduce over j), got {axis!r}")
        if dtype_acc not in ACC_DTYPES:
            raise ValueError(f"dtype_acc must be one of {ACC_DTYPES}, got {dtype_acc!r}")
        if use_double_acc and dtype_acc != "auto":
            raise ValueError("use_double_acc=True and dtype_acc are mutually exclusive")
        if sum_scheme not in SUM_SCHEMES:
            raise ValueError(f"sum_scheme must be one of {SUM_SCHEMES}, got {sum_scheme!r}")
        if sum_scheme != "auto":
            raise NotImplementedError(f"sum_scheme={sum_scheme!r} is not supported yet (only 'auto' is)")

        self.reduction_op = reduction_op
        self.axis = int(axis)
        self.aliases = list(aliases)
        # The category of the output: 0 = indexed by i (reduction over j), as in KeOps.
        self.formula = f"{reduction_op}_Reduction({formula},{(self.axis + 1) % 2})"
        self.dtype_acc = "float64" if use_double_acc else dtype_acc
        self._acc_option = "use_double_acc=True" if use_double_acc else f"dtype_acc={dtype_acc!r}"
        self._kernels = {}  # dtype name -> engine kernel, filled on first call

    def __getstate__(self):
        return {**self.__dict__, "_kernels": {}}  # native kernels do not pickle; they are rebuilt on call

    def _kernel(self, dtype):
        kernel = self._kernels.get(dtype)
        if kernel is None:
            kernel = self._kernels[dtype] = load_engine().get_kernel(self.formula, self.aliases, dtype)
        return kernel

    def __call__(self, *args, backend="auto", device_id=-1, ranges=None, out=None):
        """Run the reduction; args follow the alias positions. device_id only matters for GPU backends."""
        tools = self.tools
        check_backend(backend)
        if ranges is not None:
            raise NotImplementedError("ranges= (block-sparse reductions) is not supported yet")
        dtype, device = check_arrays(args, tools)
        if self.dtype_acc not in ("auto", dtype):
            raise NotImplementedError(
                f"{self._acc_option} is not supported yet with {dtype} data (the accumulator has the data's dtype)"
            )
        if tools.needs_grad(args):
            raise NotImplementedError(
                "gradients through pykeops reductions are not supported yet: an argument requires grad while "
                "autograd is enabled; detach() it or call under torch.no_grad()"
            )
        kernel = self._kernel(dtype)
        arrays, nx, ny = bind_arguments(args, kernel, tools)
        shape = (nx if kernel.tag == 0 else ny, kernel.dim_out)
        if out is None:
            out = tools.empty(shape, dtype, device)
        else:
            check_out(out, shape, dtype, device, tools)
        if shape[0] > 0:
            kernel.run([tools.data_ptr(a) for a in arrays], nx, ny, tools.data_ptr(out))
        return out
