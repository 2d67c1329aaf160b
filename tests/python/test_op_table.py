"""Every operation of the engine's table, inside a Sum reduction, against an independent float64 NumPy reference."""
import zlib

import numpy as np
import pytest

from pykeops.common.engine import load_engine
from pykeops.numpy import Genred

from dense_reference import argext, bspline, cat, cplx, interleave, kron, softdtw, sq, tensordot, weighted

_engine = load_engine()

# Argument kinds: name -> (category, dim, domain). Reference functions see them broadcast to (M, N, dim).
ARGS = {
    "x": (0, 3, (-2.0, 2.0)),
    "y": (1, 3, (-2.0, 2.0)),
    "u": (0, 3, (0.2, 2.0)),      # positive
    "v": (1, 3, (0.2, 2.0)),
    "s": (0, 1, (-2.0, 2.0)),     # scalars
    "t": (1, 1, (0.2, 2.0)),
    "w": (0, 3, (-0.95, 0.95)),   # inside [-1, 1]
    "p": (2, 3, (0.5, 1.5)),      # parameters
    "q": (2, 1, (0.5, 1.5)),
    "A": (1, 6, (-1.0, 1.0)),     # a 2x3 matrix per j
    "S": (2, 9, (-1.0, 1.0)),     # a 3x3 matrix parameter
    "K": (2, 7, None),            # sorted knots
    "z": (0, 4, (-1.5, 1.5)),     # two complex numbers (re, im, re, im)
    "c": (1, 4, (-1.5, 1.5)),
    "n": (0, 1, (0.0, 3.4)),      # indices for OneHot
    "F": (0, 3, (-3.0, 3.0)),     # wide range for Floor/Round/Clamp
}


