"""The element-wise and vector operations of LazyTensor (numpy and torch), each inside Sum reductions over i and
over j against a dense float64 NumPy reference; emitted formulas, re-parsing, dispatch rules and error paths."""

import math
import re

import numpy as np
import pytest

from pykeops import _engine

from dense_reference import argext, bcast, bspline, keops_round, kron, softdtw, sq, tensordot, weighted

pytestmark = pytest.mark.engine

M, N = 6, 11

# name -> (category, dim, domain). Values are exactly representable in float32, so that one float64 reference
# serves both dtypes. Builders and references name the inputs they use; references see them broadcast to
# (M, 1, D), (1, N, D) or (1, 1, D).
INPUTS = {
    "x": (0, 3, (0.5, 1.5)),  # positive
    "y": (1, 3, (0.5, 1.5)),
    "t": (0, 1, (0.5, 1.5)),  # scalars
    "s": (1, 1, (0.5, 1.5)),
    "p": (2, 3, (0.5, 1.5)),  # parameter
    "w": (0, 3, (-0.9, 0.9)),  # inside (-1, 1)
    "v": (1, 3, (-0.9, 0.9)),
    "F": (0, 3, (-3.0, 3.0)),  # wide range: floor, round, clamp, mod
    "I": (0, 3, "int"),  # integer values in [0, 3]: equality tests
    "J": (1, 3, "int"),
    "A": (1, 6, (-1.0, 1.0)),  # a 2 x 3 row-major matrix per j
    "S": (2, 9, (-1.0, 1.0)),  # a 3 x 3 matrix parameter
    "K": (2, 7, "knots"),  # sorted knots
    "n": (0, 1, (0.0, 3.4)),  # points for OneHot and BSpline
}


def make_inputs():
    rng = np.random.default_rng(2024)
    data = {}
    for name, (cat, dim, dom) in INPUTS.items():
        shape = ((M, dim), (N, dim), (dim,))[cat]
        if dom == "int":
            a = rng.integers(0, 4, size=shape).astype(np.float64)
        elif dom == "knots":
            a = np.sort(rng.uniform(-0.5, 3.9, size=shape))
        else:
            a = rng.uniform(*dom, size=shape)
        data[name] = a.astype(np.float32).astype(np.float64)
    return data


DATA = make_inputs()


def dense_input(name):
    a, cat = DATA[name], INPUTS[name][0]
    return a[:, None, :] if cat == 0 else a[None, :, :] if cat == 1 else a[None, None, :]


# ------------------------------------------------------------------------------------------ dense references


def matrix(a, rows, cols):
    return a.reshape(a.shape[:-1] + (rows, cols))


# ------------------------------------------------------------------------------------------------ the cases

