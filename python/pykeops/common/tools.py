"""ArrayTools: the few array primitives that Genred and LazyTensor need, implemented once per framework."""

import numbers

# dtypes the CPU engine computes in; float16 needs the GPU backend (later) and integers are never data.
SUPPORTED_DTYPES = ("float32", "float64")


def class_name(cls):
    """Short qualified class name for error messages, e.g. 'torch.Tensor', 'numpy.ndarray', 'list'."""
    module = cls.__module__.split(".")[0]
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def type_name(x):
    return class_name(type(x))


def as_int(x):
    """x as a Python int when it is an integer: an int, a NumPy integer, or an integer array or tensor of one
    element (0-d or not, e.g. torch.tensor(5), np.array([5])); None otherwise. bools (and bool arrays) and floats
    are not integers, even integral-valued ones. Every integer argument of pykeops (K, axis, dim, indices...) goes
    through it."""
    if type(x) is int:  # (the common case, before the ABC test)
        return x
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Integral):  # int and the NumPy integers (np.bool_ is not registered as Integral)
        return int(x)
    if not (hasattr(x, "dtype") and hasattr(x, "item")):
        return None
    try:
        value = x.item()  # NumPy and torch alike: a Python scalar, for one-element arrays only
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None
    return value if type(value) is int else None


def as_real(x):
    """x as a Python float when it is a real number: an int or float (NumPy's too), or a real array or tensor of one
    element; None otherwise (bools and complex numbers are not). The value is a constant: no autograd."""
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Real):
        return float(x)
    if not (hasattr(x, "dtype") and hasattr(x, "item")):
        return None
    try:
        value = x.item()
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None
    return float(value) if type(value) in (int, float) else None


def int_argument(x, what):
    """as_int(x), or a TypeError saying that `what` (e.g. "K", "axis") must be an integer."""
    value = as_int(x)
    if value is None:
        raise TypeError(f"{what} must be an integer (an int, a NumPy integer or a one-element integer tensor), got "
                        f"{x!r} of type {type_name(x)}")
    return value


class ArrayTools:
    """Adapter interface; pykeops.numpy and pykeops.torch each subclass it with static methods.

    dtypes are passed around as names ("float32"), devices as strings ("cpu"), so that the shared code
    never imports a framework.
    """

    name = None  # framework name, as in "pykeops.<name>"
    autograd = None  # module with apply(genred, args, backend, device_id, ranges) -> raw outputs, if differentiable
    compiled = None  # module with tracing(), call(), solve(), TracedGenred, TracedSolve if traceable (torch.compile)
    array_type = None  # the array class that this framework's Genred and LazyTensor accept

    @classmethod
    def sharded(cls, genred, args, group, backend, device_id, ranges, out):
        """A reduction sharded over a torch.distributed group (pykeops.torch only)."""
        raise ValueError(f"group= (sharded reductions over torch.distributed) needs pykeops.torch, not pykeops.{cls.name}")

    @classmethod
    def sharded_solve(cls, solver, args, group, backend, device_id, alpha, eps, ranges):
        """KernelSolve sharded over a torch.distributed group (pykeops.torch only)."""
        cls.sharded(None, args, group, backend, device_id, ranges, None)

    @classmethod
    def is_array(cls, x):
        return isinstance(x, cls.array_type)

    @classmethod
    def check_dtype(cls, x, what):
        """Raise TypeError unless x holds float32/float64 data; `what` names x in the message."""
        dtype = cls.dtype_name(x)
        if dtype not in SUPPORTED_DTYPES:
            hint = ("complex arrays go through LazyTensor (ComplexLazyTensor), or as real pairs" if "complex" in dtype
                    else "integers can only appear as constants in formulas; float16 needs the GPU backend")
            raise TypeError(f"{what} has dtype {dtype}: pykeops computes on float32 or float64 arrays only ({hint})")
        return dtype

    # Framework-specific primitives, overridden by each subclass.
    @staticmethod
    def dtype_name(x):
        """Name of x's dtype, e.g. 'float32'."""
        raise NotImplementedError

    @staticmethod
    def device(x):
        """Device of x as a string; 'cpu' for host memory."""
        raise NotImplementedError

    @staticmethod
    def default_dtype():
        """dtype used when a computation has no array to take it from."""
        raise NotImplementedError

    @staticmethod
    def layout_key(x):
        """A hashable summary of everything the argument checks read from x (its type, dtype, device, layout,
        shape), so that arguments with equal keys pass or fail them alike; None when x is not such an array."""
        return None

    @staticmethod
    def contiguous(x):
        """x as a C-contiguous, aligned array whose memory reads as its values (x itself when it already is): the
        engine only reads its data address."""
        raise NotImplementedError

    @staticmethod
    def is_writable_contiguous(x):
        """Whether the engine may write into x in place (C-contiguous, aligned, writable)."""
        raise NotImplementedError

    @staticmethod
    def check_storage(x, what):
        """Raise TypeError/ValueError unless x is a plain dense array whose memory holds its values (torch: no sparse,
        mkldnn or meta tensors); `what` names x in the message."""

    @staticmethod
    def holds_its_values(x):
        """Whether x's memory reads as x (False for torch's lazy negative / conjugate views, whose bit the engine
        would ignore: they are copied on the way in and never written into)."""
        return True

    @staticmethod
    def may_share_memory(a, b):
        """Whether a and b may overlap in memory (True when unsure: the caller then works on a copy)."""
        raise NotImplementedError

    @staticmethod
    def empty(shape, dtype, device):
        raise NotImplementedError

    @staticmethod
    def from_values(values, dtype, device):
        """1-D array from a list of Python floats (parameters written as numbers in formulas)."""
        raise NotImplementedError

    @staticmethod
    def data_ptr(x):
        """Address of x's first element."""
        raise NotImplementedError

    @classmethod
    def data_ptrs(cls, arrays):
        """Addresses of the first elements of a list of C-contiguous arrays."""
        return [cls.data_ptr(a) for a in arrays]

    @staticmethod
    def needs_grad(arrays):
        """Whether autograd would have to track a computation on these arrays."""
        raise NotImplementedError

    @staticmethod
    def is_integer(x):
        """Whether x holds (signed or unsigned) integers, bool excluded."""
        raise NotImplementedError

    @staticmethod
    def as_int64(x):
        """x as a C-contiguous int64 array (x itself when it already is)."""
        raise NotImplementedError

    @staticmethod
    def log(x):
        """Element-wise natural log; log(0) = -inf without a warning."""
        raise NotImplementedError