# operation -> list of (formula, reference(**args)); every operation of the table needs at least one case.
CASES = {
    "Var": [("x", lambda x: x)],
    "IntCst": [("x * IntCst(3)", lambda x: 3 * x)],
    "RatCst": [("x * RatCst(2, 3)", lambda x: x * 2 / 3)],
    "IntInv": [("x * IntInv(4)", lambda x: x / 4)],
    "RowIndex": [("RowIndex(0) * s + RowIndex(1) * t",
                  lambda s, t: np.arange(s.shape[0])[:, None, None] * s + np.arange(t.shape[1])[None, :, None] * t)],
    "Zero": [("Zero(3) + t", lambda t: np.zeros(3) + t)],
    "Add": [("x + y", lambda x, y: x + y), ("x + t", lambda x, t: x + t), ("s + p", lambda s, p: s + p)],
    "Subtract": [("x - y", lambda x, y: x - y), ("t - x", lambda t, x: t - x)],
    "Mult": [("x * y", lambda x, y: x * y), ("s * y", lambda s, y: s * y)],
    "Divide": [("x / v", lambda x, v: x / v), ("x / t", lambda x, t: x / t)],
    "Minus": [("-x", lambda x: -x)],
    "Square": [("Square(x - y)", lambda x, y: (x - y) ** 2)],
    "Sqrt": [("Sqrt(u + v)", lambda u, v: np.sqrt(u + v))],
    "Rsqrt": [("Rsqrt(u * v)", lambda u, v: 1 / np.sqrt(u * v))],
    "Inv": [("Inv(u + y)", lambda u, y: 1 / (u + y))],
    "Exp": [("Exp(-SqDist(x, y))", lambda x, y: np.exp(-sq(x - y))), ("Exp(x - y)", lambda x, y: np.exp(x - y))],
    "Log": [("Log(u * v)", lambda u, v: np.log(u * v))],
    "Abs": [("Abs(x - y)", lambda x, y: np.abs(x - y))],
    "Sin": [("Sin(x * y)", lambda x, y: np.sin(x * y))],
    "Cos": [("Cos(x + y)", lambda x, y: np.cos(x + y))],
    "Asin": [("Asin(w)", lambda w: np.arcsin(w))],
    "Acos": [("Acos(w) * t", lambda w, t: np.arccos(w) * t)],
    "Atan": [("Atan(x * y)", lambda x, y: np.arctan(x * y))],
    "Sign": [("Sign(x - y)", lambda x, y: np.sign(x - y))],
    "Step": [("Step(x - y)", lambda x, y: (x - y >= 0).astype(float))],
    "ReLU": [("ReLU(x - y)", lambda x, y: np.maximum(x - y, 0))],
    "Floor": [("Floor(F) * t", lambda F, t: np.floor(F) * t)],
    "XLogX": [("XLogX(u) * v", lambda u, v: u * np.log(u) * v)],
    "SinXDivX": [("SinXDivX(x - y)", lambda x, y: np.sinc((x - y) / np.pi))],
    "Pow": [("Pow(x - y, 3)", lambda x, y: (x - y) ** 3), ("Pow(u, -2) * t", lambda u, t: u ** -2.0 * t)],
    "Round": [("Round(F, 0) * t", lambda F, t: np.trunc(F + np.copysign(0.5, F)) * t),
              ("Round(F, 2) * t", lambda F, t: np.trunc(F * 100 + np.copysign(0.5, F)) / 100 * t)],
    "ClampInt": [("ClampInt(F, -1, 2) * t", lambda F, t: np.clip(F, -1, 2) * t)],
    "DiffClampInt": [("DiffClampInt(F, -1, 2) * t", lambda F, t: ((F >= -1) & (F <= 2)) * t)],
    "Atan2": [("Atan2(x, y)", lambda x, y: np.arctan2(x, y))],
    "Powf": [("Powf(u, y)", lambda u, y: u ** y), ("Powf(v, s)", lambda v, s: v ** s)],
    "Equal": [("Equal(Floor(F), Floor(y)) * t", lambda F, y, t: (np.floor(F) == np.floor(y)) * t)],
    "NotEqual": [("NotEqual(Floor(F), Floor(y)) * t", lambda F, y, t: (np.floor(F) != np.floor(y)) * t)],
    "LessThan": [("(x < y) * t", lambda x, y, t: (x < y) * t), ("(x > y) * t", lambda x, y, t: (x > y) * t)],
    "LessOrEqual": [("(x <= y) * t", lambda x, y, t: (x <= y) * t), ("(x >= y) * t", lambda x, y, t: (x >= y) * t)],
    "Clamp": [("Clamp(x, y - p, y + p)", lambda x, y, p: np.clip(x, y - p, y + p))],
    "IfElse": [("IfElse(x - y, x, y * y)", lambda x, y: np.where(x - y >= 0, x, y * y))],
    "Mod": [("Mod(x, p, y)", lambda x, p, y: x - p * np.floor((x - y) / p))],
    "Sum": [("Sum(x * y)", lambda x, y: (x * y).sum(-1, keepdims=True))],
    "SumT": [("SumT(s * t, 3)", lambda s, t: np.repeat(s * t, 3, -1))],
    "Max": [("Max(x * y)", lambda x, y: (x * y).max(-1, keepdims=True))],
    "Min": [("Min(x - y)", lambda x, y: (x - y).min(-1, keepdims=True))],
    "ArgMax": [("ArgMax(x * y)", lambda x, y: argext(x * y, np.argmax))],
    "ArgMin": [("ArgMin(x - y)", lambda x, y: argext(x - y, np.argmin))],
    "Elem": [("Elem(x * y, 2)", lambda x, y: (x * y)[..., 2:3])],
    "ElemT": [("ElemT(s * t, 4, 1)", lambda s, t: cat(0 * s * t, s * t, 0 * s * t, 0 * s * t))],
    "Extract": [("Extract(x * y, 1, 2)", lambda x, y: (x * y)[..., 1:3])],
    "ExtractT": [("ExtractT(x * t, 1, 5)", lambda x, t: cat(0 * t, x * t, 0 * t))],
    "Concat": [("Concat(x, y * t)", lambda x, y, t: cat(x, y * t))],
    "OneHot": [("OneHot(n, 4) * t", lambda n, t: (np.arange(4) == np.trunc(n + 0.5)) * t)],
    "Scalprod": [("(x | y)", lambda x, y: (x * y).sum(-1, keepdims=True))],
    "SqNorm2": [("SqNorm2(x - y)", lambda x, y: sq(x - y))],
    "Norm2": [("Norm2(x - y)", lambda x, y: np.sqrt(sq(x - y)))],
    "Normalize": [("Normalize(x - y)", lambda x, y: (x - y) / np.sqrt(sq(x - y)))],
    "SqDist": [("SqDist(x, y)", lambda x, y: sq(x - y)), ("SqDist(x, t)", lambda x, t: sq(x - t))],
    "SqNormIso": [("SqNormIso(q, x - y)", lambda q, x, y: q * sq(x - y))],
    "SqNormDiag": [("SqNormDiag(p, x - y)", lambda p, x, y: weighted(p, x - y))],
    "SymSqNorm": [("SymSqNorm(S, x - y)", lambda S, x, y: weighted(S, x - y))],
    "WeightedSqNorm": [("WeightedSqNorm(q, x - y)", lambda q, x, y: q * sq(x - y)),
                       ("WeightedSqNorm(p, x - y)", lambda p, x, y: weighted(p, x - y)),
                       ("WeightedSqNorm(S, x - y)", lambda S, x, y: weighted(S, x - y))],
    "WeightedSqDist": [("WeightedSqDist(S, x, y)", lambda S, x, y: weighted(S, x - y)),
                       ("WeightedSqDist(t, x, y)", lambda t, x, y: t * sq(x - y))],
    "MatVecMult": [("MatVecMult(A, x)", lambda A, x: np.einsum("...ik,...k->...i", A.reshape(A.shape[:-1] + (2, 3)), x))],
    "VecMatMult": [("VecMatMult(Extract(x, 0, 2), A)",
                    lambda x, A: np.einsum("...k,...ki->...i", x[..., :2], A.reshape(A.shape[:-1] + (2, 3))))],
    "TensorProd": [("TensorProd(x, Extract(y, 0, 2))",
                    lambda x, y: cat(x[..., 0:1] * y[..., :2], x[..., 1:2] * y[..., :2], x[..., 2:3] * y[..., :2]))],
    "TensorDot": [("TensorDot(A, x, [2,3], [3], [1], [0])", lambda A, x: tensordot(A, x, [2, 3], [3], [1], [0])),
                  ("TensorDot(A, S, [2,3], [3,3], [], [], [2,0,3,1])",
                   lambda A, S: tensordot(A, S, [2, 3], [3, 3], [], [], [2, 0, 3, 1])),
                  ("TensorDot(A, z, [3,2], [2,2], [1], [1])", lambda A, z: tensordot(A, z, [3, 2], [2, 2], [1], [1]))],
    "Kron": [("Kron(A, z, [2,3], [2,2])", lambda A, z: kron(A, z, [2, 3], [2, 2]))],
    "BSpline": [("BSpline(K, s, 2)", lambda K, s: bspline(K, s, 2)), ("BSpline(K, s, 0)", lambda K, s: bspline(K, s, 0))],
    "SoftDTW_SqDist": [("SoftDTW_SqDist(x, y, q)", lambda x, y, q: softdtw(x, y, q))],
    "Factorize": [("Factorize(Exp(-SqDist(x, y)) * SqDist(x, y), SqDist(x, y))", lambda x, y: np.exp(-sq(x - y)) * sq(x - y))],
    "AutoFactorize": [("AutoFactorize(Exp(-SqDist(x, y)) * SqDist(x, y))", lambda x, y: np.exp(-sq(x - y)) * sq(x - y))],
    "ComplexReal": [("ComplexReal(z)", lambda z: cplx(z).real)],
    "ComplexImag": [("ComplexImag(z)", lambda z: cplx(z).imag)],
    "ComplexSquareAbs": [("ComplexSquareAbs(z)", lambda z: np.abs(cplx(z)) ** 2)],
    "ComplexAbs": [("ComplexAbs(z)", lambda z: np.abs(cplx(z)))],
    "ComplexAngle": [("ComplexAngle(z)", lambda z: np.angle(cplx(z)))],
    "Real2Complex": [("Real2Complex(x)", lambda x: interleave(x + 0j))],
    "Imag2Complex": [("Imag2Complex(x)", lambda x: interleave(1j * x))],
    "ComplexExp1j": [("ComplexExp1j(x)", lambda x: interleave(np.exp(1j * x)))],
    "Conj": [("Conj(z)", lambda z: interleave(np.conj(cplx(z))))],
    "ComplexExp": [("ComplexExp(z)", lambda z: interleave(np.exp(cplx(z))))],
    "ComplexAdd": [("ComplexAdd(z, c)", lambda z, c: interleave(cplx(z) + cplx(c)))],
    "ComplexSubtract": [("ComplexSubtract(z, Extract(c, 0, 2))", lambda z, c: interleave(cplx(z) - cplx(c[..., :2])))],
    "ComplexMult": [("ComplexMult(z, c)", lambda z, c: interleave(cplx(z) * cplx(c)))],
    "ComplexDivide": [("ComplexDivide(z, c)", lambda z, c: interleave(cplx(z) / cplx(c)))],
    "ComplexRealScal": [("ComplexRealScal(t, z)", lambda t, z: t * z)],
    "ComplexSum": [("ComplexSum(z)", lambda z: interleave(cplx(z).sum(-1, keepdims=True)))],
    "ComplexSumT": [("ComplexSumT(ComplexSum(c), 4)", lambda c: interleave(np.repeat(cplx(c).sum(-1, keepdims=True), 2, -1)))],
}