# (id, LazyTensor builder, dense reference, expected formula with input names, or None). Builders may also take
# LT, the framework's LazyTensor class. Python-number parameters print as [value].
CASES = [
    # element-wise math
    ("xlogx", lambda x, y: x.xlogx() * y, lambda x, y: x * np.log(x) * y, "(XLogX(x) * y)"),
    ("sinxdivx", lambda w, v: (w - v).sinxdivx(), lambda w, v: np.sinc((w - v) / np.pi), "SinXDivX((w - v))"),
    ("sinc", lambda w, v: (w - v).sinc(), lambda w, v: np.sinc(w - v), "SinXDivX(([3.14159] * (w - v)))"),
    ("asin", lambda w, v: (w * v).asin(), lambda w, v: np.arcsin(w * v), "Asin((w * v))"),
    ("acos", lambda w, v: (w * v).acos(), lambda w, v: np.arccos(w * v), "Acos((w * v))"),
    ("atan", lambda x, v: (x * v).atan(), lambda x, v: np.arctan(x * v), "Atan((x * v))"),
    ("atan2", lambda w, v: w.atan2(v), lambda w, v: np.arctan2(w, v), "Atan2(w,v)"),
    ("atan2-broadcast", lambda w, s: w.atan2(s), lambda w, s: np.arctan2(w, s), "Atan2(w,s)"),
    ("sign", lambda w, v: (w - v).sign(), lambda w, v: np.sign(w - v), "Sign((w - v))"),
    ("step", lambda w, v: (w - v).step(), lambda w, v: (w - v >= 0).astype(float), "Step((w - v))"),
    ("relu", lambda w, v: (w - v).relu(), lambda w, v: np.maximum(w - v, 0), "ReLU((w - v))"),
    ("floor", lambda F, s: F.floor() * s, lambda F, s: np.floor(F) * s, "(Floor(F) * s)"),
    ("round", lambda F, s: F.round() * s, lambda F, s: keops_round(F) * s, "(Round(F,0) * s)"),
    ("round-2", lambda F, s: F.round(2) * s, lambda F, s: keops_round(F, 2) * s, "(Round(F,2) * s)"),
    ("exp", lambda x, y: (x - y).exp(), lambda x, y: np.exp(x - y), "Exp((x - y))"),
    ("log", lambda x, y: (x * y).log(), lambda x, y: np.log(x * y), "Log((x * y))"),
    ("abs", lambda w, v: abs(w - v), lambda w, v: np.abs(w - v), "Abs((w - v))"),
    ("sqrt", lambda x, y: (x + y).sqrt(), lambda x, y: np.sqrt(x + y), "Sqrt((x + y))"),
    ("rsqrt", lambda x, y: (x + y).rsqrt(), lambda x, y: 1 / np.sqrt(x + y), "Rsqrt((x + y))"),
    ("sin-cos", lambda x, y: (x - y).sin() + (x * y).cos(), lambda x, y: np.sin(x - y) + np.cos(x * y), None),
    ("square-inv", lambda x, y: (x - y).square() + (x + y).inv(), lambda x, y: (x - y) ** 2 + 1 / (x + y), None),
    # clamp, ifelse, mod
    ("clamp-int", lambda F, s: F.clamp(-1, 2) * s, lambda F, s: np.clip(F, -1, 2) * s, "(ClampInt(F,-1,2) * s)"),
    ("clamp-float", lambda F, s: F.clamp(0.25, 1.25) * s, lambda F, s: np.clip(F, 0.25, 1.25) * s,
     "(Clamp(F,[0.25],[1.25]) * s)"),
    ("clamp-mixed", lambda F, s: F.clamp(-1, 1.5) * s, lambda F, s: np.clip(F, -1, 1.5) * s,
     "(Clamp(F,IntCst(-1),[1.5]) * s)"),
    ("clamp-lazy", lambda x, y: x.clamp(y - 0.25, y + 0.25), lambda x, y: np.clip(x, y - 0.25, y + 0.25),
     "Clamp(x,(y - [0.25]),(y + [0.25]))"),
    ("clamp-broadcast", lambda F, t, y: F.clamp(t - 2, y), lambda F, t, y: np.clip(F, t - 2, y),
     "Clamp(F,(t - IntCst(2)),y)"),
    ("ifelse", lambda w, v, x, y: (w - v).ifelse(x, y), lambda w, v, x, y: np.where(w - v >= 0, x, y),
     "IfElse((w - v),x,y)"),
    ("ifelse-broadcast", lambda w, s, y: w.ifelse(s, y * y), lambda w, s, y: np.where(w >= 0, s, y * y),
     "IfElse(w,s,(y * y))"),
    ("mod", lambda F, p, v: F.mod(p, v), lambda F, p, v: F - p * np.floor((F - v) / p), "Mod(F,p,v)"),
    ("mod-int", lambda F, s: F.mod(2) * s, lambda F, s: (F - 2 * np.floor(F / 2)) * s, "(Mod(F,IntCst(2),IntCst(0)) * s)"),
    ("mod-float", lambda F, s: F.mod(s, 0.25), lambda F, s: F - s * np.floor((F - 0.25) / s), "Mod(F,s,[0.25])"),
    # comparisons
    ("eq", lambda I, J, s: (I == J) * s, lambda I, J, s: (I == J) * s, "(Equal(I,J) * s)"),
    ("ne", lambda I, J, s: (I != J) * s, lambda I, J, s: (I != J) * s, "(NotEqual(I,J) * s)"),
    ("lt", lambda x, y: x < y, lambda x, y: (x < y).astype(float), "(x < y)"),
    ("gt", lambda x, y: x > y, lambda x, y: (x > y).astype(float), "(x > y)"),
    ("le", lambda I, J: I <= J, lambda I, J: (I <= J).astype(float), "(I <= J)"),
    ("ge", lambda I, J: I >= J, lambda I, J: (I >= J).astype(float), "(I >= J)"),
    ("eq-number", lambda I, s: (I == 2) * s, lambda I, s: (I == 2) * s, "(Equal(I,IntCst(2)) * s)"),
    ("lt-float", lambda x, s: (x < 1.0) * s, lambda x, s: (x < 1.0) * s, "((x < [1]) * s)"),
    ("gt-reflected", lambda J, t: (2 > J) * t, lambda J, t: (2 > J) * t, "((J < IntCst(2)) * t)"),
    ("le-broadcast", lambda x, s: x <= s, lambda x, s: (x <= s).astype(float), "(x <= s)"),
    # the ** table
    ("pow-2", lambda x, y: (x - y) ** 2, lambda x, y: (x - y) ** 2, "Square((x - y))"),
    ("pow-2.0", lambda x, y: (x - y) ** 2.0, lambda x, y: (x - y) ** 2, "Square((x - y))"),
    ("pow-3", lambda x, y: (x - y) ** 3, lambda x, y: (x - y) ** 3, "Pow((x - y),3)"),
    ("pow-neg", lambda x, y: (x + y) ** -2, lambda x, y: (x + y) ** -2.0, "Pow((x + y),-2)"),
    ("pow-0.5", lambda x, y: (x * y) ** 0.5, lambda x, y: np.sqrt(x * y), "Sqrt((x * y))"),
    ("pow--0.5", lambda x, y: (x * y) ** -0.5, lambda x, y: 1 / np.sqrt(x * y), "Rsqrt((x * y))"),
    ("pow-float", lambda x, y: (x * y) ** 1.5, lambda x, y: (x * y) ** 1.5, "Powf((x * y),[1.5])"),
    ("pow-lazy", lambda x, y: x**y, lambda x, y: x**y, "Powf(x,y)"),
    ("pow-scalar-exponent", lambda x, s: x**s, lambda x, s: x**s, "Powf(x,s)"),
    ("pow-param", lambda x, y, p: (x + y) ** p, lambda x, y, p: (x + y) ** p, "Powf((x + y),p)"),
    ("pow-list", lambda x, s: (x * s) ** [1.0, 2.0, 0.5], lambda x, s: (x * s) ** np.array([1.0, 2.0, 0.5]),
     "Powf((x * s),[1,2,0.5])"),
    ("power", lambda x, y: x.power(y), lambda x, y: x**y, "Powf(x,y)"),
    # the number special cases
    ("times-0", lambda x, y: x * 0 + y, lambda x, y: 0 * x + y, "(Zero(3) + y)"),
    ("times-1", lambda x, y: x * 1 - 1 * y, lambda x, y: x - y, "(x - y)"),
    ("times-minus-1", lambda x, y: x * -1 + y, lambda x, y: y - x, "(Minus(x) + y)"),
    ("one-over", lambda x, y: 1 / (x + y), lambda x, y: 1 / (x + y), "Inv((x + y))"),
    ("zero-minus", lambda x, y: 0 - (x * y), lambda x, y: -(x * y), "Minus((x * y))"),
    ("plus-0", lambda x, y: 0 + x * y + 0, lambda x, y: x * y, "(x * y)"),
    ("zero-over", lambda x, s: 0 / x + s, lambda x, s: 0 * x + s, "(Zero(3) + s)"),
    ("float-param", lambda x, y: 2.5 * x - y / 0.5, lambda x, y: 2.5 * x - y / 0.5, "(([2.5] * x) - (y / [0.5]))"),
    ("dim1-broadcast", lambda x, s, t: (x * s - t) / s, lambda x, s, t: (x * s - t) / s, "(((x * s) - t) / s)"),
    # vector operations
    ("norm2", lambda x, y: (x - y).norm2(), lambda x, y: np.sqrt(sq(x - y)), "Norm2((x - y))"),
    ("norm", lambda x, y: (x - y).norm(-1) + (x + y).norm(2), lambda x, y: np.sqrt(sq(x - y)) + np.sqrt(sq(x + y)),
     "(Norm2((x - y)) + Norm2((x + y)))"),
    ("normalize", lambda w, v: (w - v).normalize(), lambda w, v: (w - v) / np.sqrt(sq(w - v)), "Normalize((w - v))"),
    ("sqnorm2", lambda x, y: (x - y).sqnorm2(), lambda x, y: sq(x - y), "SqNorm2((x - y))"),
    ("sqdist", lambda x, y: x.sqdist(y), lambda x, y: sq(x - y), "SqDist(x,y)"),
    ("scalprod", lambda x, y: x | y, lambda x, y: (x * y).sum(-1, keepdims=True), "(x | y)"),
    ("weightedsqnorm-iso", lambda w, v, t: (w - v).weightedsqnorm(t), lambda w, v, t: t * sq(w - v),
     "WeightedSqNorm(t,(w - v))"),
    ("weightedsqnorm-diag", lambda w, v, p: (w - v).weightedsqnorm(p), lambda w, v, p: weighted(p, w - v),
     "WeightedSqNorm(p,(w - v))"),
    ("weightedsqnorm-full", lambda w, v, S: (w - v).weightedsqnorm(S), lambda w, v, S: weighted(S, w - v),
     "WeightedSqNorm(S,(w - v))"),
    ("weightedsqnorm-float", lambda w, v: (w - v).weightedsqnorm(2.5), lambda w, v: 2.5 * sq(w - v),
     "WeightedSqNorm([2.5],(w - v))"),
    ("weightedsqdist", lambda w, v, S: w.weightedsqdist(v, S), lambda w, v, S: weighted(S, w - v),
     "WeightedSqNorm(S,(w - v))"),
    ("sum", lambda x, y: (x * y).sum(), lambda x, y: (x * y).sum(-1, keepdims=True), "Sum((x * y))"),
    ("sum-last", lambda x, y: (x * y).sum(dim=2), lambda x, y: (x * y).sum(-1, keepdims=True), "Sum((x * y))"),
    ("min", lambda w, v: (w - v).min(), lambda w, v: (w - v).min(-1, keepdims=True), "Min((w - v))"),
    ("max", lambda w, v: (w * v).max(-1), lambda w, v: (w * v).max(-1, keepdims=True), "Max((w * v))"),
    ("argmin", lambda w, v: (w - v).argmin(dim=-1), lambda w, v: argext(w - v, np.argmin), "ArgMin((w - v))"),
    ("argmax", lambda w, v: (w * v).argmax(2), lambda w, v: argext(w * v, np.argmax), "ArgMax((w * v))"),
    # indexing and concatenation
    ("elem", lambda x, y: (x * y).elem(2), lambda x, y: (x * y)[..., 2:3], "Elem((x * y),2)"),
    ("getitem-int", lambda x, y: x[0] - y[2], lambda x, y: x[..., 0:1] - y[..., 2:3], "(Elem(x,0) - Elem(y,2))"),
    ("getitem-numpy-int", lambda x, y: x[np.int64(1)] * y, lambda x, y: x[..., 1:2] * y, "(Elem(x,1) * y)"),
    ("extract", lambda x, y: x.extract(1, 2) * y.extract(0, 2), lambda x, y: x[..., 1:3] * y[..., 0:2],
     "(Extract(x,1,2) * Extract(y,0,2))"),
    ("slice", lambda x, y: x[1:3] + y[:2], lambda x, y: x[..., 1:3] + y[..., :2], "(Extract(x,1,2) + Extract(y,0,2))"),
    ("slice-open", lambda x, y: x[1:] * y[0:2:1], lambda x, y: x[..., 1:] * y[..., :2],
     "(Extract(x,1,2) * Extract(y,0,2))"),
    ("slice-full", lambda x, y: x[:] - y, lambda x, y: x - y, "(Extract(x,0,3) - y)"),
    ("slice-tuple", lambda x, y: x[:, :, 2] * y[:, :, 0:2], lambda x, y: x[..., 2:3] * y[..., 0:2],
     "(Elem(x,2) * Extract(y,0,2))"),
    ("concat", lambda x, s: x.concat(s), lambda x, s: np.concatenate(bcast(x, s), -1), "Concat(x,s)"),
    ("concatenate", lambda LT, x, s, y: LT.concatenate((x, s, y)),
     lambda x, s, y: np.concatenate(bcast(x, s, y), -1), "Concat(Concat(x,s),y)"),
    ("concatenate-list", lambda LT, x, y: LT.concatenate([x * y], axis=-1), lambda x, y: x * y, "(x * y)"),
    ("cat", lambda LT, x, y: LT.cat((y, x), -1), lambda x, y: np.concatenate(bcast(y, x), -1), "Concat(y,x)"),
    ("cat-dim2", lambda LT, x, y: LT.cat([x, y[1:]], 2), lambda x, y: np.concatenate(bcast(x, y[..., 1:]), -1),
     "Concat(x,Extract(y,1,2))"),
    ("one_hot", lambda n, s: n.one_hot(4) * s, lambda n, s: (np.arange(4) == np.trunc(n + 0.5)) * s,
     "(OneHot(n,4) * s)"),
    ("bspline", lambda K, n, s: K.bspline(n, 2) * s, lambda K, n, s: bspline(K, n, 2) * s, "(BSpline(K,n,2) * s)"),
    ("bspline-0", lambda K, n, s: K.bspline(n) * s, lambda K, n, s: bspline(K, n, 0) * s, "(BSpline(K,n,0) * s)"),
    # linear algebra
    ("matvecmult", lambda A, x: A.matvecmult(x), lambda A, x: np.einsum("...ik,...k->...i", matrix(A, 2, 3), x),
     "MatVecMult(A,x)"),
    ("vecmatmult", lambda A, x: x[:2].vecmatmult(A), lambda A, x: np.einsum("...k,...ki->...i", x[..., :2], matrix(A, 2, 3)),
     "VecMatMult(Extract(x,0,2),A)"),
    ("tensorprod", lambda x, y: x.tensorprod(y[:2]),
     lambda x, y: (x[..., :, None] * y[..., None, :2]).reshape(np.broadcast_shapes(x.shape, y.shape)[:-1] + (6,)),
     "TensorProd(x,Extract(y,0,2))"),
    ("tensordot", lambda A, x: A.keops_tensordot(x, [2, 3], [3], [1], [0]),
     lambda A, x: tensordot(A, x, [2, 3], [3], [1], [0]), "TensorDot(A,x,[2,3],[3],[1],[0])"),
    ("tensordot-int", lambda A, x: A.keops_tensordot(x, (2, 3), 3, 1, 0),
     lambda A, x: tensordot(A, x, [2, 3], [3], [1], [0]), "TensorDot(A,x,[2,3],[3],[1],[0])"),
    ("tensordot-perm", lambda A, t, S: (A * t).keops_tensordot(S, [2, 3], [3, 3], [], [], [2, 0, 3, 1]),
     lambda A, t, S: tensordot(A * t, S, [2, 3], [3, 3], [], [], [2, 0, 3, 1]),
     "TensorDot((A * t),S,[2,3],[3,3],[],[],[2,0,3,1])"),
    ("kron", lambda A, w: A.keops_kron(w[:2], [2, 3], [1, 2]), lambda A, w: kron(A, w[..., :2], [2, 3], [1, 2]),
     "Kron(A,Extract(w,0,2),[2,3],[1,2])"),
    ("softdtw", lambda x, y: x.softdtw_sqdist(y, 0.5), lambda x, y: softdtw(x, y, np.array([0.5])),
     "SoftDTW_SqDist(x,y,[0.5])"),
    ("softdtw-lazy-gamma", lambda x, y, t: x.softdtw_sqdist(y[:2], t), lambda x, y, t: softdtw(x, y[..., :2], t),
     "SoftDTW_SqDist(x,Extract(y,0,2),t)"),
    # methods called unbound
    ("unbound", lambda LT, x, y, F: LT.exp(LT.sqdist(x, y) * -1) + LT.clamp(F, -1, 2) + LT.elem(x, 1),
     lambda x, y, F: np.exp(-sq(x - y)) + np.clip(F, -1, 2) + x[..., 1:2],
     "((Exp(Minus(SqDist(x,y))) + ClampInt(F,-1,2)) + Elem(x,1))"),
]

