"""GenericLazyTensor: builds KeOps formula strings from array operations; reductions run them through Genred."""

import functools
import math
import numbers
import re
from collections import namedtuple

from .call_cache import LruCache
from .cluster import swap_axes
from .engine import constant_when_traced, load_engine
from .genred import CATEGORY_NAMES
from .tools import as_int, int_argument, type_name

# A data variable captured by a LazyTensor: an array, or a list of floats that becomes an array once the
# dtype is known. key = "<id(value)>_<cat>" is unique while value is alive (the LazyTensor keeps it alive), so
# the same array used twice with one category is one variable, and Vi(x) - Vj(x) makes two. Formulas are
# kept as templates where a data variable stands as "@key"; positions are only assigned when printing.
DataVariable = namedtuple("DataVariable", "key value dim cat")
_PLACEHOLDER = re.compile(r"@(\d+_\d)")

# Reduction keyword arguments: those of Genred(...) and those of Genred.__call__(...).
COMPILE_OPTIONS = ("dtype_acc", "use_double_acc", "sum_scheme", "enable_chunks", "rec_multVar_highdim", "use_fast_math")
CALL_OPTIONS = ("backend", "device_id", "ranges", "out", "group")
SOLVE_CALL_OPTIONS = ("backend", "device_id", "ranges", "alpha", "eps", "group")
_SYMBOLIC_VAR = re.compile(r"Var\((\d+),(\d+),([01])\)")


# The Genreds of LazyTensor reductions, by formula structure and options (see GenericLazyTensor._genred_of): a
# reduction written again on new arrays of the same layout reuses its Genred, its kernel and its call layouts.
REDUCTIONS = LruCache("reduction", 256, process=True)
_PLAIN_OPTIONS = (str, int, float, bool, type(None))  # option values that are safe parts of a cache key


def _copy(lt):
    """A shallow copy of a LazyTensor (what copy.copy makes, without its generic protocol)."""
    res = object.__new__(type(lt))
    res.__dict__.update(lt.__dict__)
    return res


def _is_number(x, value):
    # (the LazyTensor test first: it is the common operand, and numbers.Number is an ABC, slower to test)
    return not isinstance(x, GenericLazyTensor) and isinstance(x, numbers.Number) and x == value


def _agree(a, b, what):
    """Merge one attribute of two operands: None means 'any'."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    raise ValueError(f"cannot combine LazyTensors with different {what}: {a} and {b}")


def _broadcast_batchdims(a, b):
    """NumPy broadcast of the batch dims of two operands."""
    if a == b:
        return tuple(a)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(p != q and 1 not in (p, q) for p, q in zip(a, b)):
        raise ValueError(f"cannot combine LazyTensors with batch dimensions {a} and {b}: they do not broadcast")
    return tuple(max(p, q) if 1 in (p, q) else p for p, q in zip(a, b))


def _agree_ranges(a, b):
    """Merge the ranges of two operands: None means 'dense'; otherwise they must be the same arrays."""
    if a is None or a is b:
        return b
    if b is None or (len(a) == len(b) and all(p is q for p, q in zip(a, b))):
        return a
    raise ValueError("cannot combine LazyTensors with different ranges (block-sparsity patterns)")


def _is_complex(x):
    return isinstance(x, complex) or (isinstance(x, list) and any(isinstance(v, complex) for v in x))


def _is_complex_array(tools, x):
    return tools is not None and tools.is_array(x) and tools.dtype_name(x).startswith("complex")


def _is_full_slice(key):
    return isinstance(key, slice) and key == slice(None)


def _int_list(value, op, name):
    """An int or a sequence of ints as a list of ints (lists given to TensorDot, Kron)."""
    items = [value] if as_int(value) is not None else value
    try:
        items = [as_int(v) for v in items]
    except TypeError:
        items = [None]
    if None in items:
        raise TypeError(f"operation {op}: {name} must be an int or a list of ints, got {value!r}")
    return items



_ENGINE_COLUMN = re.compile(r"^formula: column \d+: ")
# Operations resolved at construction by symbolic differentiation: their dim depends on the formula, not only on
# the operands' dims, so their builders state it (as the table's out_dim does).
_RESOLVED = {"Grad", "Diff", "Divergence", "Laplacian", "GradMatrix", "TraceOperator"}


@constant_when_traced
def _engine_dim(op, dims, params, infix):
    """Output dim of op applied to operands of dims `dims` (and integer parameters): see _engine_dim_of."""
    return _engine_dim_of(op, dims, params, infix)


@functools.lru_cache(maxsize=4096)
def _engine_dim_of(op, dims, params, infix):
    """Output dim of op applied to operands of dims `dims` (and integer parameters), by the engine's rule: the
    operation table's dimension function; ValueError naming the operation when the dims do not fit it."""
    operands = [f"Var({k},{d},0)" for k, d in enumerate(dims)]
    text = f"({operands[0]} {op} {operands[1]})" if infix else f"{op}({','.join(operands + list(params))})"
    try:
        return load_engine().formula_dim(text, [])
    except ValueError as e:
        reason = _ENGINE_COLUMN.sub("", str(e))
        if len(dims) == 1:
            raise ValueError(f"operation {op}: {reason.removeprefix(op + ': ')}") from None
        listed = " and ".join(map(str, dims)) if len(dims) == 2 else ", ".join(map(str, dims))
        raise ValueError(f"operation {op}: incompatible inner dimensions {listed} ({reason})") from None


@functools.lru_cache(maxsize=None)
def _operation_table():
    """{name: row} of the engine's operation table, and the set of its infix symbols."""
    ops = {op["name"]: op for op in load_engine().operations()}
    return ops, frozenset(op["infix"] for op in ops.values() if op["infix"])


def _check_operation_name(where, operation, infix):
    """operation names a row of the engine's table that takes a formula first (or, infix, one of its symbols)."""
    if not isinstance(operation, str):
        raise TypeError(f"{where}: the operation is a name (a string), got a {type_name(operation)}")
    ops, symbols = _operation_table()
    if infix:
        if operation not in symbols:
            raise ValueError(f"{where}: not an infix operator: expected one of {', '.join(sorted(symbols))}")
    elif operation not in ops or not ops[operation]["signature"].startswith("F"):
        raise ValueError(f"{where}: unknown operation: expected a name of the operation table (docs/operations.md), "
                         "such as 'Exp', 'Pow' or 'SqDist'")


def _check_dims(where, dimcheck, dims, ternary=False):
    """KeOps's dimcheck rules of binary / ternary: "same", "sameor1", "vecand1" (binary only) or None."""
    if dimcheck is None:
        return
    listed = " and ".join(map(str, dims))
    if dimcheck == "same":
        if len(set(dims)) > 1:
            raise ValueError(f"{where} expects operands of the same dimension, got {listed}")
    elif dimcheck == "sameor1":
        if len(set(d for d in dims if d != 1)) > 1:
            raise ValueError(f"{where} expects operands of the same dimension or of dimension 1, got {listed}")
    elif dimcheck == "vecand1" and not ternary:
        if dims[1] != 1:
            raise ValueError(f"{where} expects a vector and a scalar (dimension 1), got {listed}")
    else:
        raise ValueError(f"{where}: dimcheck must be 'same', 'sameor1'{'' if ternary else ', ' + repr('vecand1')} or "
                         f"None, got {dimcheck!r}")


def _as_kind(lt, is_complex, where):
    """lt as a ComplexLazyTensor (is_complex) or a real LazyTensor of its framework."""
    from .complex_lazy_tensor import complex_lazy_tensor_class

    real_class = getattr(lt, "_real_class", None) or type(lt)
    cls = complex_lazy_tensor_class(real_class) if is_complex else real_class
    if type(lt) is cls:
        return lt
    if is_complex and lt.ndim % 2:
        raise ValueError(f"{where}: is_complex=True needs an even dimension (re, im pairs), got {lt.ndim}")
    res = object.__new__(cls)
    res.__dict__.update(lt.__dict__)
    return res


def _traced_spec(formula, aliases, op, axis, opt_arg, formula2, options):
    """The custom op's description of a Genred (pykeops.torch.compiled.spec_of) from a reduction's options."""
    acc = "float64" if options.get("use_double_acc") else str(options.get("dtype_acc", "auto"))
    return (formula, ";".join(aliases), op, axis, None if opt_arg is None else int_argument(opt_arg, "K"), formula2, acc,
            str(options.get("sum_scheme", "auto")), bool(options.get("use_fast_math", True)),
            bool(options.get("enable_chunks", True)))


