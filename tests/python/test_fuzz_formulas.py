"""Grammar fuzzing: random well-typed formulas through Genred against a dense NumPy evaluator, and hostile strings.

Hypothesis draws formulas from a grammar of operations over Vi/Vj/Pm variables of dims 1-3 and evaluates each
twice: by Genred on tiny arrays (M, N <= 5, float64) and by a float64 NumPy evaluator of the same tree written
here, compared where the reference is finite. Runs are derandomized (the same examples in every run);
KEOPS_FUZZ_EXAMPLES=n runs n examples per test instead of the default.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pykeops.common.engine import load_engine
from pykeops.numpy import Genred

pytestmark = pytest.mark.engine

EXAMPLES = int(os.environ.get("KEOPS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# name, category, dim: every formula may use any of them; Genred always gets all the arrays.
VARS = [("a", "Vi", 1), ("b", "Vi", 2), ("c", "Vi", 3), ("u", "Vj", 1), ("v", "Vj", 2), ("w", "Vj", 3),
        ("p", "Pm", 1), ("q", "Pm", 2)]
ALIASES = [f"{n} = {cat}({d})" for n, cat, d in VARS]
MAX_DIM = 3


class Expr:
    """A formula's text and dimension, and its dense value: `fn` of its arguments' (M, N, dim) values (of the
    environment name -> array for a leaf). `zero_sign` marks where the value depends on the sign of a zero,
    which the engine, as KeOps, does not keep (0 * f simplifies to +0): those entries are not compared."""

    def __init__(self, text, dim, fn, args=(), zero_sign=None):
        self.text, self.dim, self.fn, self.args, self.zero_sign = text, dim, fn, args, zero_sign

    def __repr__(self):
        return self.text


def evaluate(e, env):
    """(value, ambiguous): arrays broadcastable to (M, N, e.dim)."""
    if not e.args:
        v = e.fn(env)
        return v, np.zeros(v.shape[:-1] + (1,), bool)
    vals, ambs = zip(*(evaluate(a, env) for a in e.args))
    amb = np.logical_or.reduce([a.any(-1, keepdims=True) for a in np.broadcast_arrays(*ambs)])
    if e.zero_sign is not None:
        amb = amb | e.zero_sign(*vals).any(-1, keepdims=True)
    return e.fn(*vals), amb


def _rsqrt(x):
    return np.where(x == 0, 0.0, 1 / np.sqrt(x))


def _sign(x):
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0))  # 0 at NaN


def _xlogx(x):
    return np.where(x == 0, 0.0, x * np.log(x))


def _sinxdivx(x):
    return np.where(x == 0, 1.0, np.sin(x) / x)


def _concat(x, y):
    lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    return np.concatenate([np.broadcast_to(x, lead + x.shape[-1:]), np.broadcast_to(y, lead + y.shape[-1:])], -1)


UNARY = {
    "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Abs": np.abs, "Sin": np.sin, "Cos": np.cos, "Atan": np.arctan,
    "Asin": np.arcsin, "Acos": np.arccos, "Minus": np.negative, "Square": np.square, "Inv": lambda x: 1 / x,
    "Rsqrt": _rsqrt, "Sign": _sign, "Step": lambda x: np.where(x < 0, 0.0, 1.0), "ReLU": lambda x: np.maximum(x, 0),
    "Floor": np.floor, "XLogX": _xlogx, "SinXDivX": _sinxdivx,
}
BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
COMPARE = {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal}
# Where the sign of a zero argument shows in the result: 1/(+-0) = +-inf, atan2(+-0, x < 0) = +-pi.
ZERO_SIGN = {"Inv": lambda x: x == 0, "/": lambda x, y: y == 0, "Atan2": lambda y, x: (y == 0) & (x <= 0)}


def compatible_dim(draw, d):
    """A dimension that broadcasts with d in an element-wise operation: d itself or 1."""
    return draw(st.sampled_from([d, 1]))


def constant(text, value):
    return Expr(text, 1, lambda env: np.full((1, 1, 1), value))


def leaf(draw, dim):
    if dim == 1 and draw(st.booleans()):
        kind = draw(st.sampled_from(["IntCst", "RatCst", "IntInv"]))
        if kind == "IntCst":
            n = draw(st.integers(-3, 3))
            return constant(f"IntCst({n})", float(n))
        if kind == "RatCst":
            p, q = draw(st.integers(-5, 5)), draw(st.sampled_from([-3, -2, 1, 2, 7]))
            return constant(f"RatCst({p},{q})", p / q)
        n = draw(st.sampled_from([-4, -1, 1, 2, 3]))
        return constant(f"IntInv({n})", 1 / n)
    name = draw(st.sampled_from([n for n, _, d in VARS if d == dim]))
    return Expr(name, dim, lambda env: env[name])


def _sum(x):
    return x.sum(-1, keepdims=True)


@st.composite
def formulas(draw, dim, depth):
    """A formula of dimension `dim` whose tree has at most `depth` levels of operations."""
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        return leaf(draw, dim)
    sub = lambda d: draw(formulas(d, depth - 1))  # noqa: E731
    kinds = ["unary", "binary", "binary", "pow", "ifelse", "clamp", "atan2"]
    if dim >= 2:
        kinds += ["concat"]
    if dim < MAX_DIM:
        kinds += ["extract"]
    if dim == 1:
        kinds += ["sqdist", "sum", "elem", "scalprod", "norm", "maxmin", "compare"]
    kind = draw(st.sampled_from(kinds))
    if kind == "unary":
        name, f = draw(st.sampled_from(sorted(UNARY.items())))
        x = sub(dim)
        return Expr(f"{name}({x.text})", dim, f, (x,), ZERO_SIGN.get(name))
    if kind == "binary":
        op, f = draw(st.sampled_from(sorted(BINARY.items())))
        x, y = sub(compatible_dim(draw, dim)), sub(dim)
        if draw(st.booleans()):
            x, y = y, x
        return Expr(f"({x.text} {op} {y.text})", dim, f, (x, y), ZERO_SIGN.get(op))
    if kind == "pow":
        m = draw(st.integers(-2, 4))
        x = sub(dim)
        text = f"Pow({x.text},{m})" if draw(st.booleans()) or m < 0 else f"({x.text})**{m}"
        return Expr(text, dim, lambda x: x ** float(m), (x,), (lambda x: x == 0) if m < 0 else None)
    if kind == "ifelse":
        c, x, y = sub(compatible_dim(draw, dim)), sub(dim), sub(compatible_dim(draw, dim))
        return Expr(f"IfElse({c.text},{x.text},{y.text})", dim, lambda c, x, y: np.where(c >= 0, x, y), (c, x, y))
    if kind == "clamp":
        x, lo, hi = sub(dim), sub(compatible_dim(draw, dim)), sub(compatible_dim(draw, dim))
        return Expr(f"Clamp({x.text},{lo.text},{hi.text})", dim,
                    lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), (x, lo, hi))
    if kind == "atan2":
        y, x = sub(dim), sub(compatible_dim(draw, dim))
        return Expr(f"Atan2({y.text},{x.text})", dim, np.arctan2, (y, x), ZERO_SIGN["Atan2"])
    if kind == "concat":
        d1 = draw(st.integers(1, dim - 1))
        x, y = sub(d1), sub(dim - d1)
        return Expr(f"Concat({x.text},{y.text})", dim, _concat, (x, y))
    if kind == "extract":
        big = draw(st.integers(dim + 1, MAX_DIM))
        start = draw(st.integers(0, big - dim))
        x = sub(big)
        return Expr(f"Extract({x.text},{start},{dim})", dim, lambda x: x[..., start:start + dim], (x,))
    d = draw(st.integers(1, MAX_DIM))  # the dimension of the argument of the scalar-valued operations below
    if kind == "sqdist":
        x, y = sub(d), sub(compatible_dim(draw, d))
        return Expr(f"SqDist({x.text},{y.text})", 1, lambda x, y: _sum((x - y) ** 2), (x, y))
    if kind == "sum":
        x = sub(d)
        return Expr(f"Sum({x.text})", 1, _sum, (x,))
    if kind == "elem":
        k = draw(st.integers(0, d - 1))
        x = sub(d)
        return Expr(f"Elem({x.text},{k})", 1, lambda x: x[..., k:k + 1], (x,))
    if kind == "scalprod":
        x, y = sub(d), sub(d)
        return Expr(f"({x.text}|{y.text})", 1, lambda x, y: _sum(x * y), (x, y))
    if kind == "norm":
        x = sub(d)
        if draw(st.booleans()):
            return Expr(f"SqNorm2({x.text})", 1, lambda x: _sum(x**2), (x,))
        return Expr(f"Norm2({x.text})", 1, lambda x: np.sqrt(_sum(x**2)), (x,))
    if kind == "maxmin":
        name = draw(st.sampled_from(["Max", "Min"]))
        x = sub(d)
        f = np.max if name == "Max" else np.min
        return Expr(f"{name}({x.text})", 1, lambda x: f(x, axis=-1, keepdims=True), (x,))
    op, f = draw(st.sampled_from(sorted(COMPARE.items())))
    x, y = sub(1), sub(1)
    return Expr(f"({x.text} {op} {y.text})", 1, lambda x, y: f(x, y).astype(float), (x, y))


def arrays(seed, M, N):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, (M if cat == "Vi" else N, d) if cat != "Pm" else (d,)) for _, cat, d in VARS]


def dense(expr, args, M, N):
    """The (M, N, dim) values of the formula at every pair (i, j), and where they depend on the sign of a zero."""
    env = {}
    for (name, cat, d), a in zip(VARS, args):
        env[name] = a[:, None, :] if cat == "Vi" else a[None, :, :] if cat == "Vj" else a[None, None, :]
    with np.errstate(all="ignore"):
        v, amb = evaluate(expr, env)
    return np.broadcast_to(v, (M, N, expr.dim)).astype(np.float64), np.broadcast_to(amb, (M, N, expr.dim))


@FUZZ
@given(dim=st.integers(1, MAX_DIM), data=st.data(), M=st.integers(1, 5), N=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1), axis=st.sampled_from([0, 1]), reduction=st.sampled_from(["Sum", "Min", "Max"]))
def test_random_formula_matches_dense_reference(dim, data, M, N, seed, axis, reduction):
    expr = data.draw(formulas(dim, 4), label="formula")
    args = arrays(seed, M, N)
    try:
        got = Genred(expr.text, ALIASES, reduction_op=reduction, axis=axis)(*args, backend="CPU")
    except ValueError as e:  # the grammar may write f / 0 in a form that simplifies to it: rejected by design
        assume("division by the constant zero" not in str(e))
        raise
    terms, ambiguous = dense(expr, args, M, N)
    assert got.shape == (M if axis == 1 else N, dim)
    reduced_axis = 1 if axis == 1 else 0
    if reduction == "Sum":
        ref = terms.sum(reduced_axis)
        scale = np.abs(terms).sum(reduced_axis)  # the conditioning of the sum
        ok = np.isfinite(ref) & np.isfinite(scale)
    else:
        ref = terms.min(reduced_axis) if reduction == "Min" else terms.max(reduced_axis)
        scale = np.abs(ref)
        ok = ~np.isnan(terms).any(reduced_axis) & np.isfinite(ref)  # rows with a NaN term: convention-dependent
    ok &= ~ambiguous.any(reduced_axis)
    with np.errstate(invalid="ignore"):
        bad = ok & ~(np.abs(got - ref) <= 1e-9 * scale + 1e-12)
    assert not bad.any(), f"{expr.text}: {reduction} over axis {axis}: got {got[bad]}, expected {ref[bad]}"


# Tokens of hostile formulas: names (operations, reductions, aliases, unknown), small integers, punctuation.
OP_NAMES = [op["name"] for op in load_engine().operations()]
TOKENS = sorted(set(OP_NAMES)) + [
    "Sum_Reduction", "KMin_Reduction", "Grad_WithSavedForward", "Vi", "Vj", "Pm", "Var", "a", "b", "c", "u", "w",
    "p", "q", "zz", "0", "1", "2", "3", "-1", "7", "0.5", "1e3", "(", ")", "(", ")", ",", ",", "[", "]", "+", "-",
    "*", "/", "**", "|", "<", ">", "<=", ">=", "==", "!=", "=", "$", "#", "é", "\\", "'", '"', "\t", "",
]
HOSTILE_ALIASES = st.lists(st.sampled_from(["x", "=", "Vi", "Vj", "Pm", "Var", "(", ")", ",", "-1", "0", "1", "3",
                                            "2", "Vx", "é", ""]), max_size=8).map(" ".join)


@FUZZ
@given(tokens=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=24), sep=st.sampled_from(["", " "]),
       bad_alias=st.none() | HOSTILE_ALIASES, reduction=st.sampled_from(["Sum", "Min", "KMin", "LogSumExp"]),
       axis=st.sampled_from([0, 1]))
def test_hostile_strings_raise_user_errors_only(tokens, sep, bad_alias, reduction, axis):
    formula = sep.join(tokens)
    aliases = ALIASES if bad_alias is None else ALIASES[:3] + [bad_alias]
    args = arrays(0, 3, 4)
    try:
        f = Genred(formula, aliases, reduction_op=reduction, axis=axis, opt_arg=2 if reduction == "KMin" else None)
        f(*args[:len(aliases)], backend="CPU")
    except (ValueError, TypeError, NotImplementedError):
        pass


def test_fuzz_dictionary_lists_every_operation():
    # tests/fuzz/formula.dict guides libFuzzer (make fuzz) with the words of the language: it follows the table.
    words = {line.strip().strip('"') for line in (Path(__file__).parents[1] / "fuzz" / "formula.dict").open()
             if line.startswith('"')}
    missing = sorted(set(OP_NAMES) - words)
    assert OP_NAMES and not missing, f"add to tests/fuzz/formula.dict: {missing}"