IDS = [c[0] for c in CASES]
assert len(set(IDS)) == len(IDS)


def arg_names(fn):
    return list(fn.__code__.co_varnames[: fn.__code__.co_argcount])


def build(fw, case, dtype):
    """The case's LazyTensor on fw arrays of dtype, and those arrays by name."""
    arrays = {n: fw.array(DATA[n].astype(dtype)) for n in INPUTS}
    helpers = (fw.module.Vi, fw.module.Vj, fw.module.Pm)
    kwargs = {}
    for n in arg_names(case[1]):
        kwargs[n] = fw.module.LazyTensor if n == "LT" else helpers[INPUTS[n][0]](arrays[n])
    return case[1](**kwargs), arrays


def named_formula(lt, arrays):
    """lt.formula with each data variable written as the name of its input, or as [values] for a parameter made
    from Python numbers."""
    values = lt.variables

    def name(match):
        value = values[int(match.group(1))]
        for n, a in arrays.items():
            if value is a:
                return n
        return "[" + ",".join(f"{v:g}" for v in np.asarray(value, dtype=np.float64).tolist()) + "]"

    return re.sub(r"Var\((\d+),\d+,\d\)", name, lt.formula)


def dense(case):
    ref = case[2]
    with np.errstate(all="ignore"):
        full = ref(**{n: dense_input(n) for n in arg_names(ref)})
    return np.broadcast_to(full, (M, N, full.shape[-1]))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_numpy(fw, case, dtype, axis):
    lt, arrays = build(fw, case, dtype)
    assert (lt.ni, lt.nj) == (M, N), "each case must use an i- and a j-variable"
    full = dense(case)
    assert lt.ndim == full.shape[-1]
    result = lt.sum(dim=axis)
    assert isinstance(result, type(arrays["x"])) and result.dtype == arrays["x"].dtype
    expect = full.sum(axis=axis)  # axis 1: sum over j, output indexed by i
    got = fw.numpy(result)
    assert got.shape == expect.shape
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    if case[0].startswith("softdtw") and dtype == np.float32:
        rtol = 1e-4  # a chain of log-sum-exps
    atol = rtol * max(np.abs(full).max(), 1e-3) * full.shape[axis]
    np.testing.assert_allclose(got, expect, rtol=rtol, atol=atol, err_msg=lt.formula)