class GenericLazyTensor:
    """Symbolic (M, N, D) array: a KeOps formula plus the arrays it reads, reduced to a real array on demand.

    Subclasses set `tools` (the framework's ArrayTools), `Genred` and `KernelSolve` (the framework's classes).
    """

    tools = None
    Genred = None
    KernelSolve = None

    __array_ufunc__ = None  # makes numpy defer `array op LazyTensor` to our reflected operators
    __hash__ = None  # __eq__ builds a formula, so LazyTensors are unhashable (never dict keys or set members)
    __iter__ = None  # x[k] is Elem(x, k): no iteration over the inner dimension through __getitem__
    is_complex = False  # True on ComplexLazyTensor

    # The attributes of an empty LazyTensor, as class defaults: an instance stores only those it sets, so that the
    # copies every operation makes stay small. (The two dicts are never changed in place, only replaced.)
    _template = None  # the formula, with "@key" standing for each data variable
    _data = ()  # DataVariable tuple, in position order
    symbolic_variables = ()  # sorted (ind, dim, cat) tuples, given at call time
    ndim = None  # inner dimension D
    ni = nj = None  # row counts of the i- and j-variables, None when there is none
    axis = None  # category of a plain variable; reduction axis of a reduced LazyTensor
    reduction_op = None
    _dtype = _device = None  # from the arrays; None while there is none
    _genred = None  # set on reduced LazyTensors, which are callable
    _call_options = {}
    _template2 = None  # weights formula of logsumexp / sumsoftmaxweight reductions
    _fixed_args = {}  # symbolic position -> array given by the library (the right-hand side of solve)
    batchdims = ()  # leading dims of the arrays, broadcast NumPy-style between operands
    ranges = None  # block-sparsity 6-tuple used by the reductions when they are not given ranges=
    backend = None  # default backend of the reductions

    def __new__(cls, x=None, axis=None, is_complex=False):
        """LazyTensor(x) is a ComplexLazyTensor when x is complex (array, number, list) or is_complex is set."""
        if cls.is_complex or not (is_complex or _is_complex(x) or _is_complex_array(cls.tools, x)):
            return super().__new__(cls)
        from .complex_lazy_tensor import complex_lazy_tensor_class

        return complex_lazy_tensor_class(cls)(x, axis)

    def __init__(self, x=None, axis=None, is_complex=False):
        if is_complex or _is_complex(x):
            raise NotImplementedError("complex LazyTensors are not supported yet")
        if x is None:
            return
        if self.tools is not None and self.tools.is_array(x):  # the common case first
            self._init_array(x, axis)
        elif isinstance(x, tuple):
            self._init_symbolic(x, axis)
        elif isinstance(x, numbers.Integral):
            self._template, self.ndim = f"IntCst({int(x)})", 1  # compile-time constant; axis is ignored
        elif isinstance(x, (numbers.Real, list)):
            self._init_values([x] if isinstance(x, numbers.Real) else x, axis)
        else:
            raise TypeError(
                f"pykeops.{self.tools.name}.LazyTensor cannot wrap a {type_name(x)}: expected an array of this "
                "framework, a number, a list of numbers or an (ind, dim, cat) tuple"
            )

    # ----------------------------------------------------------------------------------------- construction

    def _init_symbolic(self, x, axis):
        if axis is not None:
            raise ValueError("a symbolic variable (ind, dim, cat) takes no axis")
        if len(x) != 3:
            raise ValueError(f"a symbolic variable is an (ind, dim, cat) tuple of 3 ints, got {x!r}")
        ind, dim, cat = (int_argument(v, f"{name} of the symbolic variable {x!r}")
                         for v, name in zip(x, ("ind", "dim", "cat")))
        if ind < 0 or dim < 1 or cat not in (0, 1, 2):
            raise ValueError(f"a symbolic variable needs ind >= 0, dim >= 1 and cat in (0, 1, 2), got {x!r}")
        self.symbolic_variables = ((ind, dim, cat),)
        self._template, self.ndim, self.axis = f"Var({ind},{dim},{cat})", dim, cat

    def _init_values(self, values, axis):
        """Parameter from Python numbers; its array is made once the dtype of the computation is known."""
        if axis not in (None, 2):
            raise ValueError(f"a number or list of numbers is a parameter: axis must be None or 2, got {axis!r}")
        if not values or not all(isinstance(v, numbers.Real) for v in values):
            raise ValueError("a list given to LazyTensor must be a non-empty list of numbers")
        self._set_variable([float(v) for v in values], len(values), 2)

    def _init_array(self, x, axis):
        tools = self.tools
        axis = None if axis is None else int_argument(axis, "axis")
        if tools.dtype_name(x).startswith("complex"):
            raise NotImplementedError("complex LazyTensors are not supported yet")
        self._dtype = tools.check_dtype(x, "the array given to LazyTensor")
        self._device = tools.device(x)
        shape = tuple(x.shape)
        if len(shape) <= 1:
            if axis not in (None, 2):
                raise ValueError(f"a 0-D or 1-D array is a parameter: axis must be None or 2, got {axis!r}")
            value, cat = (x.reshape(1) if len(shape) == 0 else x), 2
        elif len(shape) == 2:
            if axis not in (0, 1, 2):
                raise ValueError(
                    f"a 2-D array needs axis=0 (i-variable, Vi) or axis=1 (j-variable, Vj), got axis={axis!r}"
                )
            if axis == 2 and shape[0] != 1:
                raise ValueError(f"a 2-D array with axis=2 is a parameter and must have shape (1, D), got {shape}")
            value, cat = (x[0] if axis == 2 else x), axis
        else:
            # (..., M, 1, D) / (..., 1, N, D) / (..., 1, 1, D): the leading dims are batch dims.
            if axis is not None:
                raise ValueError(f"a {len(shape)}-D array carries its category in its shape: axis must be None")
            # (squeeze(axis): the view that x[..., :, 0, :] gives, at half the cost for torch tensors)
            if shape[-3] == 1 and shape[-2] == 1:
                value, cat = x.squeeze(-2).squeeze(-2), 2
            elif shape[-2] == 1:
                value, cat = x.squeeze(-2), 0
            elif shape[-3] == 1:
                value, cat = x.squeeze(-3), 1
            else:
                raise ValueError(
                    f"a {len(shape)}-D array must have shape (M, 1, D), (1, N, D) or (1, 1, D) in its last three "
                    f"axes (the others are batch dims), got {shape}"
                )
            self.batchdims = shape[:-3]
        if shape and shape[-1] == 0:
            raise ValueError(f"the inner dimension D of a LazyTensor must be at least 1, got shape {shape}")
        self._set_variable(value, 1 if not shape else shape[-1], cat)
        self.axis = cat
        if cat == 0:
            self.ni = value.shape[-2]
        elif cat == 1:
            self.nj = value.shape[-2]

    def _set_variable(self, value, dim, cat):
        key = "%d_%d" % (id(value), cat)  # (an f-string of id() is not traced by torch.compile)
        self._data = (DataVariable(key, value, dim, cat),)
        self._template, self.ndim = "@" + key, dim

    # ------------------------------------------------------------------------------------------- attributes

    def _offset(self):
        """Data variables are numbered after the symbolic ones."""
        return self.symbolic_variables[-1][0] + 1 if self.symbolic_variables else 0

    def _data_names(self):
        offset = self._offset()
        return {v.key: f"Var({offset + k},{v.dim},{v.cat})" for k, v in enumerate(self._data)}

    @staticmethod
    def _printed(template, names):
        """A template with its data variables written as names gives them (None stays None)."""
        if template is None:
            return None
        for key, name in names.items():  # ("@<id>_<cat>" is never a prefix of another key: str.replace is exact)
            template = template.replace("@" + key, name)
        return template

    @property
    def formula(self):
        """The KeOps formula, variables numbered as in self.variables (after the symbolic ones)."""
        return self._printed(self._template, self._data_names())

    def _aliases(self, names=None):
        """One "Var(pos,dim,cat)" per argument position, as Genred receives them (names: self._data_names())."""
        names = self._data_names() if names is None else names
        return [f"Var({i},{d},{c})" for i, d, c in self.symbolic_variables] + list(names.values())

    def _values(self, args=()):
        """The data variables as arrays; number lists take the dtype and device of the computation."""
        tools = self.tools
        if self._dtype is not None:
            dtype, device = self._dtype, self._device
        elif args and tools.is_array(args[0]):
            dtype, device = tools.dtype_name(args[0]), tools.device(args[0])
        else:
            dtype, device = tools.default_dtype(), "cpu"
        return [tools.from_values(v.value, dtype, device) if isinstance(v.value, list) else v.value for v in self._data]

    @property
    def variables(self):
        """The arrays the formula reads (the data variables), as a tuple, in their argument order."""
        return tuple(self._values())

    @property
    def dtype(self):
        """dtype name of the arrays ("float32"/"float64"), None while the LazyTensor holds none."""
        return self._dtype

    @property
    def _shape(self):
        return self.batchdims + (1 if self.ni is None else self.ni, 1 if self.nj is None else self.nj, self.ndim)

    @property
    def nbatchdims(self):
        """Number of leading batch dimensions (0 for a plain (M, N, D) LazyTensor)."""
        return len(self.batchdims)

    @property
    def formula2(self):
        """The weights formula of a logsumexp / sumsoftmaxweight reduction, None otherwise."""
        return self._printed(self._template2, self._data_names())

    @property
    def shape(self):
        """(*batch, M, N, D), without D when D is 1; M or N is 1 along an axis no variable indexes."""
        return self._shape if self.ndim != 1 else self._shape[:-1]

    def dim(self):
        """Number of axes of the symbolic array, as torch's Tensor.dim(): len(batchdims) + 3 (i, j, inner)."""
        return len(self._shape)

    @property
    def callfun(self):
        """The Genred (or KernelSolve, for solve) that a reduced LazyTensor calls; AttributeError on others."""
        if self._genred is None:
            raise AttributeError("callfun: only reduced LazyTensors (e.g. from .sum(dim=1, call=False)) have one")
        return self._genred

    def __str__(self):
        lines = ["KeOps LazyTensor", f"    formula: {self.formula}"]
        if self.symbolic_variables:
            lines.append("    symbolic variables: " + ", ".join(f"Var{s}" for s in self.symbolic_variables))
        lines.append(f"    shape: {self.shape}")
        if self.reduction_op is not None:
            lines.append(f"    reduction: {self.reduction_op} (axis={self.axis})")
        return "\n".join(lines)

    __repr__ = __str__

    # ---------------------------------------------------------------------------------------- formula building

    def _operand(self):
        """self, checked to be usable in a formula."""
        if self._genred is not None:
            raise ValueError("a reduced LazyTensor cannot be used in further operations")
        if self._template is None:
            raise ValueError("an empty LazyTensor cannot be used in operations")
        return self

    def _lift(self, other):
        """other as a LazyTensor of this framework (numbers become constants or parameters)."""
        if not self.is_complex and self._complex_operand(other) is not None:
            raise TypeError(
                "this operation takes real operands only, got a complex one (only + - * / mix real and complex "
                "LazyTensors; use .real2complex() or .real / .imag to convert)"
            )
        if isinstance(other, GenericLazyTensor):
            if other.tools is not self.tools:
                raise TypeError(
                    f"cannot combine a pykeops.{self.tools.name} LazyTensor with a pykeops.{other.tools.name} one"
                )
            return other._operand()
        return type(self)(other)

    def _check_op(self, op):
        """Hook run before an operation (its name, or infix symbol) is applied to self; ComplexLazyTensor checks it."""

    def _merged(self, other):
        """Copy of self that also holds other's variables; sizes, dtype and device must agree."""
        res = _copy(self)
        # (each attribute is merged only where other's differs: most operands agree or leave it None)
        if other.ni is not None and other.ni != self.ni:
            res.ni = _agree(self.ni, other.ni, "numbers of i-rows (Vi variables)")
        if other.nj is not None and other.nj != self.nj:
            res.nj = _agree(self.nj, other.nj, "numbers of j-rows (Vj variables)")
        if other._dtype is not None and other._dtype != self._dtype:
            res._dtype = _agree(self._dtype, other._dtype, "dtypes")
        if other._device is not None and other._device != self._device:
            res._device = _agree(self._device, other._device, "devices")
        if other.batchdims != self.batchdims:
            res.batchdims = _broadcast_batchdims(self.batchdims, other.batchdims)
        if other.ranges is not None:
            res.ranges = _agree_ranges(self.ranges, other.ranges)
        if other.backend is not None and other.backend != self.backend:
            res.backend = _agree(self.backend, other.backend, "backends")
        if not self._data:
            res._data = other._data
        elif other._data:
            keys = {v.key for v in self._data}
            res._data = self._data + tuple(v for v in other._data if v.key not in keys)
        if other.symbolic_variables:  # (self's are sorted and consistent already)
            signatures = {}
            for ind, dim, cat in self.symbolic_variables + other.symbolic_variables:
                if signatures.setdefault(ind, (dim, cat)) != (dim, cat):
                    raise ValueError(
                        f"symbolic variable {ind} is used as Var({ind},{dim},{cat}) and as Var({ind},{','.join(map(str, signatures[ind]))})"
                    )
            res.symbolic_variables = tuple((ind, *signatures[ind]) for ind in sorted(signatures))
        res.axis = None
        return res

    def _unary(self, op, params=()):
        """op(self[, params...]), of the dim the engine's operation table gives."""
        self._check_op(op)
        res = _copy(self._operand())
        ndim = _engine_dim(op, (self.ndim,), tuple(map(str, params)) if params else (), False)
        res._template = f"{op}({self._template}{''.join(f',{p}' for p in params)})" if params else f"{op}({self._template})"
        res.ndim, res.axis = ndim, None
        return res

    def _binary(self, other, op, infix=False, reflected=False):
        """`(a op b)` if infix else `op(a,b)`, with a = self (or other when reflected); the engine's operation table
        checks the dims and gives the result's."""
        self._check_op(op)
        # (an operand of self's own class is of its framework and kind: _lift's tests hold)
        a, b = self._operand(), other._operand() if type(other) is type(self) else self._lift(other)
        if reflected:
            a, b = b, a
        ndim = _engine_dim(op, (a.ndim, b.ndim), (), infix)
        res = a._merged(b)
        res._template = f"({a._template} {op} {b._template})" if infix else f"{op}({a._template},{b._template})"
        res.ndim = ndim
        return res

    def _zero(self):
        """Zero vector with self's variables, so that the sizes M and N still come from them."""
        res = _copy(self._operand())
        res._template, res.axis = f"Zero({self.ndim})", None
        return res

    # ------------------------------------------------------------------------------------------ operators

    def _complex_operand(self, other):
        """other as a ComplexLazyTensor when it is complex (LazyTensor, number, list or array), else None.

        Arithmetic with a complex operand is done by the ComplexLazyTensor operators (real operands promoted).
        """
        if isinstance(other, GenericLazyTensor):
            return other if other.is_complex else None
        if _is_complex(other) or _is_complex_array(self.tools, other):
            return type(self)(other)  # __new__ makes it a ComplexLazyTensor
        return None

    def __add__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__radd__(self)
        return self._operand() if _is_number(other, 0) else self._binary(other, "+", infix=True)

    def __radd__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__add__(self)
        return self._operand() if _is_number(other, 0) else self._binary(other, "+", infix=True, reflected=True)

    def __sub__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__rsub__(self)
        return self._operand() if _is_number(other, 0) else self._binary(other, "-", infix=True)

    def __rsub__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__sub__(self)
        return -self if _is_number(other, 0) else self._binary(other, "-", infix=True, reflected=True)

    def __mul__(self, other, reflected=False):
        z = self._complex_operand(other)
        if z is not None:
            return z.__mul__(self) if reflected else z.__rmul__(self)
        # KeOps returns the Python int 0 for x * 0, which loses M and N; a Zero formula keeps them.
        if _is_number(other, 0):
            return self._zero()
        if _is_number(other, 1):
            return self._operand()
        if _is_number(other, -1):
            return -self
        return self._binary(other, "*", infix=True, reflected=reflected)

    def __rmul__(self, other):
        return self.__mul__(other, reflected=True)

    def __truediv__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__rtruediv__(self)
        return self._operand() if _is_number(other, 1) else self._binary(other, "/", infix=True)

    def __rtruediv__(self, other):
        z = self._complex_operand(other)
        if z is not None:
            return z.__truediv__(self)
        if _is_number(other, 0):
            return self._zero()
        if _is_number(other, 1):
            return self.inv()
        return self._binary(other, "/", infix=True, reflected=True)

    def __or__(self, other):
        """Scalar product (x | y) of vectors of equal dims."""
        return self._binary(other, "|", infix=True)

    def __ror__(self, other):
        return self._binary(other, "|", infix=True, reflected=True)

    def __pow__(self, other):
        """x ** 2 is Square, x ** int Pow, x ** 0.5 Sqrt, x ** -0.5 Rsqrt; other floats (as parameters) and
        LazyTensors of dim 1 or x.ndim give Powf(x, other)."""
        other = other if as_int(other) is None else as_int(other)  # np.int64, a 0-d integer tensor: an int exponent
        if isinstance(other, numbers.Real):
            if other == 2:
                return self.square()
            if other == 0.5:
                return self.sqrt()
            if other == -0.5:
                return self.rsqrt()
            if isinstance(other, int):
                return self._unary("Pow", params=(other,))
        exponent = self._lift(other)  # float exponents become parameters
        if exponent.ndim not in (1, self._operand().ndim):
            raise ValueError(
                f"operation Powf: incompatible inner dimensions {self.ndim} and {exponent.ndim} (the exponent "
                f"must have dim 1 or the dim {self.ndim} of the base)"
            )
        return self._binary(exponent, "Powf")

    def power(self, other):
        """x ** other (see __pow__: Square, Pow, Sqrt, Rsqrt or Powf by the exponent)."""
        return self**other

    def __neg__(self):
        return self._unary("Minus")

    def __abs__(self):
        return self._unary("Abs")

    def abs(self):
        """Element-wise absolute value |x| (Abs), of the same dim."""
        return self._unary("Abs")

    def exp(self):
        """Element-wise exponential exp(x) (Exp), of the same dim."""
        return self._unary("Exp")

    def log(self):
        """Element-wise natural logarithm log(x) (Log), of the same dim; NaN for x < 0, -inf at 0."""
        return self._unary("Log")

    def sqrt(self):
        """Element-wise square root (Sqrt), of the same dim; its gradient at 0 is taken as 0."""
        return self._unary("Sqrt")

    def rsqrt(self):
        """1 / sqrt(x), 0 where x = 0."""
        return self._unary("Rsqrt")

    def sin(self):
        """Element-wise sine (Sin), of the same dim."""
        return self._unary("Sin")

    def cos(self):
        """Element-wise cosine (Cos), of the same dim."""
        return self._unary("Cos")

    def square(self):
        """Element-wise square x * x (Square), of the same dim."""
        return self._unary("Square")

    def inv(self):
        """Element-wise inverse 1 / x (Inv), of the same dim."""
        return self._unary("Inv")

    def sqnorm2(self):
        """Squared Euclidean norm over the inner dimension."""
        return self._unary("SqNorm2")

    def sqdist(self, other):
        """Squared Euclidean distance |x - y|^2 over the inner dimension."""
        return self._binary(other, "SqDist")

    def _nary(self, others, op, ndim=None, params=()):
        """op(self, *others[, params...]), merging the variables of all operands; the engine's operation table checks
        the dims and gives the result's, except for the operations resolved by symbolic differentiation, whose
        builders give `ndim` (a function of the operands' dims)."""
        self._check_op(op)
        operands = [self._operand()] + [self._lift(o) for o in others]
        in_dims = [o.ndim for o in operands]
        if op in _RESOLVED:
            ndim = ndim(*in_dims) if callable(ndim) else ndim
        else:
            ndim = _engine_dim(op, tuple(in_dims), tuple(map(str, params)), False)
        res = operands[0]
        for o in operands[1:]:
            res = res._merged(o)
        args = [o._template for o in operands] + [str(p) for p in params]
        res._template = f"{op}({','.join(args)})"
        res.ndim = ndim
        return res

    # Symbolic differentiation (resolved by the engine into ordinary formulas).

    def grad(self, v, e):
        """Gradient of self with respect to the variable v, contracted with e (e.ndim == self.ndim): dim v.ndim."""
        e = self._lift(e)
        if e.ndim != self.ndim:
            raise ValueError(f"grad: the gradient input has dim {e.ndim}, expected the formula's dim {self.ndim}")
        return self._nary([v, e], "Grad", ndim=lambda f, vd, ed: vd)

    def diff(self, v, u):
        """Differential of self with respect to the variable v in the direction u (u.ndim == v.ndim)."""
        u = self._lift(u)
        if u.ndim != self._lift(v).ndim:
            raise ValueError(f"diff: the direction has dim {u.ndim}, expected the variable's dim {self._lift(v).ndim}")
        return self._nary([v, u], "Diff", ndim=lambda f, vd, ud: f)

    def divergence(self, v):
        """Trace of the Jacobian of self with respect to v (self.ndim == v.ndim)."""
        if self._lift(v).ndim != self.ndim:
            raise ValueError(f"divergence: the variable has dim {self._lift(v).ndim}, the formula {self.ndim}")
        return self._nary([v], "Divergence", ndim=1)

    def laplacian(self, v):
        """Laplacian of a scalar formula with respect to v."""
        if self.ndim != 1:
            raise ValueError(f"laplacian: the formula must be scalar, got dim {self.ndim}")
        return self._nary([v], "Laplacian", ndim=1)

    def grad_matrix(self, v):
        """Transposed Jacobian of self with respect to v, flattened: element k * v.ndim + l is d self_k / d v_l."""
        return self._nary([v], "GradMatrix", ndim=lambda f, vd: f * vd)

    def trace_operator(self, v):
        """Trace of the linear map v -> self (self must be linear in v)."""
        return self._nary([v], "TraceOperator", ndim=1)

    # Element-wise math (output dim: that of the input).

    def xlogx(self):
        """Element-wise x * log(x) (XLogX), taken as 0 at x = 0."""
        return self._unary("XLogX")

    def sinxdivx(self):
        """Element-wise sin(x) / x (SinXDivX), taken as 1 at x = 0."""
        return self._unary("SinXDivX")

    def sinc(self):
        """Normalized sinc: sin(pi x) / (pi x), i.e. SinXDivX(pi * x) with pi as a parameter."""
        return (math.pi * self).sinxdivx()

    def asin(self):
        """Element-wise arcsine (Asin) in [-pi/2, pi/2], of the same dim; NaN outside [-1, 1]."""
        return self._unary("Asin")

    def acos(self):
        """Element-wise arccosine (Acos) in [0, pi], of the same dim; NaN outside [-1, 1]."""
        return self._unary("Acos")

    def atan(self):
        """Element-wise arctangent (Atan) in (-pi/2, pi/2), of the same dim."""
        return self._unary("Atan")

    def atan2(self, other):
        """Atan2(self, other): the angle of the point (other, self), as numpy.arctan2(self, other)."""
        return self._binary(other, "Atan2")

    def sign(self):
        """Element-wise sign (Sign): -1 where x < 0, 0 at 0, 1 where x > 0."""
        return self._unary("Sign")

    def step(self):
        """Element-wise Heaviside step (Step): 0 where x < 0, else 1."""
        return self._unary("Step")

    def relu(self):
        """Element-wise rectified linear unit max(x, 0) (ReLU), of the same dim."""
        return self._unary("ReLU")

    def floor(self):
        """Element-wise floor (Floor): the largest integer <= x, as a float."""
        return self._unary("Floor")

    def round(self, d=0):
        """Rounds to d decimals (halves away from zero)."""
        return self._unary("Round", params=(int_argument(d, "operation Round: the number of decimals"),))

    def clamp(self, other1, other2):
        """x clamped to [other1, other2]: ClampInt when both bounds are Python ints, else Clamp (floats become
        parameters; LazyTensor bounds of dim 1 or x.ndim are allowed)."""
        if as_int(other1) is not None and as_int(other2) is not None:
            return self._unary("ClampInt", params=(as_int(other1), as_int(other2)))
        return self._nary((other1, other2), "Clamp")

    def ifelse(self, other1, other2):
        """other1 where self >= 0, else other2."""
        return self._nary((other1, other2), "IfElse")

    def mod(self, modulus, offset=0):
        """x - modulus * floor((x - offset) / modulus): x reduced to [offset, offset + modulus)."""
        return self._nary((modulus, offset), "Mod")

    # Comparisons: 1 where true, 0 elsewhere (element-wise, dims equal or 1).

    def __eq__(self, other):
        return self._binary(other, "Equal")

    def __ne__(self, other):
        return self._binary(other, "NotEqual")

    def __lt__(self, other):
        return self._binary(other, "<", infix=True)

    def __gt__(self, other):
        return self._binary(other, ">", infix=True)

    def __le__(self, other):
        return self._binary(other, "<=", infix=True)

    def __ge__(self, other):
        return self._binary(other, ">=", infix=True)

    # Vector operations.

    def norm2(self):
        """Euclidean norm over the inner dimension."""
        return self._unary("Norm2")

    def norm(self, dim):
        """Euclidean norm over dim, which must be the last (inner) axis."""
        if as_int(dim) not in (-1, len(self._shape) - 1):
            raise ValueError(
                f"LazyTensor.norm only reduces the last axis (-1 or {len(self._shape) - 1}), got dim={dim!r}"
            )
        return self.norm2()

    def normalize(self):
        """The unit vector x / |x| over the inner dimension (Normalize), 0 where x = 0."""
        return self._unary("Normalize")

    def weightedsqnorm(self, other):
        """Squared norm of x weighted by other (dim 1: s|x|^2, dim D: sum(s x^2), dim D^2: x^T S x)."""
        s = self._lift(other)
        D = self._operand().ndim
        if s.ndim not in (1, D, D * D):
            raise ValueError(
                f"operation WeightedSqNorm: the weights must have dim 1, D = {D} or D^2 = {D * D} for a vector of "
                f"dim D = {D}, got {s.ndim}"
            )
        return s._nary((self,), "WeightedSqNorm")

    def weightedsqdist(self, other1, other2):
        """(self - other1).weightedsqnorm(other2)."""
        return (self - other1).weightedsqnorm(other2)

    def elem(self, i):
        """Component i (0 <= i < D) of the vector: Elem(x, i), of dim 1."""
        i = int_argument(i, "operation Elem: the index")
        if not 0 <= i < self._operand().ndim:
            raise ValueError(
                f"operation Elem: index {i} is out of range for dimension {self.ndim} (0 <= i < {self.ndim})"
            )
        return self._unary("Elem", params=(i,))

    def extract(self, i, d):
        """Components i, ..., i + d - 1 of the vector: Extract(x, i, d), of dim d."""
        if as_int(i) is None or as_int(d) is None:
            raise TypeError(f"operation Extract: the start and the length must be ints, got {i!r} and {d!r}")
        i, d = as_int(i), as_int(d)
        D = self._operand().ndim
        if i < 0 or d < 1 or i + d > D:
            raise ValueError(
                f"operation Extract: the range [{i}, {i + d}) is empty or out of bounds for dimension {D}"
            )
        return self._unary("Extract", params=(i, d))

    def __getitem__(self, key):
        """x[k] = x.elem(k), x[k:l] = x.extract(k, l - k); only the last axis, e.g. x[:, :, k:l], step 1."""
        if isinstance(key, tuple):
            n = len(self._shape)
            if len(key) != n or any(not _is_full_slice(k) for k in key[:-1]):
                raise ValueError(
                    f"LazyTensors are indexed along their last axis only: x[k], x[k:l] or a tuple of {n} entries "
                    f"whose first {n - 1} are ':' (no Ellipsis), got {key!r}"
                )
            key = key[-1]
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError(f"LazyTensor slices must have step 1, got {key!r}")
            start = 0 if key.start is None else as_int(key.start)
            stop = self._operand().ndim if key.stop is None else as_int(key.stop)
            if start is None or stop is None:
                raise TypeError(f"LazyTensor slices need int bounds, got {key!r}")
            return self.extract(start, stop - start)
        if as_int(key) is not None:
            return self.elem(as_int(key))
        raise TypeError(f"LazyTensors are indexed by an int or a slice along their last axis, got {key!r}")

    def one_hot(self, D):
        """One-hot encoding, of dim D, of the scalar x rounded to the nearest integer."""
        if as_int(D) is None or as_int(D) < 1:
            raise TypeError(f"operation OneHot: the dimension D must be a positive int, got {D!r}")
        D = as_int(D)
        if self._operand().ndim != 1:
            raise ValueError(f"operation OneHot: the argument must have dimension 1, got {self.ndim}")
        return self._unary("OneHot", params=(D,))

    def bspline(self, x, k=0):
        """B-spline basis functions of order k, on the knots self (dim n), at the scalar x: dim n - k - 1."""
        if as_int(k) is None or as_int(k) < 0:
            raise TypeError(f"operation BSpline: the order k must be a non-negative int, got {k!r}")
        k = as_int(k)
        x = self._lift(x)
        n = self._operand().ndim
        if x.ndim != 1:
            raise ValueError(f"operation BSpline: the point x must have dimension 1, got {x.ndim}")
        if n - k - 1 < 1:
            raise ValueError(f"operation BSpline: order {k} needs at least {k + 2} knots, got {n}")
        return self._nary((x,), "BSpline", params=(k,))

    def concat(self, other):
        """Concatenation of the inner vectors: dim x.ndim + other.ndim."""
        return self._nary((other,), "Concat")

    @staticmethod
    def concatenate(tuple_of_lt, axis=-1):
        """Concatenation of a sequence of LazyTensors along the last axis."""
        tuple_of_lt = tuple(tuple_of_lt)
        if not tuple_of_lt:
            raise ValueError("LazyTensor.concatenate needs at least one LazyTensor")
        first = tuple_of_lt[0]
        if not isinstance(first, GenericLazyTensor):
            raise TypeError(f"LazyTensor.concatenate concatenates LazyTensors, got a {type_name(first)} first")
        if as_int(axis) not in (-1, len(first._shape) - 1):
            raise ValueError(
                f"LazyTensor.concatenate only works along the last axis (-1 or {len(first._shape) - 1}), got {axis!r}"
            )
        res = first._operand()
        for other in tuple_of_lt[1:]:
            res = res.concat(other)
        return res

    @staticmethod
    def cat(tuple_of_lt, dim):
        """Same as LazyTensor.concatenate(tuple_of_lt, axis=dim)."""
        return GenericLazyTensor.concatenate(tuple_of_lt, dim)

    def _vector_op_if_last_axis(self, op, axis=-1, dim=None):
        """op(self), of dim 1, when axis (or dim) names the inner axis (-1 or the last axis of _shape); else None.

        Reductions such as min(axis) call it first: x.min(-1) is the vector operation Min(x), x.min(0) a reduction.
        """
        axis = as_int(axis if dim is None else dim)
        if axis in (-1, len(self._shape) - 1):
            return self._unary(op)
        return None

    def min(self, axis=-1, dim=None, **kwargs):
        """Smallest component (axis -1, the default) or Min reduction (axis 0 or 1)."""
        res = self._vector_op_if_last_axis("Min", axis, dim)
        return res if res is not None else self._reduce("Min", axis if dim is None else dim, **kwargs)

    def max(self, axis=-1, dim=None, **kwargs):
        """Largest component (axis -1, the default) or Max reduction (axis 0 or 1)."""
        res = self._vector_op_if_last_axis("Max", axis, dim)
        return res if res is not None else self._reduce("Max", axis if dim is None else dim, **kwargs)

    def argmin(self, axis=-1, dim=None, **kwargs):
        """Index of the smallest component, as a float (axis -1, the default), or ArgMin reduction (axis 0 or 1)."""
        res = self._vector_op_if_last_axis("ArgMin", axis, dim)
        return res if res is not None else self._reduce("ArgMin", axis if dim is None else dim, **kwargs)

    def argmax(self, axis=-1, dim=None, **kwargs):
        """Index of the largest component, as a float (axis -1, the default), or ArgMax reduction (axis 0 or 1)."""
        res = self._vector_op_if_last_axis("ArgMax", axis, dim)
        return res if res is not None else self._reduce("ArgMax", axis if dim is None else dim, **kwargs)

    def matvecmult(self, other):
        """Row-major matrix self (dim m*n) times vector other (dim n): dim m."""
        b = self._lift(other)
        A = self._operand().ndim
        if A % b.ndim:
            raise ValueError(
                f"operation MatVecMult: matrix dimension {A} is not a multiple of vector dimension {b.ndim}"
            )
        return self._nary((b,), "MatVecMult")

    def vecmatmult(self, other):
        """Vector self (dim n) times row-major matrix other (dim n*m): dim m."""
        A = self._lift(other)
        b = self._operand().ndim
        if A.ndim % b:
            raise ValueError(
                f"operation VecMatMult: matrix dimension {A.ndim} is not a multiple of vector dimension {b}"
            )
        return self._nary((A,), "VecMatMult")

    def tensorprod(self, other):
        """Row-major outer product: out[k * n_other + l] = self[k] * other[l], of dim n_self * n_other."""
        return self._nary((other,), "TensorProd")

    def keops_tensordot(self, other, dimfa, dimfb, contfa, contfb, *args):
        """numpy.tensordot of self (row-major shape dimfa) and other (shape dimfb), contracting the axes contfa of
        self with the axes contfb of other; an optional last argument perm permutes the axes of the result as KeOps
        does: axis k of the numpy.tensordot result moves to position perm[k]."""
        b = self._lift(other)
        lists = [_int_list(v, "TensorDot", name) for v, name in zip(
            (dimfa, dimfb, contfa, contfb), ("dimfa", "dimfb", "contfa", "contfb"))]
        dimfa, dimfb, contfa, contfb = lists
        if len(args) > 1:
            raise TypeError(
                f"operation TensorDot: at most one permutation after contfb, got {len(args)} more arguments"
            )
        for dims, lt, name in ((dimfa, self._operand(), "dimfa"), (dimfb, b, "dimfb")):
            if not dims or any(d < 1 for d in dims) or math.prod(dims) != lt.ndim:
                raise ValueError(
                    f"operation TensorDot: {name} = {dims} must be positive sizes whose product is the operand's "
                    f"dim {lt.ndim}"
                )
        if len(contfa) != len(contfb):
            raise ValueError(f"operation TensorDot: contfa = {contfa} and contfb = {contfb} have different lengths")
        for axes, dims, name in ((contfa, dimfa, "contfa"), (contfb, dimfb, "contfb")):
            if len(set(axes)) != len(axes) or any(not 0 <= k < len(dims) for k in axes):
                raise ValueError(f"operation TensorDot: {name} = {axes} must be distinct axes of a shape {dims}")
        for ka, kb in zip(contfa, contfb):
            if dimfa[ka] != dimfb[kb]:
                raise ValueError(
                    f"operation TensorDot: contracted axes have sizes {dimfa[ka]} and {dimfb[kb]} (axis {ka} of "
                    f"dimfa = {dimfa}, axis {kb} of dimfb = {dimfb})"
                )
        kept = [d for k, d in enumerate(dimfa) if k not in contfa] + [d for k, d in enumerate(dimfb) if k not in contfb]
        params = [dimfa, dimfb, contfa, contfb]
        if args:
            perm = _int_list(args[0], "TensorDot", "permutation")
            if sorted(perm) != list(range(len(kept))):
                raise ValueError(
                    f"operation TensorDot: the permutation {perm} must reorder the {len(kept)} axes of the result"
                )
            params.append(perm)
        text = ["[" + ",".join(map(str, p)) + "]" for p in params]
        return self._nary((b,), "TensorDot", params=text)

    def keops_kron(self, other, dimfself, dimfother):
        """Kronecker product, as numpy.kron, of self (row-major shape dimfself) and other (shape dimfother)."""
        b = self._lift(other)
        dimfself = _int_list(dimfself, "Kron", "dimfself")
        dimfother = _int_list(dimfother, "Kron", "dimfother")
        if len(dimfself) != len(dimfother):
            raise ValueError(f"operation Kron: the shapes {dimfself} and {dimfother} must have the same number of axes")
        for dims, lt in ((dimfself, self._operand()), (dimfother, b)):
            if not dims or any(d < 1 for d in dims) or math.prod(dims) != lt.ndim:
                raise ValueError(f"operation Kron: the shape {dims} does not match the operand's dim {lt.ndim}")
        text = ["[" + ",".join(map(str, p)) + "]" for p in (dimfself, dimfother)]
        return self._nary((b,), "Kron", params=text)

    def softdtw_sqdist(self, other, gamma):
        """Soft-DTW discrepancy between the series self and other, with squared differences as costs and the
        smoothing parameter gamma (a positive number or a LazyTensor of dim 1)."""
        g = self._lift(gamma)
        if g.ndim != 1:
            raise ValueError(f"operation SoftDTW_SqDist: gamma must have dimension 1, got {g.ndim}")
        return self._nary((other, g), "SoftDTW_SqDist")

    # Real to complex: the results are ComplexLazyTensors, of complex dim D (real dim 2D).

    def real2complex(self):
        """The real vector x as a ComplexLazyTensor x + 0j, of the same (complex) dim."""
        return self._to_complex("Real2Complex")

    def imag2complex(self):
        """The real vector x as the purely imaginary ComplexLazyTensor 1j * x, of the same (complex) dim."""
        return self._to_complex("Imag2Complex")

    def exp1j(self):
        """The ComplexLazyTensor exp(1j * x) = cos(x) + 1j sin(x) of the real vector x, of the same dim."""
        return self._to_complex("ComplexExp1j")

    def _to_complex(self, op):
        from .complex_lazy_tensor import complex_lazy_tensor_class

        res = self._unary(op)
        return complex_lazy_tensor_class(type(self))._from_lazy_tensor(res)

    # ---------------------------------------------------------------- KeOps's extension API (custom operations)
    # unary / binary / ternary apply an operation of the engine's table by name; the engine checks the arguments
    # and gives the result's dim (dimres, when given, must agree with it).

    def lt_constructor(self, x=None, axis=None):
        """A LazyTensor of this framework (and of this kind, real or complex) made from x."""
        return type(self)(x, axis)

    def _custom(self, method, operation, parts, infix=False, dimres=None, is_complex=None):
        """The LazyTensor `operation(parts...)` (`(a op b)` if infix): parts are LazyTensors (the operands) and
        integers or lists of integers (the operation's parameters), in the order the operation takes them."""
        where = f"LazyTensor.{method}({operation!r})"
        _check_operation_name(where, operation, infix)
        self._check_op(operation)
        operands = [p for p in parts if isinstance(p, GenericLazyTensor)]
        res = operands[0]
        for o in operands[1:]:
            res = res._merged(o)
        if res is operands[0]:
            res = _copy(res)
        texts = [p._template if isinstance(p, GenericLazyTensor) else p for p in parts]
        res._template = f"({texts[0]} {operation} {texts[1]})" if infix else f"{operation}({','.join(texts)})"
        res.axis = None
        try:
            res.ndim = load_engine().formula_dim(res.formula, [])
        except ValueError as e:
            raise ValueError(f"{where}: {_ENGINE_COLUMN.sub('', str(e))}") from None
        if dimres is not None and int_argument(dimres, f"{where}: dimres") != res.ndim:
            raise ValueError(f"{where}: dimres={dimres} but the operation gives dimension {res.ndim}")
        if is_complex is None:
            is_complex = any(o.is_complex for o in operands)
        return _as_kind(res, bool(is_complex), where)

    def _custom_operand(self, other):
        """other as an operand of unary / binary / ternary: LazyTensors as they are, numbers and arrays wrapped
        (complex ones as ComplexLazyTensor)."""
        if isinstance(other, GenericLazyTensor):
            if other.tools is not self.tools:
                raise TypeError(
                    f"cannot combine a pykeops.{self.tools.name} LazyTensor with a pykeops.{other.tools.name} one"
                )
            return other._operand()
        return (getattr(self, "_real_class", None) or type(self))(other)

    def _custom_parameter(self, where, value):
        """An opt_arg: a LazyTensor (an operand), an integer or a list of integers (printed in the formula)."""
        if isinstance(value, GenericLazyTensor):
            return self._custom_operand(value)
        if as_int(value) is not None:
            return str(as_int(value))
        if isinstance(value, (list, tuple)) and value and all(as_int(v) is not None for v in value):
            return "[" + ",".join(str(as_int(v)) for v in value) + "]"
        raise TypeError(f"{where}: an optional argument is a LazyTensor, an integer or a list of integers, got "
                        f"{value!r} (a real number is a parameter: pass a LazyTensor such as Pm(...))")

    def unary(self, operation, dimres=None, opt_arg=None, opt_arg2=None, is_complex=None):
        """operation(self[, opt_arg[, opt_arg2]]) for an operation name of the engine's table, e.g. x.unary("Exp"),
        x.unary("Pow", opt_arg=3), x.unary("Extract", opt_arg=1, opt_arg2=2).

        dimres: the expected output dimension (checked against the operation's); opt_arg / opt_arg2: integers,
        lists of integers or LazyTensors; is_complex: whether the result is a ComplexLazyTensor (default: as self).
        """
        where = f"LazyTensor.unary({operation!r})"
        if opt_arg2 is not None and opt_arg is None:
            raise ValueError(f"{where}: opt_arg2 is given without opt_arg")
        parts = [self._operand()] + [self._custom_parameter(where, a) for a in (opt_arg, opt_arg2) if a is not None]
        return self._custom("unary", operation, parts, dimres=dimres,
                            is_complex=self.is_complex if is_complex is None else is_complex)

    def binary(self, other, operation, is_operator=False, dimres=None, dimcheck="sameor1", opt_arg=None,
               opt_pos="last", rversion=False, is_complex=None):
        """operation(self, other) for an operation name of the engine's table (`(self op other)` for an infix
        operator "+", "-", "*", "/", "|" with is_operator=True), e.g. x.binary(y, "SqDist", dimcheck="same").

        dimcheck: "same", "sameor1" (equal dims or one of them 1), "vecand1" (other of dim 1) or None, checked before
        the engine's own rule; opt_arg: an extra argument (integer, list of integers or LazyTensor) placed last or,
        with opt_pos="middle", between the operands; rversion: swap the operands; dimres, is_complex: as in unary.
        """
        where = f"LazyTensor.binary({operation!r})"
        a, b = self._operand(), self._custom_operand(other)
        _check_dims(where, dimcheck, (a.ndim, b.ndim))
        if rversion:
            a, b = b, a
        if is_operator:
            if opt_arg is not None:
                raise ValueError(f"{where}: an infix operator takes no opt_arg")
            return a._custom("binary", operation, [a, b], infix=True, dimres=dimres, is_complex=is_complex)
        if opt_pos not in ("last", "middle"):
            raise ValueError(f"{where}: opt_pos must be 'last' or 'middle', got {opt_pos!r}")
        parts = [a, b]
        if opt_arg is not None:
            parts.insert(2 if opt_pos == "last" else 1, self._custom_parameter(where, opt_arg))
        return a._custom("binary", operation, parts, dimres=dimres, is_complex=is_complex)

    def ternary(self, other1, other2, operation, dimres=None, dimcheck="sameor1", opt_arg=None):
        """operation(self, other1, other2[, opt_arg]) for an operation name of the engine's table, e.g.
        x.ternary(a, b, "Clamp"); dimcheck "same", "sameor1" or None; dimres, opt_arg as in binary."""
        where = f"LazyTensor.ternary({operation!r})"
        parts = [self._operand(), self._custom_operand(other1), self._custom_operand(other2)]
        _check_dims(where, dimcheck, [p.ndim for p in parts], ternary=True)
        if opt_arg is not None:
            parts.append(self._custom_parameter(where, opt_arg))
        return self._custom("ternary", operation, parts, dimres=dimres)

    def reduction(self, reduction_op, other=None, opt_arg=None, axis=None, dim=None, call=True, is_complex=None,
                  **kwargs):
        """The Genred reduction reduction_op ("Sum", "LogSumExp", "ArgKMin", ...) over axis (or dim): other is its
        weights (formula2), opt_arg its K; call=False returns a callable reduced LazyTensor; other kwargs as for
        sum(). The method the named reductions (sum, logsumexp, argKmin, ...) are shorthands for."""
        if is_complex is not None and bool(is_complex) != self.is_complex:
            raise ValueError(f"reduction: is_complex={is_complex} but this LazyTensor is "
                             f"{'complex' if self.is_complex else 'real'}")
        res = self._reduce(reduction_op, axis if dim is None else dim, call=call, opt_arg=opt_arg, weight=other,
                           **kwargs)
        return self._complex_result(res) if self.is_complex else res

    def __min__(self, **kwargs):
        """min(**kwargs), as KeOps spells it."""
        return self.min(**kwargs)

    def __max__(self, **kwargs):
        """max(**kwargs), as KeOps spells it."""
        return self.max(**kwargs)

    def factorize(self, other):
        """self, with its subformula other computed once (Factorize: always the case in this engine)."""
        return self._binary(other, "Factorize")

    def auto_factorize(self):
        """self, with repeated subformulas computed once (AutoFactorize: always the case in this engine)."""
        return self._unary("AutoFactorize")

    # ----------------------------------------------------------------------------------------- reductions
    # A reduction's axis (or dim) is nbatchdims (reduce over i: output (..., N, D) indexed by j) or
    # nbatchdims + 1 (reduce over j: output (..., M, D)); -1 and nbatchdims + 2 name the inner axis, where
    # sum, min, max, argmin and argmax are vector operations instead.

    def sum(self, axis=-1, dim=None, **kwargs):
        """Inner vector sum (axis -1, the default; other kwargs ignored) or Sum reduction (axis 0 or 1)."""
        res = self._vector_op_if_last_axis("Sum", axis, dim)
        return res if res is not None else self._reduce("Sum", axis if dim is None else dim, **kwargs)

    def sum_reduction(self, axis=None, dim=None, **kwargs):
        """Sum reduction: (..., M, D)."""
        return self._reduce("Sum", axis if dim is None else dim, **kwargs)

    def logsumexp(self, axis=None, dim=None, weight=None, **kwargs):
        """log sum exp(self) of a scalar formula, (..., M, 1); with weight (a LazyTensor, also as other=):
        log sum exp(self) * weight, (..., M, Dw), computed as max + log(sum exp(self - max) * weight)."""
        if "other" in kwargs:
            if weight is not None:
                raise TypeError("logsumexp takes its weight as weight= or other=, not both")
            weight = kwargs.pop("other")
        return self._reduce("LogSumExp", axis if dim is None else dim, weight=weight, **kwargs)

    logsumexp_reduction = logsumexp

    def sumsoftmaxweight(self, weight, axis=None, dim=None, **kwargs):
        """sum softmax(self) * weight: sum exp(self) * weight / sum exp(self), (..., M, Dw)."""
        if weight is None:
            raise ValueError("sumsoftmaxweight needs a weight (a LazyTensor)")
        return self._reduce("SumSoftMaxWeight", axis if dim is None else dim, weight=weight, **kwargs)

    sumsoftmaxweight_reduction = sumsoftmaxweight

    def min_reduction(self, axis=None, dim=None, **kwargs):
        """Min reduction, component-wise: (..., M, D)."""
        return self._reduce("Min", axis if dim is None else dim, **kwargs)

    def max_reduction(self, axis=None, dim=None, **kwargs):
        """Max reduction, component-wise: (..., M, D)."""
        return self._reduce("Max", axis if dim is None else dim, **kwargs)

    def argmin_reduction(self, axis=None, dim=None, **kwargs):
        """ArgMin reduction: int64 (..., M, D), the smallest index among ties."""
        return self._reduce("ArgMin", axis if dim is None else dim, **kwargs)

    def argmax_reduction(self, axis=None, dim=None, **kwargs):
        """ArgMax reduction: int64 (..., M, D), the smallest index among ties."""
        return self._reduce("ArgMax", axis if dim is None else dim, **kwargs)

    def min_argmin(self, axis=None, dim=None, **kwargs):
        """(Min, ArgMin) reductions in one pass: a (values, int64 indices) pair."""
        return self._reduce("Min_ArgMin", axis if dim is None else dim, **kwargs)

    min_argmin_reduction = min_argmin

    def max_argmax(self, axis=None, dim=None, **kwargs):
        """(Max, ArgMax) reductions in one pass: a (values, int64 indices) pair."""
        return self._reduce("Max_ArgMax", axis if dim is None else dim, **kwargs)

    max_argmax_reduction = max_argmax

    def Kmin(self, K, axis=None, dim=None, **kwargs):
        """The K smallest values, ascending: (..., M, K) for a scalar formula, else (..., M, K, D)."""
        return self._reduce("KMin", axis if dim is None else dim, opt_arg=K, **kwargs)

    Kmin_reduction = Kmin

    def argKmin(self, K, axis=None, dim=None, **kwargs):
        """Indices (int64) of the K smallest values, by ascending value: (..., M, K) or (..., M, K, D)."""
        return self._reduce("ArgKMin", axis if dim is None else dim, opt_arg=K, **kwargs)

    argKmin_reduction = argKmin

    def Kmin_argKmin(self, K, axis=None, dim=None, **kwargs):
        """(Kmin, argKmin) in one pass: a (values, int64 indices) pair."""
        return self._reduce("KMin_ArgKMin", axis if dim is None else dim, opt_arg=K, **kwargs)

    Kmin_argKmin_reduction = Kmin_argKmin

    def _reduction_axis(self, axis, op):
        """The Genred axis (0: over i, 1: over j) of a user axis nbatchdims or nbatchdims + 1."""
        nb = self.nbatchdims
        axis_int = as_int(axis)
        if axis_int is None or axis_int - nb not in (0, 1):
            batch = f" (this LazyTensor has {nb} batch dims)" if nb else ""
            raise (TypeError if axis_int is None and axis is not None else ValueError)(
                f"a {op} reduction needs axis (or dim) {nb} (reduce over i) or {nb + 1} (over j){batch}, got {axis!r}"
            )
        return axis_int - nb

    def _check_symbolic_numbering(self):
        indices = [s[0] for s in self.symbolic_variables]
        if indices != list(range(len(indices))):
            raise ValueError(f"symbolic variables must be numbered 0, 1, 2, ... without gaps, got indices {indices}")

    def _default_call_options(self):
        """Call options that come from the LazyTensor's attributes (ranges, backend), as a new dict."""
        options = {}
        if self.ranges is not None:
            options["ranges"] = self.ranges
        if self.backend is not None:
            options["backend"] = self.backend
        return options

    def _reduce(self, op, axis, call=True, opt_arg=None, weight=None, **kwargs):
        """Reduce over i (axis nbatchdims, output indexed by j) or j (axis nbatchdims + 1, output indexed by i).

        op is a Genred reduction_op; weight (LogSumExp, SumSoftMaxWeight) becomes Genred's formula2. Runs at
        once when the formula has no symbolic variable and call is True; otherwise returns a reduced
        LazyTensor to call with the symbolic variables' values.
        """
        self._operand()
        axis = self._reduction_axis(axis, op)
        unknown = sorted(set(kwargs) - set(COMPILE_OPTIONS) - set(CALL_OPTIONS)) if kwargs else None
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) for a {op} reduction: {', '.join(unknown)}")
        lt = self
        if weight is not None:
            w = self._lift(weight)
            lt = self._merged(w)
            lt._template, lt.ndim, lt._template2 = self._template, self.ndim, w._template
        if lt.symbolic_variables:
            lt._check_symbolic_numbering()
        compile_options = {k: v for k, v in kwargs.items() if k in COMPILE_OPTIONS} if kwargs else {}
        genred = self._genred_of(lt, op, axis, opt_arg, compile_options)
        call_options = lt._default_call_options()
        if kwargs:
            call_options.update((k, v) for k, v in kwargs.items() if k in CALL_OPTIONS)
        res = _copy(lt)
        res._genred, res._call_options = genred, call_options
        res.reduction_op, res.axis = op, axis
        return res() if call and not res.symbolic_variables else res

    def _genred_of(self, lt, op, axis, opt_arg, compile_options):
        """The Genred of reduction op of lt, shared by every reduction of the same formula, aliases and options
        (the options' checks, the formula's signature and kernels are then done once)."""
        names = lt._data_names()
        formula, formula2, aliases = lt._printed(lt._template, names), lt._printed(lt._template2, names), lt._aliases(names)

        if self.tools.compiled is not None and self.tools.compiled.tracing():
            # (traced: the Genred is built, once, by the custom op's implementations, out of the trace)
            return self.tools.compiled.TracedGenred(_traced_spec(formula, aliases, op, axis, opt_arg, formula2,
                                                                 compile_options))

        def build():
            return self.Genred(formula, aliases, reduction_op=op, axis=axis, opt_arg=opt_arg, formula2=formula2,
                               **compile_options)

        if opt_arg is None and not compile_options:  # (the common case, its key at once)
            return REDUCTIONS.get((self.Genred, formula, tuple(aliases), formula2, op, axis, type(None), None, ()), build)
        if not all(type(v) in _PLAIN_OPTIONS for v in (opt_arg, *compile_options.values())):
            return build()  # (e.g. K given as a tensor: checked and converted by Genred, not a key)
        options = tuple(sorted((k, type(v), v) for k, v in compile_options.items()))
        return REDUCTIONS.get((self.Genred, formula, tuple(aliases), formula2, op, axis, type(opt_arg), opt_arg,
                               options), build)

    def __call__(self, *args, **kwargs):
        """Run a reduced LazyTensor: args are the symbolic variables' values, in index order."""
        if self._genred is None:
            raise TypeError("only reduced LazyTensors (e.g. from .sum(dim=1, call=False)) can be called")
        if not self.symbolic_variables and not args:  # (a reduction run at once: its arrays only)
            return self._genred(*self._values(), **(self._call_options if not kwargs else {**self._call_options, **kwargs}))
        free = [s for s in self.symbolic_variables if s[0] not in self._fixed_args]
        if len(args) != len(free):
            names = ", ".join(f"Var{s}" for s in free) or "none"
            raise ValueError(
                f"this reduction takes one argument per symbolic variable ({names}), got {len(args)} arguments"
            )
        given = iter(args)
        args = [self._fixed_args[s[0]] if s[0] in self._fixed_args else next(given) for s in self.symbolic_variables]
        return self._genred(*args, *self._values(args), **{**self._call_options, **kwargs})

    # ------------------------------------------------------------------------------- linear algebra (K @ v)

    def t(self):
        """Transpose: i-variables become j-variables and back; ni, nj and the ranges are swapped."""
        self._operand()
        swap = (1, 0, 2)
        keys, data = {}, []
        for v in self._data:
            key = f"{v.key.rsplit('_', 1)[0]}_{swap[v.cat]}"
            keys[v.key] = key
            data.append(DataVariable(key, v.value, v.dim, swap[v.cat]))
        res = _copy(self)
        res._data = tuple(data)
        template = _PLACEHOLDER.sub(lambda m: "@" + keys[m.group(1)], self._template)
        res._template = _SYMBOLIC_VAR.sub(lambda m: f"Var({m.group(1)},{m.group(2)},{swap[int(m.group(3))]})", template)
        res.symbolic_variables = tuple((ind, dim, swap[cat]) for ind, dim, cat in self.symbolic_variables)
        res.ni, res.nj = self.nj, self.ni
        res.axis = None if self.axis is None else swap[self.axis]
        res.ranges = swap_axes(self.ranges)
        return res

    T = property(t, doc="Transpose (i and j swapped), the same as t().")

    def __matmul__(self, v, **kwargs):
        """K @ v = sum over j of K_ij v_j for K of inner dim 1: v (N,) gives (M,), v (..., N, E) gives (..., M, E).

        kwargs are those of the Sum reduction (backend, out, sum_scheme, ...).
        """
        if self._operand().ndim != 1:
            raise ValueError(f"K @ v needs a LazyTensor K of inner dimension 1 (a matrix), got dimension {self.ndim}")
        tools = self.tools
        if not tools.is_array(v):
            raise TypeError(f"K @ v needs v to be a {tools.array_type.__name__} of this framework, got a {type_name(v)}")
        if len(v.shape) == 0:
            raise ValueError("K @ v needs v of shape (N,) or (..., N, E), got a 0-d array")
        vector = len(v.shape) == 1
        out = kwargs.get("out")
        if vector and out is not None and tools.is_array(out) and len(out.shape) == 1:
            kwargs["out"] = out.reshape(out.shape[0], 1)
        v_j = type(self)(v[None, :, None] if vector else v[..., None, :, :])
        prod = self * v_j
        res = prod._reduce("Sum", prod.nbatchdims + 1, **kwargs)
        if not vector or not tools.is_array(res):
            return res
        return out if out is not None and len(out.shape) == 1 else res.reshape(-1)

    def matvec(self, v):
        """K @ v, for scipy.sparse.linalg.aslinearoperator(K)."""
        return self @ v

    def rmatvec(self, v):
        """K.T @ v, for scipy.sparse.linalg.aslinearoperator(K)."""
        return self.T @ v

    def solve(self, other, var=None, call=True, **kwargs):
        """a such that (alpha Id + K) a = other, by conjugate gradient (KernelSolve), K = self summed against a.

        other: the right-hand side b, an array (an i-variable, (M, D) or (..., M, D)) or a Vi / Vj variable.
        var None: a is a new symbolic variable of the other category, and K(a) = (self * a).sum over it;
        otherwise var is a symbolic variable (Vi(ind, D) / Vj(ind, D)) in which self is linear and
        K(a) = self summed over the category of var. Compile options as for reductions; call options
        backend, device_id, ranges, alpha (1e-10), eps (1e-6). K should be symmetric positive definite.
        """
        self._operand()
        unknown = sorted(set(kwargs) - set(COMPILE_OPTIONS) - set(SOLVE_CALL_OPTIONS))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) for solve: {', '.join(unknown)}")
        tools = self.tools
        if isinstance(other, GenericLazyTensor):
            rhs = other._operand()
            data = rhs._data[0] if len(rhs._data) == 1 else None
            if data is None or rhs._template != "@" + data.key or rhs.axis not in (0, 1) or rhs.symbolic_variables:
                raise ValueError("the right-hand side of solve must be an array or a plain Vi / Vj variable holding one")
            b, b_axis = data.value, rhs.axis
        elif tools.is_array(other):
            if len(other.shape) < 2:
                raise ValueError(f"the right-hand side of solve must be an (M, D) array, got shape {tuple(other.shape)}")
            b, b_axis = other, 0
        else:
            raise TypeError(f"the right-hand side of solve must be an array or a LazyTensor, got a {type_name(other)}")
        if var is None:
            var = type(self)((len(self.symbolic_variables), b.shape[-1], 1 - b_axis))
            lt = self * var
        else:
            sym = var.symbolic_variables if isinstance(var, GenericLazyTensor) else ()
            if len(sym) != 1 or var._data or var._template != "Var({},{},{})".format(*sym[0]) or sym[0][2] == 2:
                raise ValueError("var must be a symbolic Vi or Vj variable, such as Vj(1, D)")
            if sym[0] not in self.symbolic_variables:
                raise ValueError(f"solve: the formula does not contain var Var{sym[0]}")
            if sym[0][1] != b.shape[-1]:
                raise ValueError(f"solve: var has dim {sym[0][1]} but the right-hand side has dim {b.shape[-1]}")
            lt = self
        ind, dim, cat = var.symbolic_variables[0]
        lt._check_symbolic_numbering()
        compile_options = {k: v for k, v in kwargs.items() if k in COMPILE_OPTIONS}
        axis = 1 - b_axis  # the output of K is indexed like b
        res = _copy(lt)
        if tools.compiled is not None and tools.compiled.tracing():
            res._genred = tools.compiled.TracedSolve(_traced_spec(lt.formula, lt._aliases(), "Sum", axis, None, None,
                                                                  compile_options), ind)
        else:
            res._genred = self.KernelSolve(lt.formula, lt._aliases(), f"Var({ind},{dim},{cat})", axis=axis,
                                           **compile_options)
        res._call_options = {**lt._default_call_options(), **{k: v for k, v in kwargs.items() if k in SOLVE_CALL_OPTIONS}}
        res._fixed_args = {ind: b}
        res.reduction_op, res.axis = "Solve", axis
        return res() if call and len(res.symbolic_variables) == 1 else res


