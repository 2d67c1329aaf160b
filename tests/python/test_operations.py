"""Each operation of the Foundation issue through LazyTensor and through Genred, against dense NumPy float64."""

import numpy as np
import pytest

pytestmark = pytest.mark.engine

M, N = 7, 5
ALIASES = ["x = Vi(3)", "y = Vj(3)", "s = Vj(1)", "p = Pm(3)"]

# (id, LazyTensor builder, Genred formula or None, dense builder). Builders get x (Vi, dim 3), y (Vj, dim 3),
# s (Vj, dim 1) and p (Pm, dim 3): LazyTensors, or NumPy arrays broadcast to (M, N, dim). All inputs lie in
# [0.5, 1.5], so that Log, Sqrt, Inv and negative powers are applied where they are defined. Each LazyTensor
# uses an i- and a j-variable, as a LazyTensor without one has M (or N) = 1.
CASES = [
    ("Add", lambda x, y, s, p: x + y, "x + y", lambda x, y, s, p: x + y),
    ("Subtract", lambda x, y, s, p: x - y, "x - y", lambda x, y, s, p: x - y),
    ("Mult", lambda x, y, s, p: x * y, "x * y", lambda x, y, s, p: x * y),
    ("Divide", lambda x, y, s, p: x / y, "x / y", lambda x, y, s, p: x / y),
    ("Minus", lambda x, y, s, p: -(x * y), "-(x * y)", lambda x, y, s, p: -(x * y)),
    ("Minus-rsub", lambda x, y, s, p: 0 - y + x * -1, "Minus(y) + Minus(x)", lambda x, y, s, p: -y - x),
    ("Square", lambda x, y, s, p: (x - y) ** 2, "Square(x - y)", lambda x, y, s, p: (x - y) ** 2),
    ("Sqrt", lambda x, y, s, p: (x + y).sqrt(), "Sqrt(x + y)", lambda x, y, s, p: np.sqrt(x + y)),
    ("Sqrt-pow", lambda x, y, s, p: (x * y) ** 0.5, None, lambda x, y, s, p: np.sqrt(x * y)),
    ("Rsqrt", lambda x, y, s, p: (x + y).rsqrt(), "Rsqrt(x + y)", lambda x, y, s, p: 1 / np.sqrt(x + y)),
    ("Rsqrt-pow", lambda x, y, s, p: (x * y) ** -0.5, None, lambda x, y, s, p: 1 / np.sqrt(x * y)),
    ("Inv", lambda x, y, s, p: (x + y).inv(), "Inv(x + y)", lambda x, y, s, p: 1 / (x + y)),
    ("Inv-rdiv", lambda x, y, s, p: 1 / (x * y), None, lambda x, y, s, p: 1 / (x * y)),
    ("Exp", lambda x, y, s, p: (x - y).exp(), "Exp(x - y)", lambda x, y, s, p: np.exp(x - y)),
    ("Log", lambda x, y, s, p: (x * y).log(), "Log(x * y)", lambda x, y, s, p: np.log(x * y)),
    ("Abs", lambda x, y, s, p: abs(x - y), "Abs(x - y)", lambda x, y, s, p: np.abs(x - y)),
    ("Abs-method", lambda x, y, s, p: (y - x).abs(), None, lambda x, y, s, p: np.abs(y - x)),
    ("Sin", lambda x, y, s, p: (x - 2 * y).sin(), "Sin(x - 2 * y)", lambda x, y, s, p: np.sin(x - 2 * y)),
    ("Cos", lambda x, y, s, p: (x - 2 * y).cos(), "Cos(x - 2 * y)", lambda x, y, s, p: np.cos(x - 2 * y)),
    ("Pow", lambda x, y, s, p: (x - y) ** 3, "Pow(x - y, 3)", lambda x, y, s, p: (x - y) ** 3),
    ("Pow-negative", lambda x, y, s, p: (x + y) ** -2, "Pow(x + y, -2)", lambda x, y, s, p: (x + y) ** -2.0),
    ("Sum", lambda x, y, s, p: (x * y).sum(-1), "Sum(x * y)", lambda x, y, s, p: (x * y).sum(-1, keepdims=True)),
    ("SqNorm2", lambda x, y, s, p: (x - y).sqnorm2(), "SqNorm2(x - y)",
     lambda x, y, s, p: ((x - y) ** 2).sum(-1, keepdims=True)),
    ("SqDist", lambda x, y, s, p: x.sqdist(y), "SqDist(x, y)", lambda x, y, s, p: ((x - y) ** 2).sum(-1, keepdims=True)),
    ("Scalprod", lambda x, y, s, p: x | y, "(x | y)", lambda x, y, s, p: (x * y).sum(-1, keepdims=True)),
    ("IntCst", lambda x, y, s, p: (3 * x - 2) * y, "(IntCst(3) * x - 2) * y", lambda x, y, s, p: (3 * x - 2) * y),
    ("IntCst-divide", lambda x, y, s, p: x / 2 + y * 3, "x / IntCst(2) + y * 3", lambda x, y, s, p: x / 2 + y * 3),
    ("Zero", lambda x, y, s, p: x * 0 + y, "Zero(3) + y", lambda x, y, s, p: 0 * x + y),
    ("Zero-alone", lambda x, y, s, p: (x - y) * 0, "Zero(3)", lambda x, y, s, p: np.zeros_like(x - y)),
    ("Zero-rdiv", lambda x, y, s, p: 0 / x + s, None, lambda x, y, s, p: 0 * x + s),
    ("Pm-vector", lambda x, y, s, p: x * p - y, "x * p - y", lambda x, y, s, p: x * p - y),
    ("Pm-number", lambda x, y, s, p: (x - y) * 2.5 + 0.25, None, lambda x, y, s, p: (x - y) * 2.5 + 0.25),
    ("Broadcast-mult", lambda x, y, s, p: x * s, "x * s", lambda x, y, s, p: x * s),
    ("Broadcast-add", lambda x, y, s, p: s + x, "s + x", lambda x, y, s, p: s + x),
    ("Broadcast-subtract", lambda x, y, s, p: s - x, "s - x", lambda x, y, s, p: s - x),
    ("Broadcast-divide", lambda x, y, s, p: x / s, "x / s", lambda x, y, s, p: x / s),
    ("Broadcast-sqdist", lambda x, y, s, p: x.sqdist(s), "SqDist(x, s)", lambda x, y, s, p: ((x - s) ** 2).sum(-1, keepdims=True)),
    ("Gaussian", lambda x, y, s, p: (-x.sqdist(y)).exp() * s, "Exp(-SqDist(x, y)) * s",
     lambda x, y, s, p: np.exp(-((x - y) ** 2).sum(-1, keepdims=True)) * s),
]
IDS = [c[0] for c in CASES]
GENRED_CASES = [c for c in CASES if c[2] is not None]