@pytest.mark.parametrize("case", [c for c in CASES if c[3] is not None], ids=[c[0] for c in CASES if c[3] is not None])
def test_formula(fw, case):
    lt, arrays = build(fw, case, np.float64)
    assert named_formula(lt, arrays) == case[3]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_formula_reparses(case):
    from pykeops.numpy import Pm, Vi, Vj, LazyTensor

    kwargs = {n: LazyTensor if n == "LT" else (Vi, Vj, Pm)[INPUTS[n][0]](DATA[n]) for n in arg_names(case[1])}
    formula = case[1](**kwargs).formula
    printed = _engine.parse(formula)
    assert _engine.parse(printed) == printed
    assert _engine.formula_dim(formula) == case[1](**kwargs).ndim


# ---------------------------------------------------------------------------------------------- dispatch rules


@pytest.fixture
def lt():
    """numpy LazyTensors of the inputs, by name."""
    from pykeops.numpy import Pm, Vi, Vj

    return {n: (Vi, Vj, Pm)[INPUTS[n][0]](DATA[n]) for n in INPUTS}


def assert_reparses(*lts):
    for f in lts:
        printed = _engine.parse(f.formula)
        assert _engine.parse(printed) == printed


def test_pow_dispatch_table(lt):
    x, y, s, p = lt["x"], lt["y"], lt["s"], lt["p"]
    assert_reparses(x**2, x**4, x**0, x**0.5, x**-0.5, x**0.25, x**y, x**s, x**p, x ** [1.0, 2.0, 3.0])
    assert (x**2).formula == "Square(Var(0,3,0))"
    assert (x ** np.float64(2.0)).formula == "Square(Var(0,3,0))"
    assert (x**4).formula == "Pow(Var(0,3,0),4)"
    assert (x ** np.int32(4)).formula == "Pow(Var(0,3,0),4)"
    assert (x**0).formula == "Pow(Var(0,3,0),0)"
    assert (x**0.5).formula == "Sqrt(Var(0,3,0))"
    assert (x**-0.5).formula == "Rsqrt(Var(0,3,0))"
    f = x**0.25
    assert f.formula == "Powf(Var(0,3,0),Var(1,1,2))" and f.variables[1].tolist() == [0.25]
    assert (x**y).ndim == 3 and (x**s).ndim == 3 and (x**p).ndim == 3


