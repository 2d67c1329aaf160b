"""GenericLazyTensor: builds KeOps formula strings from array operations; reductions run them through Genred."""

import copy
import numbers
import re
from collections import namedtuple

from .genred import CATEGORY_NAMES, is_int
from .tools import type_name

# A data variable captured by a LazyTensor: an array, or a list of floats that becomes an array once the
# dtype is known. key = "<id(value)>_<cat>" is unique while value is alive (the LazyTensor keeps it alive), so
# the same array used twice with one category is one variable, and Vi(x) - Vj(x) makes two. Formulas are
# kept as templates where a data variable stands as "@key"; positions are only assigned when printing.
DataVariable = namedtuple("DataVariable", "key value dim cat")
_PLACEHOLDER = re.compile(r"@(\d+_\d)")

# Reduction keyword arguments: those of Genred(...) and those of Genred.__call__(...).
COMPILE_OPTIONS = ("dtype_acc", "use_double_acc", "sum_scheme", "enable_chunks", "rec_multVar_highdim", "use_fast_math")
CALL_OPTIONS = ("backend", "device_id", "ranges", "out")


def _is_number(x, value):
    return isinstance(x, numbers.Number) and x == value


def _agree(a, b, what):
    """Merge one attribute of two operands: None means 'any'."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    raise ValueError(f"cannot combine LazyTensors with different {what}: {a} and {b}")


def _is_complex(x):
    return isinstance(x, complex) or (isinstance(x, list) and any(isinstance(v, complex) for v in x))


class GenericLazyTensor:
    """Symbolic (M, N, D) array: a KeOps formula plus the arrays it reads, reduced to a real array on demand.

    Subclasses set `tools` (the framework's ArrayTools) and `Genred` (the framework's Genred class).
    """

    tools = None
    Genred = None

    __array_ufunc__ = None  # makes numpy defer `array op LazyTensor` to our reflected operators

    def __init__(self, x=None, axis=None, is_complex=False):
        self._template = None  # the formula, with "@key" standing for each data variable
        self._data = ()  # DataVariable tuple, in position order
        self.symbolic_variables = ()  # sorted (ind, dim, cat) tuples, given at call time
        self.ndim = None  # inner dimension D
        self.ni = self.nj = None  # row counts of the i- and j-variables, None when there is none
        self.axis = None  # category of a plain variable; reduction axis of a reduced LazyTensor
        self.reduction_op = None
        self._dtype = self._device = None  # from the arrays; None while there is none
        self._genred = None  # set on reduced LazyTensors, which are callable
        self._call_options = {}
        if is_complex or _is_complex(x):
            raise NotImplementedError("complex LazyTensors are not supported yet")
        if x is None:
            return
        if isinstance(x, tuple):
            self._init_symbolic(x, axis)
        elif isinstance(x, numbers.Integral):
            self._template, self.ndim = f"IntCst({int(x)})", 1  # compile-time constant; axis is ignored
        elif isinstance(x, (numbers.Real, list)):
            self._init_values([x] if isinstance(x, numbers.Real) else x, axis)
        elif self.tools.is_array(x):
            self._init_array(x, axis)
        else:
            raise TypeError(
                f"pykeops.{self.tools.name}.LazyTensor cannot wrap a {type_name(x)}: expected an array of this "
                "framework, a number, a list of numbers or an (ind, dim, cat) tuple"
            )

    # ----------------------------------------------------------------------------------------- construction

    def _init_symbolic(self, x, axis):
        if axis is not None:
            raise ValueError("a symbolic variable (ind, dim, cat) takes no axis")
        if len(x) != 3 or not all(is_int(v) for v in x):
            raise ValueError(f"a symbolic variable is an (ind, dim, cat) tuple of 3 ints, got {x!r}")
        ind, dim, cat = map(int, x)
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
        elif len(shape) == 3:
            if axis is not None:
                raise ValueError("a 3-D array carries its category in its shape: axis must be None")
            if shape[0] == 1 and shape[1] == 1:
                value, cat = x[0, 0], 2
            elif shape[1] == 1:
                value, cat = x[:, 0, :], 0
            elif shape[0] == 1:
                value, cat = x[0], 1
            else:
                raise ValueError(f"a 3-D array must have shape (M, 1, D), (1, N, D) or (1, 1, D), got {shape}")
        else:
            raise NotImplementedError(f"batch dimensions are not supported yet (array of shape {shape})")
        if shape and shape[-1] == 0:
            raise ValueError(f"the inner dimension D of a LazyTensor must be at least 1, got shape {shape}")
        self._set_variable(value, 1 if not shape else shape[-1], cat)
        self.axis = cat
        if cat == 0:
            self.ni = value.shape[0]
        elif cat == 1:
            self.nj = value.shape[0]

    def _set_variable(self, value, dim, cat):
        key = f"{id(value)}_{cat}"
        self._data = (DataVariable(key, value, dim, cat),)
        self._template, self.ndim = "@" + key, dim

    # ------------------------------------------------------------------------------------------- attributes

    def _offset(self):
        """Data variables are numbered after the symbolic ones."""
        return self.symbolic_variables[-1][0] + 1 if self.symbolic_variables else 0

    def _data_names(self):
        offset = self._offset()
        return {v.key: f"Var({offset + k},{v.dim},{v.cat})" for k, v in enumerate(self._data)}

    @property
    def formula(self):
        """The KeOps formula, variables numbered as in self.variables (after the symbolic ones)."""
        if self._template is None:
            return None
        names = self._data_names()
        return _PLACEHOLDER.sub(lambda m: names[m.group(1)], self._template)

    def _aliases(self):
        """One "Var(pos,dim,cat)" per argument position, as Genred receives them."""
        return [f"Var({i},{d},{c})" for i, d, c in self.symbolic_variables] + list(self._data_names().values())

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
        return tuple(self._values())

    @property
    def dtype(self):
        """dtype name of the arrays ("float32"/"float64"), None while the LazyTensor holds none."""
        return self._dtype

    @property
    def _shape(self):
        return (1 if self.ni is None else self.ni, 1 if self.nj is None else self.nj, self.ndim)

    @property
    def shape(self):
        return self._shape if self.ndim != 1 else self._shape[:2]

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
        if isinstance(other, GenericLazyTensor):
            if other.tools is not self.tools:
                raise TypeError(
                    f"cannot combine a pykeops.{self.tools.name} LazyTensor with a pykeops.{other.tools.name} one"
                )
            return other._operand()
        return type(self)(other)

    def _merged(self, other):
        """Copy of self that also holds other's variables; sizes, dtype and device must agree."""
        res = copy.copy(self)
        res.ni = _agree(self.ni, other.ni, "numbers of i-rows (Vi variables)")
        res.nj = _agree(self.nj, other.nj, "numbers of j-rows (Vj variables)")
        res._dtype = _agree(self._dtype, other._dtype, "dtypes")
        res._device = _agree(self._device, other._device, "devices")
        keys = {v.key for v in self._data}
        res._data = self._data + tuple(v for v in other._data if v.key not in keys)
        signatures = {}
        for ind, dim, cat in self.symbolic_variables + other.symbolic_variables:
            if signatures.setdefault(ind, (dim, cat)) != (dim, cat):
                raise ValueError(
                    f"symbolic variable {ind} is used as Var({ind},{dim},{cat}) and as Var({ind},{','.join(map(str, signatures[ind]))})"
                )
        res.symbolic_variables = tuple((ind, *signatures[ind]) for ind in sorted(signatures))
        res.axis = None
        return res

    def _unary(self, op, ndim=None, params=()):
        """op(self[, params...]): output dim is self's unless ndim says otherwise."""
        res = copy.copy(self._operand())
        res._template = f"{op}({self._template}{''.join(f',{p}' for p in params)})"
        res.ndim, res.axis = self.ndim if ndim is None else ndim, None
        return res

    def _binary(self, other, op, infix=False, dims="sameor1", ndim=None, reflected=False):
        """`(a op b)` if infix else `op(a,b)`, with a = self (or other when reflected).

        dims: "sameor1" = element-wise broadcasting (output dim max), "same" = dims must be equal.
        ndim: output dim when it does not follow from the inputs' dims.
        """
        a, b = self._operand(), self._lift(other)
        if reflected:
            a, b = b, a
        if a.ndim != b.ndim and (dims == "same" or 1 not in (a.ndim, b.ndim)):
            rule = "equal" if dims == "same" else "equal, or one of them 1"
            raise ValueError(f"operation {op}: incompatible inner dimensions {a.ndim} and {b.ndim} (they must be {rule})")
        res = a._merged(b)
        res._template = f"({a._template} {op} {b._template})" if infix else f"{op}({a._template},{b._template})"
        res.ndim = max(a.ndim, b.ndim) if ndim is None else ndim
        return res

    def _zero(self):
        """Zero vector with self's variables, so that the sizes M and N still come from them."""
        res = copy.copy(self._operand())
        res._template, res.axis = f"Zero({self.ndim})", None
        return res

    # ------------------------------------------------------------------------------------------ operators

    def __add__(self, other):
        return self._operand() if _is_number(other, 0) else self._binary(other, "+", infix=True)

    def __radd__(self, other):
        return self._operand() if _is_number(other, 0) else self._binary(other, "+", infix=True, reflected=True)

    def __sub__(self, other):
        return self._operand() if _is_number(other, 0) else self._binary(other, "-", infix=True)

    def __rsub__(self, other):
        return -self if _is_number(other, 0) else self._binary(other, "-", infix=True, reflected=True)

    def __mul__(self, other, reflected=False):
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
        return self._operand() if _is_number(other, 1) else self._binary(other, "/", infix=True)

    def __rtruediv__(self, other):
        if _is_number(other, 0):
            return self._zero()
        if _is_number(other, 1):
            return self.inv()
        return self._binary(other, "/", infix=True, reflected=True)

    def __or__(self, other):
        """Scalar product (x | y) of vectors of equal dims."""
        return self._binary(other, "|", infix=True, dims="same", ndim=1)

    def __ror__(self, other):
        return self._binary(other, "|", infix=True, dims="same", ndim=1, reflected=True)

    def __pow__(self, other):
        if isinstance(other, numbers.Real):
            if other == 2:
                return self.square()
            if other == 0.5:
                return self.sqrt()
            if other == -0.5:
                return self.rsqrt()
            if is_int(other):
                return self._unary("Pow", params=(int(other),))
        return self._binary(other, "Powf")  # float exponents become parameters

    def power(self, other):
        return self**other

    def __neg__(self):
        return self._unary("Minus")

    def __abs__(self):
        return self._unary("Abs")

    def abs(self):
        return self._unary("Abs")

    def exp(self):
        return self._unary("Exp")

    def log(self):
        return self._unary("Log")

    def sqrt(self):
        return self._unary("Sqrt")

    def rsqrt(self):
        """1 / sqrt(x), 0 where x = 0."""
        return self._unary("Rsqrt")

    def sin(self):
        return self._unary("Sin")

    def cos(self):
        return self._unary("Cos")

    def square(self):
        return self._unary("Square")

    def inv(self):
        return self._unary("Inv")

    def sqnorm2(self):
        """Squared Euclidean norm over the inner dimension."""
        return self._unary("SqNorm2", ndim=1)

    def sqdist(self, other):
        """Squared Euclidean distance |x - y|^2 over the inner dimension."""
        return self._binary(other, "SqDist", ndim=1)

    # ----------------------------------------------------------------------------------------- reductions

    def sum(self, axis=-1, dim=None, **kwargs):
        """Inner vector sum (axis -1 or 2, the default; other kwargs ignored) or Sum reduction (axis 0 or 1)."""
        axis = axis if dim is None else dim
        if axis in (-1, 2):
            return self._unary("Sum", ndim=1)
        return self._reduce("Sum", axis, **kwargs)

    def sum_reduction(self, axis=None, dim=None, **kwargs):
        return self._reduce("Sum", axis if dim is None else dim, **kwargs)

    def _reduce(self, op, axis, call=True, **kwargs):
        """Reduce over i (axis=0, output indexed by j) or j (axis=1, output indexed by i).

        Runs at once when the formula has no symbolic variable and call is True; otherwise returns a
        reduced LazyTensor to call with the symbolic variables' values.
        """
        self._operand()
        if not (is_int(axis) and axis in (0, 1)):
            raise ValueError(f"a {op} reduction needs axis (or dim) 0 (over i) or 1 (over j), got {axis!r}")
        unknown = sorted(set(kwargs) - set(COMPILE_OPTIONS) - set(CALL_OPTIONS))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) for a {op} reduction: {', '.join(unknown)}")
        indices = [s[0] for s in self.symbolic_variables]
        if indices != list(range(len(indices))):
            raise ValueError(f"symbolic variables must be numbered 0, 1, 2, ... without gaps, got indices {indices}")
        compile_options = {k: v for k, v in kwargs.items() if k in COMPILE_OPTIONS}
        res = copy.copy(self)
        res._genred = self.Genred(self.formula, self._aliases(), reduction_op=op, axis=axis, **compile_options)
        res._call_options = {k: v for k, v in kwargs.items() if k in CALL_OPTIONS}
        res.reduction_op, res.axis = op, axis
        return res() if call and not self.symbolic_variables else res

    def __call__(self, *args, **kwargs):
        """Run a reduced LazyTensor: args are the symbolic variables' values, in index order."""
        if self._genred is None:
            raise TypeError("only reduced LazyTensors (e.g. from .sum(dim=1, call=False)) can be called")
        if len(args) != len(self.symbolic_variables):
            names = ", ".join(f"Var{s}" for s in self.symbolic_variables) or "none"
            raise ValueError(
                f"this reduction takes one argument per symbolic variable ({names}), got {len(args)} arguments"
            )
        return self._genred(*args, *self._values(args), **{**self._call_options, **kwargs})


def variable_helpers(lazy_tensor_class):
    """Vi, Vj, Pm for one framework: Vi(array) wraps data, Vi(ind, dim) declares the symbolic Var(ind, dim, 0)."""

    def helper(cat, name):
        def make(x_or_ind, dim=None):
            return lazy_tensor_class(x_or_ind, axis=cat) if dim is None else lazy_tensor_class((x_or_ind, dim, cat))

        make.__name__ = make.__qualname__ = name
        make.__module__ = lazy_tensor_class.__module__
        make.__doc__ = (
            f"LazyTensor of category {cat}: {name}(array) wraps data, {name}(ind, dim) is the symbolic "
            f"variable Var(ind, dim, {cat}) given at call time."
        )
        return make

    return tuple(helper(cat, name) for cat, name in enumerate(CATEGORY_NAMES))