def inputs():
    rng = np.random.default_rng(7)
    # values exactly representable in float32, so one float64 reference serves both dtypes
    return [(0.5 + rng.random(shape)).astype(np.float32).astype(np.float64) for shape in [(M, 3), (N, 3), (N, 1), (3,)]]


def dense_reference(dense, axis):
    x, y, s, p = inputs()
    full = dense(x[:, None, :], y[None, :, :], s[None, :, :], p[None, None, :])
    full = np.broadcast_to(full, (M, N, full.shape[-1]))
    return full.sum(axis=axis)  # axis 0 of the (M, N, dim) array is i, axis 1 is j, as for reductions


def assert_close(got, ref, dtype):
    assert got.shape == ref.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * 1e-2 * max(np.abs(ref).max(), 1.0))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lazytensor(fw, case, dtype, axis):
    _, build, _, dense = case
    x, y, s, p = (fw.array(a.astype(dtype)) for a in inputs())
    lt = fw.module
    result = build(lt.Vi(x), lt.Vj(y), lt.Vj(s), lt.Pm(p)).sum(dim=axis)
    assert isinstance(result, type(x)) and result.dtype == x.dtype
    assert_close(fw.numpy(result), dense_reference(dense, axis), dtype)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GENRED_CASES, ids=[c[0] for c in GENRED_CASES])
def test_genred(fw, case, dtype, axis):
    _, _, formula, dense = case
    args = [fw.array(a.astype(dtype)) for a in inputs()]
    result = fw.module.Genred(formula, ALIASES, axis=axis)(*args)
    assert isinstance(result, type(args[0])) and result.dtype == args[0].dtype
    assert_close(fw.numpy(result), dense_reference(dense, axis), dtype)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_printed_formula_reparses(case):
    from pykeops import _engine
    from pykeops.numpy import Pm, Vi, Vj

    x, y, s, p = inputs()
    formula = case[1](Vi(x), Vj(y), Vj(s), Pm(p)).formula
    printed = _engine.parse(formula)
    assert _engine.parse(printed) == printed