def test_comparisons_build_formulas(lt):
    x, y = lt["x"], lt["y"]
    for res in (x == y, x != y, x < y, x > y, x <= y, x >= y, x == 1.5, 2 <= x):
        assert type(res) is type(x) and res.ndim == 3
        assert_reparses(res)


def test_lazytensors_are_unhashable_and_not_iterable(lt):
    x = lt["x"]
    with pytest.raises(TypeError, match="unhashable"):
        hash(x)
    with pytest.raises(TypeError, match="unhashable"):
        {x}
    with pytest.raises(TypeError, match="not iterable"):
        iter(x)
    from pykeops.numpy import ComplexLazyTensor, LazyTensor

    assert LazyTensor.__hash__ is None and ComplexLazyTensor.__hash__ is None


def test_min_max_vector_helper_for_reductions(lt):
    x = lt["x"]
    assert x._vector_op_if_last_axis("Min", -1).formula == "Min(Var(0,3,0))"
    assert x._vector_op_if_last_axis("Max", None, dim=2).formula == "Max(Var(0,3,0))"
    assert x._vector_op_if_last_axis("Min", 0) is None and x._vector_op_if_last_axis("Min", 1) is None


def test_sinc_pi_parameter_takes_the_dtype(fw):
    x = fw.module.Vi(fw.array(DATA["x"].astype(np.float32)))
    pi = x.sinc().variables[0]
    assert fw.numpy(pi).dtype == np.float32 and abs(float(pi[0]) - math.pi) < 1e-6