def variable_helpers(lazy_tensor_class):
    """Vi, Vj, Pm, Var for one framework: Vi(array) wraps data, Vi(ind, dim) declares the symbolic Var(ind, dim, 0);
    Var(x_or_ind, dim=None, cat=None) is LazyTensor(x, axis=cat) for data, the symbolic Var(ind, dim, cat) otherwise."""

    def helper(cat, name):
        def make(x_or_ind, dim=None):
            return lazy_tensor_class(x_or_ind, axis=cat) if dim is None else lazy_tensor_class((x_or_ind, dim, cat))

        make.__doc__ = (
            f"LazyTensor of category {cat} ({('indexed by i', 'indexed by j', 'a parameter')[cat]}): "
            f"{name}(array) wraps an array ({('(M, D)', '(N, D)', '(D,)')[cat]}, with optional leading batch dims), "
            f"{name}(ind, dim) is the symbolic variable Var(ind, dim, {cat}) whose array is given when the reduced "
            f"result is called. Example: (Vi(x) - Vj(y)).sqnorm2().sum(dim=1) is sum_j |x_i - y_j|^2."
        )
        return make

    def Var(x_or_ind, dim=None, cat=None):
        return lazy_tensor_class(x_or_ind, axis=cat) if dim is None else lazy_tensor_class((x_or_ind, dim, cat))

    Var.__doc__ = ("LazyTensor(x_or_ind, axis=cat) when dim is None (data), else the symbolic variable "
                   "Var(x_or_ind, dim, cat) given at call time.")
    helpers = tuple(helper(cat, name) for cat, name in enumerate(CATEGORY_NAMES)) + (Var,)
    for make, name in zip(helpers, CATEGORY_NAMES + ("Var",)):
        make.__name__ = make.__qualname__ = name
        make.__module__ = lazy_tensor_class.__module__
    return helpers
