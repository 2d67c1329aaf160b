"""ComplexLazyTensor: complex LazyTensors, stored as interleaved (re, im) real pairs, with KeOps' complex operations.

A complex vector of D entries is the real vector (re_0, im_0, ..., re_{D-1}, im_{D-1}) of dim 2D in formulas:
`ndim` is that real dim, `shape` shows D. Arrays are viewed (not copied, when C-contiguous) as such real
arrays on the way in and reduction outputs are viewed back as complex arrays on the way out. The framework
specific views live in pykeops.<framework>.utils (view_as_real_pairs, view_as_complex_pairs, as_complex).
"""

import functools
import importlib
import numbers
import sys

from .engine import load_engine
from .lazy_tensor import GenericLazyTensor, _is_complex, _is_complex_array, _is_number
from .tools import as_int

_COMPLEX_DTYPES = {"float32": "complex64", "float64": "complex128"}
# ComplexLazyTensor class of each framework's LazyTensor class (a module dict, not an attribute of the class: Dynamo
# stops tracing at a read of a class __dict__ it has seen change)
_COMPLEX_CLASSES = {}


def complex_lazy_tensor_class(lazy_tensor_class):
    """The ComplexLazyTensor class of a framework's LazyTensor class (made on first use, then cached on it)."""
    if lazy_tensor_class.is_complex:
        return lazy_tensor_class
    cls = _COMPLEX_CLASSES.get(lazy_tensor_class)
    if cls is None:
        package = lazy_tensor_class.__module__.rsplit(".", 1)[0]  # "pykeops.numpy" for pykeops.numpy.lazy_tensor
        cls = type(
            "ComplexLazyTensor",
            (ComplexGenericLazyTensor,),
            {
                "tools": lazy_tensor_class.tools,
                "Genred": lazy_tensor_class.Genred,
                "_real_class": lazy_tensor_class,
                "_views": importlib.import_module(f"pykeops.{lazy_tensor_class.tools.name}.utils"),
                "__module__": package,
                "__doc__": f"Symbolic wrapper for complex {lazy_tensor_class.tools.name} arrays (see "
                "pykeops.common.complex_lazy_tensor.ComplexGenericLazyTensor).",
            },
        )
        _COMPLEX_CLASSES[lazy_tensor_class] = cls
    return cls


@functools.lru_cache(maxsize=None)
def _valid_on_complex():
    """Names and infix symbols of the operations the engine's table marks meaningful on complex arguments."""
    ops = [op for op in load_engine().operations() if op["on_complex"]]
    return frozenset([op["name"] for op in ops] + [op["infix"] for op in ops if op["infix"]])


def _calling_method():
    """The outermost LazyTensor method on the stack (the one the user called), for error messages."""
    name, frame = None, sys._getframe(2)
    while frame is not None and isinstance(frame.f_locals.get("self"), GenericLazyTensor):
        if not frame.f_code.co_name.startswith("_") or frame.f_code.co_name.startswith("__"):
            name = frame.f_code.co_name
        frame = frame.f_back
    return name