def softdtw_grad(x, y, gamma, h=1e-6):
    """Central finite differences of softdtw with respect to (x, y), concatenated."""
    cols = []
    for which, a in ((0, x), (1, y)):
        for k in range(a.shape[-1]):
            e = np.zeros(a.shape[-1])
            e[k] = h
            args_p = (x + e, y) if which == 0 else (x, y + e)
            args_m = (x - e, y) if which == 0 else (x, y - e)
            cols.append((softdtw(*args_p, gamma) - softdtw(*args_m, gamma)) / (2 * h))
    return np.concatenate(cols, -1)


# Symbolic differentiation resolves at construction into ordinary formulas; checked on known derivatives.
CASES.update({
    "Grad": [("Grad(SqNorm2(x - y), x, t)", lambda x, y, t: 2 * (x - y) * t),
             ("Grad(Exp(-SqDist(x, y)) * t, y, s)", lambda x, y, t, s: 2 * (x - y) * np.exp(-sq(x - y)) * t * s)],
    "Diff": [("Diff(SqNorm2(x - y), x, y)", lambda x, y: (2 * (x - y) * y).sum(-1, keepdims=True))],
    "Divergence": [("Divergence(x * y, x)", lambda x, y: (y + 0 * x).sum(-1, keepdims=True))],
    "Laplacian": [("Laplacian(Exp(-SqDist(x, y)), x)", lambda x, y: (4 * sq(x - y) - 6) * np.exp(-sq(x - y)))],
    "GradMatrix": [("GradMatrix(x * y, x)", lambda x, y: (np.eye(3) * (y + 0 * x)[..., :, None]).reshape(np.broadcast_shapes(x.shape, y.shape)[:-1] + (9,)))],
    "TraceOperator": [("TraceOperator(x * y, x)", lambda x, y: (y + 0 * x).sum(-1, keepdims=True))],
    "AdjointOperator": [("AdjointOperator(x * y, x, u)", lambda x, y, u: y * u + 0 * x)],
    "SumLinOperator": [("SumLinOperator(x * y, x)", lambda x, y: (y + 0 * x).sum(-1, keepdims=True))],
    "GradSoftDTW_SqDist": [("GradSoftDTW_SqDist(x, y, q)", lambda x, y, q: softdtw_grad(x, y, q))],
})