# ------------------------------------------------------------------------------------------------ error paths

ERRORS = [
    (lambda x, s: x | s, ValueError, r"operation \|: incompatible inner dimensions 3 and 1"),
    (lambda x: x.elem(3), ValueError, r"Elem: index 3 is out of range for dimension 3"),
    (lambda x: x.elem(-1), ValueError, r"Elem: index -1 is out of range"),
    (lambda x: x[3], ValueError, r"Elem: index 3"),
    (lambda x: x.elem(1.0), TypeError, r"Elem: the index must be an int"),
    (lambda x: x.extract(2, 2), ValueError, r"Extract: the range \[2, 4\) is empty or out of bounds for dimension 3"),
    (lambda x: x.extract(-1, 2), ValueError, r"Extract: the range \[-1, 1\)"),
    (lambda x: x.extract(0, 0), ValueError, r"Extract"),
    (lambda x: x.extract(0, 1.5), TypeError, r"Extract: the start and the length must be ints"),
    (lambda x: x[1:5], ValueError, r"Extract: the range \[1, 5\)"),
    (lambda x: x[2:1], ValueError, r"Extract: the range \[2, 1\)"),
    (lambda x: x[-2:], ValueError, r"Extract"),
    (lambda x: x[::2], ValueError, r"step 1"),
    (lambda x: x[0:2.5], TypeError, r"int bounds"),
    (lambda x: x[..., 1], ValueError, r"last axis only.*no Ellipsis"),
    (lambda x: x[...], TypeError, r"int or a slice"),
    (lambda x: x[:, 1:2], ValueError, r"tuple of 3 entries"),
    (lambda x: x[0, :, 1], ValueError, r"last axis only"),
    (lambda x: x[:, :, :, 1], ValueError, r"last axis only"),
    (lambda x: x["a"], TypeError, r"int or a slice"),
    (lambda x: x[True], TypeError, r"int or a slice"),
    (lambda t, y: t**y, ValueError, r"operation Powf: incompatible inner dimensions 1 and 3 .*exponent"),
    (lambda x: x ** np.ones(2), ValueError, r"operation Powf: incompatible inner dimensions 3 and 2"),
    (lambda x, A: x**A, ValueError, r"Powf"),
    (lambda x: x.one_hot(3), ValueError, r"OneHot: the argument must have dimension 1, got 3"),
    (lambda t: t.one_hot(2.5), TypeError, r"OneHot: the dimension D must be a positive int"),
    (lambda t: t.one_hot(0), TypeError, r"OneHot"),
    (lambda K, x: K.bspline(x), ValueError, r"BSpline: the point x must have dimension 1, got 3"),
    (lambda K, t: K.bspline(t, 6), ValueError, r"BSpline: order 6 needs at least 8 knots, got 7"),
    (lambda K, t: K.bspline(t, -1), TypeError, r"BSpline: the order k"),
    (lambda x: x.weightedsqnorm(np.ones(4)), ValueError, r"WeightedSqNorm: the weights must have dim 1, D = 3 or D\^2 = 9"),
    (lambda x, y: x.weightedsqdist(y, [1.0, 2.0]), ValueError, r"WeightedSqNorm"),
    (lambda x, y: x.keops_tensordot(y, [3], [2], [0], [0]), ValueError, r"TensorDot: dimfb = \[2\] must be .*dim 3"),
    (lambda A, x: A.keops_tensordot(x, [3, 2], [3], [1], [0]), ValueError,
     r"TensorDot: contracted axes have sizes 2 and 3"),
    (lambda A, x: A.keops_tensordot(x, [2, 3], [3], [1, 0], [0]), ValueError, r"TensorDot: contfa .* different lengths"),
    (lambda A, x: A.keops_tensordot(x, [2, 3], [3], [2], [0]), ValueError, r"TensorDot: contfa = \[2\] must be distinct axes"),
    (lambda A, x: A.keops_tensordot(x, [2, 3], [3], [1], [0], [1, 1]), ValueError, r"TensorDot: the permutation"),
    (lambda A, x: A.keops_tensordot(x, [2, 3], [3], [1], [0], [0], [0]), TypeError, r"TensorDot: at most one"),
    (lambda A, x: A.keops_tensordot(x, [2, 3.0], [3], [1], [0]), TypeError, r"TensorDot: dimfa must be an int or a list"),
    (lambda A, x: A.keops_kron(x, [2, 3], [3]), ValueError, r"Kron: the shapes \[2, 3\] and \[3\] must have the same"),
    (lambda A, x: A.keops_kron(x, [2, 2], [3]), ValueError, r"Kron"),
    (lambda A, y: A.matvecmult(y[:2].concat(y[:2])), ValueError,
     r"MatVecMult: matrix dimension 6 is not a multiple of vector dimension 4"),
    (lambda A, y: y[:2].concat(y[:2]).vecmatmult(A), ValueError,
     r"VecMatMult: matrix dimension 6 is not a multiple of vector dimension 4"),
    (lambda x, y, p: x.softdtw_sqdist(y, p), ValueError, r"SoftDTW_SqDist: gamma must have dimension 1, got 3"),
    (lambda x: x.norm(0), ValueError, r"last axis"),
    (lambda x: x.round(0.5), TypeError, r"Round: the number of decimals must be an int"),
    (lambda x, s: x.clamp(s, np.ones(2)), ValueError, r"operation Clamp: incompatible inner dimensions 3, 1, 2"),
    (lambda x, A: x.ifelse(A, 1.0), ValueError, r"operation IfElse: incompatible inner dimensions 3, 6, 1"),
    (lambda x, A: x.mod(A), ValueError, r"operation Mod"),
    (lambda x, A: x.atan2(A), ValueError, r"operation Atan2: incompatible inner dimensions 3 and 6"),
    (lambda x, A: x < A, ValueError, r"operation <: incompatible"),
    (lambda x, A: x == A, ValueError, r"operation Equal: incompatible"),
    (lambda LT: LT.concatenate(()), ValueError, r"at least one"),
    (lambda LT, x, y: LT.concatenate((x, y), axis=0), ValueError, r"last axis"),
    (lambda LT, x, y: LT.cat((x, y), 1), ValueError, r"last axis"),
    (lambda LT, x: LT.concatenate((1.0, x)), TypeError, r"concatenates LazyTensors"),
    (lambda x: x.clamp(np.ones((M, 3), dtype=np.float32), 1.0), ValueError, r"axis"),
    (lambda x: x.atan2(2j), TypeError, r"real operands only"),
    (lambda x: x.clamp(0, 1j), TypeError, r"real operands only"),
]