class ComplexGenericLazyTensor(GenericLazyTensor):
    """Complex (M, N, D) symbolic array: + - * / (real operands promoted), real, imag, abs, angle, conj, exp, sum.

    ComplexLazyTensor(x) takes a complex array (the same shape rules as LazyTensor), a Python complex or real
    number, a list of numbers (a complex parameter), a real array (promoted to complex), or a symbolic
    variable (ind, dim, cat) where dim counts complex entries (the formula's Var has dim 2 * dim).
    """

    is_complex = True
    _real_class = None  # the framework's real LazyTensor class
    _views = None  # pykeops.<framework>.utils: the real <-> complex array views

    def __new__(cls, x=None, axis=None):
        return object.__new__(cls)

    def __init__(self, x=None, axis=None):
        if isinstance(x, tuple):
            ints = tuple(as_int(v) for v in x)
            if len(x) == 3 and None not in ints and ints[1] >= 1:
                x = (ints[0], 2 * ints[1], ints[2])  # the interleaved real variable
        elif isinstance(x, numbers.Number):
            x = [x]
        if isinstance(x, list):
            if not x or not all(isinstance(v, numbers.Number) for v in x):
                raise ValueError("a list given to ComplexLazyTensor must be a non-empty list of numbers")
            x = [float(part) for v in x for part in (complex(v).real, complex(v).imag)]
        elif self.tools.is_array(x):
            if not _is_complex_array(self.tools, x):
                self.tools.check_dtype(x, "the array given to ComplexLazyTensor")
                x = self._views.as_complex(x)
            x = self._views.view_as_real_pairs(x)
        GenericLazyTensor.__init__(self, x, axis)

    @classmethod
    def _from_lazy_tensor(cls, lt):
        """The LazyTensor lt (a formula of even dim 2D) seen as a complex one of dim D."""
        res = object.__new__(cls)
        res.__dict__.update(lt.__dict__)
        return res

    def _check_op(self, op):
        """Every operation applied to a complex LazyTensor must be one the operation table marks valid on complex
        (so that a method written for real LazyTensors is never silently wrong on interleaved pairs)."""
        if op not in _valid_on_complex():
            raise TypeError(
                f"LazyTensor.{_calling_method() or op} is not defined for complex LazyTensors: take .real, .imag, abs() "
                "or .angle() first"
            )

    def _to_real(self, op):
        """op(self) as a real LazyTensor (of dim D, half the real dim, for the parts, moduli and arguments)."""
        res = self._unary(op)
        real = object.__new__(self._real_class)
        real.__dict__.update(res.__dict__)
        return real

    # ------------------------------------------------------------------------------------------- attributes

    @property
    def dtype(self):
        """"complex64" or "complex128", None while the LazyTensor holds no array."""
        return _COMPLEX_DTYPES.get(self._dtype)

    @property
    def shape(self):
        """(*batch, M, N, D), D counting complex entries, without D when D is 1 (as LazyTensor.shape)."""
        shape = self._shape
        return shape[:-1] if shape[-1] == 2 else shape[:-1] + (shape[-1] // 2,)

    # ---------------------------------------------------------------------------------------- formula building

    def _lift(self, other):
        """other as a LazyTensor: complex numbers, lists and arrays give complex ones, real ones real ones."""
        if isinstance(other, GenericLazyTensor):
            if other.tools is not self.tools:
                raise TypeError(
                    f"cannot combine a pykeops.{self.tools.name} LazyTensor with a pykeops.{other.tools.name} one"
                )
            return other._operand()
        if _is_complex(other) or _is_complex_array(self.tools, other):
            return type(self)(other)
        return self._real_class(other)

    def _complex_operand(self, other):
        lt = self._lift(other)
        return lt if lt.is_complex else lt.real2complex()

    def _complex_binary(self, other, op, reflected=False):
        """op(a, b) with a = self, b = other promoted to complex (swapped when reflected)."""
        a, b = self._operand(), self._complex_operand(other)
        if reflected:
            a, b = b, a
        if a.ndim != b.ndim and 2 not in (a.ndim, b.ndim):
            raise ValueError(
                f"operation {op}: incompatible complex dimensions {a.ndim // 2} and {b.ndim // 2} (they must be "
                "equal, or 1)"
            )
        res = a._merged(b)
        res._template = f"{op}({a._template},{b._template})"
        res.ndim = max(a.ndim, b.ndim)
        return res

    # ------------------------------------------------------------------------------------------ operators

    def __add__(self, other):
        return self._operand() if _is_number(other, 0) else self._complex_binary(other, "ComplexAdd")

    def __radd__(self, other):
        return self._operand() if _is_number(other, 0) else self._complex_binary(other, "ComplexAdd", reflected=True)

    def __sub__(self, other):
        return self._operand() if _is_number(other, 0) else self._complex_binary(other, "ComplexSubtract")

    def __rsub__(self, other):
        return -self if _is_number(other, 0) else self._complex_binary(other, "ComplexSubtract", reflected=True)

    def __mul__(self, other, reflected=False):
        if _is_number(other, 0):
            return self._zero()
        if _is_number(other, 1):
            return self._operand()
        if _is_number(other, -1):
            return -self
        b = self._lift(other)
        if b.is_complex or b.ndim != 1:
            return self._complex_binary(b, "ComplexMult", reflected=reflected)
        # a real scalar times a complex vector
        a = self._operand()
        res = a._merged(b)
        first, second = (b, a) if reflected else (a, b)
        res._template = f"ComplexRealScal({first._template},{second._template})"
        res.ndim = a.ndim
        return res

    def __rmul__(self, other):
        return self.__mul__(other, reflected=True)

    def __truediv__(self, other):
        return self._operand() if _is_number(other, 1) else self._complex_binary(other, "ComplexDivide")

    def __rtruediv__(self, other):
        return self._zero() if _is_number(other, 0) else self._complex_binary(other, "ComplexDivide", reflected=True)

    # ------------------------------------------------------------------------------------------ operations

    @property
    def real(self):
        """Real parts, as a real LazyTensor of dim D."""
        return self._to_real("ComplexReal")

    @property
    def imag(self):
        """Imaginary parts, as a real LazyTensor of dim D."""
        return self._to_real("ComplexImag")

    def angle(self):
        """Arguments in [-pi, pi], as a real LazyTensor of dim D."""
        return self._to_real("ComplexAngle")

    def abs(self):
        """Moduli, as a real LazyTensor of dim D."""
        return self._to_real("ComplexAbs")

    def __abs__(self):
        return self.abs()

    def conj(self):
        """Element-wise complex conjugate (Conj), of the same dim."""
        return self._unary("Conj")

    def exp(self):
        """Element-wise complex exponential exp(re) * (cos(im) + 1j sin(im)) (ComplexExp), of the same dim."""
        return self._unary("ComplexExp")

    def concat(self, other):
        """Concatenation of complex vectors (a real operand is promoted)."""
        return GenericLazyTensor.concat(self, self._complex_operand(other))

    # ----------------------------------------------------------------------------------------- reductions

    def sum(self, axis=-1, dim=None, **kwargs):
        """Sum of the complex components (axis -1, the default) or Sum reduction (axis 0 or 1), complex output."""
        axis = axis if dim is None else dim
        if as_int(axis) in (-1, len(self._shape) - 1):
            return self._unary("ComplexSum")
        return self._complex_result(GenericLazyTensor.sum(self, axis, **kwargs))

    def _reduce(self, op, *args, **kwargs):
        if op != "Sum":
            raise NotImplementedError(f"the {op} reduction is not defined for complex LazyTensors (only Sum is)")
        return GenericLazyTensor._reduce(self, op, *args, **kwargs)

    def _complex_result(self, res):
        """A real reduction output (M, 2D) viewed as the complex array (M, D); other results unchanged."""
        if self.tools.is_array(res) and not _is_complex_array(self.tools, res):
            return self._views.view_as_complex_pairs(res)
        return res

    def __call__(self, *args, **kwargs):
        """Run a reduced ComplexLazyTensor: complex arguments and out= are passed as their real views."""
        views = self._views
        args = [views.view_as_real_pairs(a) if _is_complex_array(self.tools, a) else a for a in args]
        out = kwargs.get("out")
        if out is not None and _is_complex_array(self.tools, out):
            if not self.tools.is_writable_contiguous(out):
                raise ValueError("out must be a C-contiguous, aligned and writable array")
            kwargs["out"] = views.view_as_real_pairs(out)
            GenericLazyTensor.__call__(self, *args, **kwargs)
            return out
        return self._complex_result(GenericLazyTensor.__call__(self, *args, **kwargs))