def test_every_operation_has_a_case():
    table = {op["name"]: op["supported"] for op in _engine.operations()}
    assert set(table) == set(CASES), "operations without a test case: %s" % sorted(set(table) - set(CASES))
    assert all(table.values()), "operations without code generation: %s" % sorted(n for n, ok in table.items() if not ok)


def make_args(names, M, N, rng):
    data = {}
    for name in names:
        cat, dim, dom = ARGS[name]
        rows = (M, N, 1)[cat]
        if name == "K":
            data[name] = np.sort(rng.uniform(-2.5, 2.5, dim))
            data[name][2] = data[name][3]  # a repeated knot: the 0/0 convention is exercised
        else:
            shape = (rows, dim) if cat < 2 else (dim,)
            data[name] = rng.uniform(*dom, size=shape)
    return data


def broadcast(name, a):
    cat = ARGS[name][0]
    return a[:, None, :] if cat == 0 else a[None, :, :] if cat == 1 else a[None, None, :]


CASE_LIST = [(op, f, ref) for op, cases in CASES.items() for f, ref in cases]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,formula,ref", CASE_LIST, ids=[f"{op}:{f}" for op, f, _ in CASE_LIST])
def test_operation_against_numpy(op, formula, ref, dtype):
    names = list(ref.__code__.co_varnames[: ref.__code__.co_argcount])
    # an i- and a j-variable always take part, so that M and N are fixed even if the formula has neither
    names += [n for n in ("s", "t") if n not in names]
    rng = np.random.default_rng(zlib.crc32(formula.encode()))
    M, N = 7, 37  # N covers full vector blocks and a tail
    data = make_args(names, M, N, rng)
    values = {n: a.astype(dtype).astype(np.float64) for n, a in data.items()}
    with np.errstate(all="ignore"):
        dense = ref(**{n: broadcast(n, values[n]) for n in ref.__code__.co_varnames[: ref.__code__.co_argcount]})
    dense = np.broadcast_to(dense, (M, N, dense.shape[-1]))
    aliases = [f"{n} = {('Vi', 'Vj', 'Pm')[ARGS[n][0]]}({ARGS[n][1]})" for n in names]
    args = [data[n].astype(dtype) for n in names]
    rtol = 2e-5 if dtype == "float32" else 1e-12
    if op in ("SoftDTW_SqDist", "GradSoftDTW_SqDist") and dtype == "float32":
        rtol = 1e-4  # a chain of 9 log-sum-exps
    if op == "GradSoftDTW_SqDist":
        rtol = max(rtol, 1e-7)  # the reference is a finite difference
    for axis in (0, 1):
        out = Genred(formula, aliases, reduction_op="Sum", axis=axis)(*args)
        expect = dense.sum(axis=axis)  # axis=1: sum over j, output indexed by i
        assert out.shape == expect.shape, (out.shape, expect.shape)
        scale = np.abs(dense).max() * dense.shape[axis]
        np.testing.assert_allclose(out, expect, rtol=rtol, atol=rtol * scale + 1e-30, err_msg=formula)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edge_values(dtype):
    """0, negative arguments of Log/Sqrt, large arguments of Exp, NaN and inf behave as NumPy does."""
    x = np.array([[0.0], [-1.0], [1000.0], [-1000.0], [np.nan], [np.inf], [-np.inf], [1e-30]], dtype=dtype)
    one = np.ones((1, 1), dtype=dtype)
    with np.errstate(all="ignore"):
        for formula, ref in [("Log(x)", np.log), ("Sqrt(x)", np.sqrt), ("Exp(x)", np.exp), ("Abs(x)", np.abs),
                             ("Sin(x)", np.sin), ("Cos(x)", np.cos), ("Inv(x)", lambda v: 1 / v),
                             ("Atan(x)", np.arctan), ("Floor(x)", np.floor), ("Square(x)", np.square),
                             ("Rsqrt(x)", lambda v: np.where(v == 0, 0, 1 / np.sqrt(v))),
                             ("XLogX(x)", lambda v: np.where(v == 0, 0, v * np.log(v))),
                             ("SinXDivX(x)", lambda v: np.where(v == 0, 1, np.sin(v) / v)),
                             ("Sign(x)", lambda v: np.nan_to_num(np.sign(v), nan=0.0)),
                             ("Step(x)", lambda v: np.where(v < 0, 0.0, 1.0)),
                             ("ReLU(x)", lambda v: np.where(v < 0, 0.0, v))]:
            out = Genred(formula, ["x = Vi(1)", "y = Vj(1)"], axis=1)(x, one)
            expect = ref(x.astype(np.float64)).astype(dtype)
            np.testing.assert_allclose(out, expect, rtol=2e-6 if dtype == "float32" else 1e-14, err_msg=formula)


@pytest.mark.parametrize("formula,message", [
    ("x + y", "Add: dimensions 3 and 2 are incompatible"),
    ("Exp(x, y)", "Exp: too many arguments"),
    ("Pow(x)", "Pow: too few arguments"),
    ("Elem(x, 3)", "Elem: index 3 is out of range for dimension 3"),
    ("Extract(x, 2, 2)", "Extract: range [2, 4) is out of bounds for dimension 3"),
    ("TensorDot(x, y, [3], [2], [0], [0])", "TensorDot: contracted axes have sizes 3 and 2"),
    ("x * 0.5", "float literal 0.5"),
    ("(x | y)", "Scalprod: both arguments must have the same dimension"),
    ("OneHot(x, 3)", "OneHot: the argument must have dimension 1"),
    ("MatVecMult(x, y)", "MatVecMult: matrix dimension 3 is not a multiple of vector dimension 2"),
])
def test_errors_name_the_operation(formula, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Genred(formula, ["x = Vi(3)", "y = Vj(2)"], axis=1)(np.ones((2, 3)), np.ones((2, 2)))