@pytest.mark.parametrize("make, error, match", ERRORS, ids=[f"{k}" for k in range(len(ERRORS))])
def test_errors(lt, make, error, match):
    from pykeops.numpy import LazyTensor

    kwargs = {n: LazyTensor if n == "LT" else lt[n] for n in arg_names(make)}
    with pytest.raises(error, match=match):
        make(**kwargs)


def test_mixing_dtypes_in_new_operations(fw):
    x = fw.module.Vi(fw.array(DATA["x"]))
    y32 = fw.module.Vj(fw.array(DATA["y"].astype(np.float32)))
    for make in (lambda: x.clamp(y32, 2.0), lambda: x.atan2(y32), lambda: x.concat(y32), lambda: x == y32,
                 lambda: x.ifelse(y32, 1.0), lambda: x.keops_kron(y32, [3], [3]), lambda: x**y32):
        with pytest.raises(ValueError, match="dtypes: float64 and float32"):
            make()


def test_mixing_frameworks_in_new_operations():
    torch = pytest.importorskip("torch")
    import pykeops.numpy
    import pykeops.torch

    a = pykeops.numpy.Vi(DATA["x"])
    t = pykeops.torch.Vj(torch.from_numpy(DATA["y"]))
    for make in (lambda: a.clamp(t, 1.0), lambda: a.concat(t), lambda: a < t, lambda: t.tensorprod(a),
                 lambda: pykeops.numpy.LazyTensor.concatenate((a, t)), lambda: a.weightedsqnorm(t)):
        with pytest.raises(TypeError, match="cannot combine a pykeops"):
            make()
    with pytest.raises(TypeError, match="cannot wrap a torch.Tensor"):
        a.atan2(torch.ones(3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------- batch dimensions


def test_operations_with_batch_dimensions(fw):
    rng = np.random.default_rng(3)
    B = 2
    x, y = rng.uniform(0.5, 1.5, (B, M, 1, 3)), rng.uniform(0.5, 1.5, (1, 1, N, 3))
    x_i, y_j = fw.module.LazyTensor(fw.array(x)), fw.module.LazyTensor(fw.array(y))
    LT = fw.module.LazyTensor
    f = LT.concatenate(((x_i.clamp(0.75, 1.25) * y_j)[:, :, :, 1:3], x_i.atan2(y_j), (x_i <= y_j)[:, :, :, 0]), axis=3)
    f = f * (x_i - y_j).norm(3) + x_i.min(-1)
    assert f.shape == (B, M, N, 6) and f.ndim == 6
    printed = _engine.parse(f.formula)
    assert _engine.parse(printed) == printed
    dense_f = np.concatenate(bcast((np.clip(x, 0.75, 1.25) * y)[..., 1:3], np.arctan2(x, y), (x <= y)[..., 0:1]), -1)
    dense_f = dense_f * np.sqrt(sq(x - y)) + x.min(-1, keepdims=True)
    for axis in (1, 2):  # nbatchdims + 0: over i, nbatchdims + 1: over j
        np.testing.assert_allclose(fw.numpy(f.sum(dim=axis)), dense_f.sum(axis), rtol=1e-12)
    with pytest.raises(ValueError, match="tuple of 4 entries"):
        x_i[:, :, 1]
    with pytest.raises(ValueError, match=r"last axis \(-1 or 3\)"):
        x_i.norm(2)
