"""Every Genred reduction and LazyTensor reduction method against dense float64 references written here.

Both axes, float32 and float64, NumPy and torch; ties (smallest index wins), NaN skipping, log-sum-exp of
huge exponents, empty reduced sets, out= for every kind of output, accuracy options, generic_* helpers.
"""

import numpy as np
import pytest

pytestmark = pytest.mark.engine

M, N = 7, 9
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


# ------------------------------------------------------------------------------------------ references


def reduced_last(F, axis):
    """F (M, N, D) with the reduced index moved to axis 1: (n_out, n_red, D)."""
    return F if axis == 1 else F.transpose(1, 0, 2)


def masked_min_arg(R, largest=False):
    """(values, indices) of the min (max) over axis 1 skipping NaN, ties to the smallest index."""
    S = np.where(np.isnan(R), np.inf, R) if not largest else np.where(np.isnan(R), np.inf, -R)
    idx = np.argmin(S, axis=1)
    vals = np.take_along_axis(R, idx[:, None, :], axis=1)[:, 0, :]
    return vals, idx


def k_smallest(R, K):
    """K smallest values (ascending, NaN skipped) and their indices (stable: ties by index): (n, K, D)."""
    S = np.where(np.isnan(R), np.inf, R)
    idx = np.argsort(S, axis=1, kind="stable")[:, :K, :]
    return np.take_along_axis(R, idx, axis=1), idx


def lse_parts(F, G):
    """m = max F, s = sum exp(F - m) * G, over axis 1: F (n, r, 1), G (n, r, DG)."""
    m = F.max(axis=1)
    return m, (np.exp(F - m[:, None, :]) * G).sum(axis=1)


def reference(op, F, G=None, K=None, axis=1):
    """Dense result of a Genred reduction_op over F (M, N, D), weights G (M, N, DG), reducing `axis`."""
    R = reduced_last(np.asarray(F, dtype=np.float64), axis)
    if op == "Sum":
        return R.sum(axis=1)
    if op in ("Min", "ArgMin", "Min_ArgMin"):
        vals, idx = masked_min_arg(R)
        return {"Min": vals, "ArgMin": idx, "Min_ArgMin": (vals, idx)}[op]
    if op in ("Max", "ArgMax", "Max_ArgMax"):
        vals, idx = masked_min_arg(R, largest=True)
        return {"Max": vals, "ArgMax": idx, "Max_ArgMax": (vals, idx)}[op]
    if op in ("KMin", "ArgKMin", "KMin_ArgKMin"):
        vals, idx = k_smallest(R, K)
        if R.shape[2] == 1:
            vals, idx = vals[:, :, 0], idx[:, :, 0]
        return {"KMin": vals, "ArgKMin": idx, "KMin_ArgKMin": (vals, idx)}[op]
    G = np.ones(R.shape[:2] + (1,)) if G is None else reduced_last(np.asarray(G, dtype=np.float64), axis)
    m, s = lse_parts(R, G)
    if op in ("Max_SumShiftExp", "Max_SumShiftExpWeight"):
        return np.concatenate([m, s], axis=1)
    if op in ("LogSumExp", "LogSumExpWeight"):
        return m + np.log(s)
    if op in ("SumSoftMaxWeight", "SoftMax"):
        return s / np.exp(R - m[:, None, :]).sum(axis=1)
    raise AssertionError(op)


def check(got, ref, dtype, indices=False):
    """Compare a NumPy result with its reference: int64 indices exactly, values within the dtype's tolerance."""
    assert got.shape == ref.shape
    if indices:
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, ref)
    else:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **TOL[dtype])


def as_numpy(fw, got):
    return tuple(fw.numpy(t) for t in got) if isinstance(got, tuple) else fw.numpy(got)


def check_any(got, ref, dtype, op):
    """check() for a NumPy result that is an array or a (values, indices) pair."""
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == 2
        check(got[0], ref[0], dtype)
        check(got[1], ref[1], dtype, indices=True)
    else:
        check(got, ref, dtype, indices=op.startswith("Arg"))


def assert_result(fw, got, ref, dtype, indices=False):
    check(fw.numpy(got), ref, dtype, indices)


def assert_any(fw, got, ref, dtype, op):
    check_any(as_numpy(fw, got), ref, dtype, op)


def random_data(D=3, dtype=np.float64, seed=0, M=M, N=N):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((M, D)).astype(dtype), rng.standard_normal((N, D)).astype(dtype)


# x - y is computed exactly alike by NumPy and by the engine in either dtype: exact comparisons of
# minima and indices are then meaningful.
def difference(x, y):
    return x[:, None, :] - y[None, :, :]


# ---------------------------------------------------------------------------------- every reduction


VECTOR_OPS = ["Sum", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("D", [1, 3])
@pytest.mark.parametrize("op", VECTOR_OPS)
def test_vector_reductions(fw, op, D, axis, dtype):
    x, y = random_data(D, dtype)
    K = 4 if op.startswith(("KMin", "ArgKMin")) else None
    g = fw.module.Genred("x - y", [f"x = Vi({D})", f"y = Vj({D})"], reduction_op=op, axis=axis, opt_arg=K)
    got = g(fw.array(x), fw.array(y))
    ref = reference(op, difference(x, y), K=K, axis=axis)
    assert_any(fw, got, ref, dtype, op)


LSE_OPS = [
    ("LogSumExp", None), ("LogSumExp", "b * c"), ("LogSumExpWeight", "b * c"), ("Max_SumShiftExp", None),
    ("Max_SumShiftExpWeight", "b * c"), ("SumSoftMaxWeight", "b * c"), ("SoftMax", "b"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op, formula2", LSE_OPS)
def test_logsumexp_family(fw, op, formula2, axis, dtype):
    x, y = random_data(3, dtype)
    rng = np.random.default_rng(5)
    b, c = rng.uniform(0.5, 2, (N, 2)).astype(dtype), rng.uniform(0.5, 2, (M, 2)).astype(dtype)
    aliases = ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)", "c = Vi(2)"]
    g = fw.module.Genred("-SqDist(x,y)", aliases, reduction_op=op, axis=axis, formula2=formula2)
    got = g(*(fw.array(a) for a in (x, y, b, c)))
    F = -(difference(x, y).astype(np.float64) ** 2).sum(-1, keepdims=True)
    G = {None: None, "b": np.broadcast_to(b[None], (M, N, 2)), "b * c": b[None] * c[:, None].astype(np.float64)}
    assert_result(fw, got, reference(op, F, G[formula2], axis=axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_huge_exponents(fw, dtype):
    # Row 0: exponents around +1e4, row 1: around -1e4 (exp over/underflows without the max shift).
    x = np.array([[1e4], [-1e4], [0.0]], dtype=dtype)
    y = np.linspace(-3, 3, 11, dtype=dtype)[:, None]
    g = fw.module.Genred("x + y", ["x = Vi(1)", "y = Vj(1)"], reduction_op="LogSumExp", axis=1)
    got = fw.numpy(g(fw.array(x), fw.array(y)))
    F = x.astype(np.float64) + y[:, 0].astype(np.float64)[None]
    ref = F.max(1, keepdims=True) + np.log(np.exp(F - F.max(1, keepdims=True)).sum(1, keepdims=True))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    weights = np.full((11, 1), 2.0, dtype=dtype)
    g = fw.module.Genred("x + y", ["x = Vi(1)", "y = Vj(1)", "w = Vj(1)"], reduction_op="LogSumExp", formula2="w", axis=1)
    got = fw.numpy(g(fw.array(x), fw.array(y), fw.array(weights)))
    np.testing.assert_allclose(got, ref + np.log(2.0), rtol=1e-6 if dtype == np.float32 else 1e-13)
    softmax = fw.module.Genred("x + y", ["x = Vi(1)", "y = Vj(1)", "w = Vj(1)"], reduction_op="SumSoftMaxWeight",
                               formula2="w", axis=1)
    np.testing.assert_allclose(fw.numpy(softmax(fw.array(x), fw.array(y), fw.array(weights))), 2.0, rtol=1e-6)


# ------------------------------------------------------------------------------------------ ties and NaN


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op", ["Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin"])
def test_ties_resolve_to_the_smallest_index(fw, op, axis, dtype):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, (M, 2)).astype(dtype)
    y = rng.integers(0, 3, (N, 2)).astype(dtype)  # many equal values in every row
    K = 5 if "K" in op else None
    g = fw.module.Genred("x * y", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=axis, opt_arg=K)
    ref = reference(op, x[:, None, :].astype(np.float64) * y[None, :, :], K=K, axis=axis)
    assert_any(fw, g(fw.array(x), fw.array(y)), ref, dtype, op)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op", ["Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin"])
def test_nan_values_are_skipped(fw, op, axis):
    x, y = random_data(2, seed=3)
    y[[1, 4]] = np.nan  # F is NaN on whole columns j = 1, 4 ...
    x[2, 0] = np.nan  # ... and on the first component of row i = 2
    K = 3 if "K" in op else None
    g = fw.module.Genred("x - y", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=axis, opt_arg=K)
    ref = reference(op, difference(x, y), K=K, axis=axis)
    got = as_numpy(fw, g(fw.array(x), fw.array(y)))
    # Outputs whose reduced values are all NaN (row i = 2, component 0 for axis=1; outputs j = 1, 4 for axis=0)
    # are not checked: any value is acceptable there.
    keep = np.ones(M if axis == 1 else N, dtype=bool)
    keep[[2] if axis == 1 else [1, 4]] = False
    select = (lambda t: tuple(a[keep] for a in t)) if isinstance(ref, tuple) else (lambda a: a[keep])
    check_any(select(got), select(ref), np.float64, op)


# -------------------------------------------------------------------------------------- empty reductions


@pytest.mark.parametrize(
    "op, formula, neutral",
    [
        ("Sum", "x - y", 0.0), ("Min", "x - y", np.inf), ("Max", "x - y", -np.inf),
        ("LogSumExp", "SqDist(x,y)", -np.inf),
    ],
)
def test_empty_reduced_set_gives_the_neutral_value(fw, op, formula, neutral):
    x, y = random_data(1, M=4, N=0)
    g = fw.module.Genred(formula, ["x = Vi(1)", "y = Vj(1)"], reduction_op=op, axis=1)
    got = fw.numpy(g(fw.array(x), fw.array(y)))
    assert got.shape == (4, 1)
    np.testing.assert_array_equal(got, neutral)


def test_empty_reduced_set_raw_max_sumshiftexp(fw):
    x, y = random_data(1, M=4, N=0)
    g = fw.module.Genred("SqDist(x,y)", ["x = Vi(1)", "y = Vj(1)"], reduction_op="Max_SumShiftExp", axis=1)
    got = fw.numpy(g(fw.array(x), fw.array(y)))
    np.testing.assert_array_equal(got, np.array([[-np.inf, 0.0]] * 4))


@pytest.mark.parametrize("op, K", [("ArgMin", None), ("ArgMax", None), ("Min_ArgMin", None), ("Max_ArgMax", None),
                                   ("KMin", 1), ("ArgKMin", 2), ("KMin_ArgKMin", 1)])
def test_empty_reduced_set_errors(fw, op, K):
    x, y = random_data(1, M=4, N=0)
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], reduction_op=op, axis=1, opt_arg=K)
    with pytest.raises(ValueError):
        g(fw.array(x), fw.array(y))


@pytest.mark.parametrize("op", ["KMin", "ArgKMin", "KMin_ArgKMin"])
def test_k_larger_than_the_reduced_size(fw, op):
    x, y = random_data(2, M=3, N=4)
    g = fw.module.Genred("x - y", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=1, opt_arg=5)
    with pytest.raises(ValueError, match="5"):
        g(fw.array(x), fw.array(y))
    g = fw.module.Genred("x - y", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=1, opt_arg=4)
    got = g(fw.array(x), fw.array(y))  # K equal to the reduced size is fine
    assert_any(fw, got, reference(op, difference(x, y), K=4), np.float64, op)


@pytest.mark.parametrize("op, K", [("ArgMin", None), ("KMin", 2), ("Min_ArgMin", None), ("LogSumExp", None)])
def test_empty_output(fw, op, K):
    x, y = random_data(1, M=0, N=5)
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], reduction_op=op, axis=1, opt_arg=K)
    got = g(fw.array(x), fw.array(y))
    shapes = [tuple(t.shape) for t in (got if isinstance(got, tuple) else (got,))]
    assert shapes == [(0, K) if K else (0, 1)] * len(shapes)


# ------------------------------------------------------------------------------------------------ out=


@pytest.mark.parametrize(
    "op, K, shapes, kinds",
    [
        ("Min", None, [(M, 3)], ["values"]),
        ("ArgMax", None, [(M, 3)], ["indices"]),
        ("Min_ArgMin", None, [(M, 3), (M, 3)], ["values", "indices"]),
        ("KMin", 2, [(M, 2, 3)], ["values"]),
        ("ArgKMin", 2, [(M, 2, 3)], ["indices"]),
        ("KMin_ArgKMin", 2, [(M, 2, 3), (M, 2, 3)], ["values", "indices"]),
        ("LogSumExp", None, [(M, 1)], ["values"]),
        ("Max_SumShiftExp", None, [(M, 2)], ["values"]),
        ("SumSoftMaxWeight", None, [(M, 3)], ["values"]),
    ],
)
def test_out_for_every_output_kind(fw, op, K, shapes, kinds):
    x, y = random_data(3)
    scalar = op in ("LogSumExp", "Max_SumShiftExp", "SumSoftMaxWeight")
    formula = "-SqDist(x,y)" if scalar else "x - y"
    g = fw.module.Genred(formula, ["x = Vi(3)", "y = Vj(3)"], reduction_op=op, axis=1, opt_arg=K,
                         formula2="y" if op == "SumSoftMaxWeight" else None)
    outs = tuple(fw.array(np.full(s, 7, dtype=np.float64 if k == "values" else np.int64)) for s, k in zip(shapes, kinds))
    out = outs if len(outs) == 2 else outs[0]
    got = g(fw.array(x), fw.array(y), out=out)
    expected = g(fw.array(x), fw.array(y))
    if len(outs) == 2:
        assert got[0] is outs[0] and got[1] is outs[1]
        for o, e in zip(outs, expected):
            np.testing.assert_array_equal(fw.numpy(o), fw.numpy(e))
    else:
        assert got is outs[0]
        np.testing.assert_array_equal(fw.numpy(outs[0]), fw.numpy(expected))


def test_bad_out_for_indices_and_pairs(fw):
    x, y = random_data(3)
    args = (fw.array(x), fw.array(y))
    argmin = fw.module.Genred("x - y", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgMin", axis=1)
    with pytest.raises(ValueError, match="out has dtype float64 but the indices are int64"):
        argmin(*args, out=fw.array(np.zeros((M, 3))))
    pair = fw.module.Genred("x - y", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min_ArgMin", axis=1)
    with pytest.raises(TypeError, match="out must be a tuple of 2 arrays"):
        pair(*args, out=fw.array(np.zeros((M, 3))))
    with pytest.raises(ValueError, match="the indices are int64"):
        pair(*args, out=(fw.array(np.zeros((M, 3))), fw.array(np.zeros((M, 3)))))
    with pytest.raises(ValueError, match=r"out should have shape \(7, 2, 3\)"):
        kmin = fw.module.Genred("x - y", ["x = Vi(3)", "y = Vj(3)"], reduction_op="KMin", opt_arg=2, axis=1)
        kmin(*args, out=fw.array(np.zeros((M, 6))))


# --------------------------------------------------------------------------------------- accuracy options


def test_float64_accumulation_of_float32_data(fw):
    rng = np.random.default_rng(7)
    x = np.ones((3, 1), dtype=np.float32)
    y = rng.uniform(0, 1, (200_000, 1)).astype(np.float32)
    exact = (x.astype(np.float64) * y.astype(np.float64).T).sum(1, keepdims=True)
    for kwargs in ({"dtype_acc": "float64"}, {"use_double_acc": True}):
        g = fw.module.Genred("x * y", ["x = Vi(1)", "y = Vj(1)"], axis=1, **kwargs)
        got = fw.numpy(g(fw.array(x), fw.array(y)))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, exact, rtol=1e-7)
    g = fw.module.Genred("x * y", ["x = Vi(1)", "y = Vj(1)"], reduction_op="LogSumExp", axis=1, use_double_acc=True)
    ref = np.log(np.exp(y.astype(np.float64)).sum())
    np.testing.assert_allclose(fw.numpy(g(fw.array(x), fw.array(y))), ref, rtol=1e-6)


@pytest.mark.parametrize("scheme", ["auto", "direct_sum", "block_sum", "kahan_scheme"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_schemes(fw, scheme, dtype):
    x, y = random_data(3, dtype, M=5, N=3000)
    g = fw.module.Genred("x - y", ["x = Vi(3)", "y = Vj(3)"], axis=1, sum_scheme=scheme)
    ref = difference(x, y).astype(np.float64).sum(1)
    np.testing.assert_allclose(fw.numpy(g(fw.array(x), fw.array(y))), ref, rtol=1e-4 if dtype == np.float32 else 1e-11)


def test_kahan_beats_direct_sum_in_float32(fw):
    y = np.random.default_rng(1).uniform(0, 1, (100_000, 1)).astype(np.float32)
    x = np.ones((1, 1), dtype=np.float32)
    exact = y.astype(np.float64).sum()
    errors = {}
    for scheme in ("direct_sum", "kahan_scheme"):
        g = fw.module.Genred("x * y", ["x = Vi(1)", "y = Vj(1)"], axis=1, sum_scheme=scheme)
        errors[scheme] = abs(float(fw.numpy(g(fw.array(x), fw.array(y)))[0, 0]) - exact)
    assert errors["kahan_scheme"] <= errors["direct_sum"]
    assert errors["kahan_scheme"] / exact < 1e-6


@pytest.mark.parametrize("reduction_op", ["LogSumExpWeight", "SumSoftMaxWeight"])
def test_shift_exp_block_sum_matches_direct_sum(fw, reduction_op):
    # the block scheme of Max_SumShiftExpWeight: blocks folded into the total with the log-sum-exp combine rule
    x, y = random_data(3, np.float64, M=7, N=3000)
    b = np.random.default_rng(3).standard_normal((3000, 2))
    out = {}
    for scheme in ("direct_sum", "block_sum"):
        g = fw.module.Genred("-SqDist(x, y)", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], reduction_op=reduction_op, axis=1,
                             formula2="b" if reduction_op == "SumSoftMaxWeight" else "b*0+1", sum_scheme=scheme)
        out[scheme] = fw.numpy(g(fw.array(x), fw.array(y), fw.array(b)))
    np.testing.assert_allclose(out["block_sum"], out["direct_sum"], rtol=1e-12)


# ------------------------------------------------------------------------------- LazyTensor reductions


def lazy_pair(fw, D=3, dtype=np.float64, seed=0):
    x, y = random_data(D, dtype, seed)
    return x, y, fw.module.Vi(fw.array(x)) - fw.module.Vj(fw.array(y))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize(
    "method, op, K",
    [
        ("sum", "Sum", None), ("sum_reduction", "Sum", None), ("min", "Min", None), ("min_reduction", "Min", None),
        ("max", "Max", None), ("max_reduction", "Max", None), ("argmin", "ArgMin", None),
        ("argmin_reduction", "ArgMin", None), ("argmax", "ArgMax", None), ("argmax_reduction", "ArgMax", None),
        ("min_argmin", "Min_ArgMin", None), ("min_argmin_reduction", "Min_ArgMin", None),
        ("max_argmax", "Max_ArgMax", None), ("max_argmax_reduction", "Max_ArgMax", None),
        ("Kmin", "KMin", 3), ("Kmin_reduction", "KMin", 3), ("argKmin", "ArgKMin", 3),
        ("argKmin_reduction", "ArgKMin", 3), ("Kmin_argKmin", "KMin_ArgKMin", 3),
        ("Kmin_argKmin_reduction", "KMin_ArgKMin", 3),
    ],
)
def test_lazytensor_reduction_methods(fw, method, op, K, axis):
    x, y, D_ij = lazy_pair(fw)
    args = () if K is None else (K,)
    ref = reference(op, difference(x, y), K=K, axis=axis)
    assert_any(fw, getattr(D_ij, method)(*args, axis=axis), ref, np.float64, op)
    assert_any(fw, getattr(D_ij, method)(*args, dim=axis), ref, np.float64, op)
    reduction = getattr(D_ij, method)(*args, dim=axis, call=False)
    assert callable(reduction) and reduction.reduction_op == op
    assert_any(fw, reduction(), ref, np.float64, op)


@pytest.mark.parametrize("axis", [0, 1])
def test_lazytensor_logsumexp_and_softmax(fw, axis):
    x, y = random_data(3)
    b = np.random.default_rng(4).uniform(0.5, 2, (N, 2))
    lt = fw.module
    S_ij = -lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(y)))
    b_j = lt.Vj(fw.array(b))
    F = -(difference(x, y) ** 2).sum(-1, keepdims=True)
    G = np.broadcast_to(b[None], (M, N, 2))
    assert_result(fw, S_ij.logsumexp(axis), reference("LogSumExp", F, axis=axis), np.float64)
    assert_result(fw, S_ij.logsumexp_reduction(dim=axis), reference("LogSumExp", F, axis=axis), np.float64)
    weighted = reference("LogSumExp", F, G, axis=axis)
    assert_result(fw, S_ij.logsumexp(axis, weight=b_j), weighted, np.float64)
    assert_result(fw, S_ij.logsumexp(dim=axis, other=b_j), weighted, np.float64)
    softmax = reference("SumSoftMaxWeight", F, G, axis=axis)
    assert_result(fw, S_ij.sumsoftmaxweight(b_j, axis=axis), softmax, np.float64)
    assert_result(fw, S_ij.sumsoftmaxweight_reduction(b_j, dim=axis), softmax, np.float64)
    reduced = S_ij.logsumexp(axis, weight=b_j, call=False)
    assert reduced.formula2 is not None and reduced.formula2.startswith("Var(")


def test_lazytensor_weight_with_symbolic_variables(fw):
    x, y = random_data(3)
    b = np.random.default_rng(4).uniform(0.5, 2, (N, 1))
    lt = fw.module
    S_ij = -lt.Vi(0, 3).sqdist(lt.Vj(1, 3))
    reduction = S_ij.sumsoftmaxweight(lt.Vj(2, 1), axis=1)
    assert callable(reduction)
    F = -(difference(x, y) ** 2).sum(-1, keepdims=True)
    ref = reference("SumSoftMaxWeight", F, np.broadcast_to(b[None], (M, N, 1)))
    assert_result(fw, reduction(*(fw.array(a) for a in (x, y, b))), ref, np.float64)


def test_vector_form_and_reduction_form_coexist(fw):
    x, y, D_ij = lazy_pair(fw)
    vector_min = D_ij.min()  # axis -1: the Min operation over the inner dimension, a LazyTensor
    assert vector_min.ndim == 1 and vector_min.formula.startswith("Min(")
    assert_result(fw, vector_min.sum(dim=1), difference(x, y).min(-1).sum(1, keepdims=True), np.float64)
    assert_result(fw, D_ij.min(dim=1), reference("Min", difference(x, y)), np.float64)
    assert D_ij.sum(-1).formula.startswith("Sum(") and D_ij.sum(2).ndim == 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda D: D.min(axis=3), ValueError, "axis"),
        (lambda D: D.argKmin(0, dim=1), ValueError, "K"),
        (lambda D: D.argKmin(2.5, dim=1), TypeError, "K"),
        (lambda D: D.min_argmin(), ValueError, "axis"),
        (lambda D: D.Kmin(2, dim=1, sum_scheme="kahan_scheme"), ValueError, "sum-type"),
        (lambda D: D.argmin(dim=1, use_double_acc=True), ValueError, "sum-type"),
        (lambda D: D.logsumexp(1, weight=D, other=D), TypeError, "not both"),
        (lambda D: D.min(dim=1, alpha=2), TypeError, "alpha"),
    ],
)
def test_lazytensor_reduction_errors(fw, call, error, match):
    with pytest.raises(error, match=match):
        call(lazy_pair(fw)[2])


def test_lazytensor_out_and_call_time_kwargs(fw):
    x, y, D_ij = lazy_pair(fw)
    out = (fw.array(np.zeros((M, 2, 3))), fw.array(np.zeros((M, 2, 3), dtype=np.int64)))
    got = D_ij.Kmin_argKmin(2, dim=1, out=out, backend="CPU")
    assert got[0] is out[0] and got[1] is out[1]
    assert_any(fw, got, reference("KMin_ArgKMin", difference(x, y), K=2), np.float64, "KMin_ArgKMin")
    reduction = D_ij.argmin(dim=0, call=False)
    idx = fw.array(np.zeros((N, 3), dtype=np.int64))
    assert reduction(out=idx) is idx
    np.testing.assert_array_equal(fw.numpy(idx), reference("ArgMin", difference(x, y), axis=0))
    with pytest.raises(RuntimeError, match="no GPU backend"):
        reduction(backend="GPU")


# ------------------------------------------------------------------------------------ generic_* helpers


def test_generic_helpers(fw):
    x, y = random_data(3)
    X, Y = fw.array(x), fw.array(y)
    mod = fw.module
    sq = (difference(x, y) ** 2).sum(-1, keepdims=True)
    assert_result(fw, mod.generic_sum("SqDist(x,y)", "s = Vi(1)", "x = Vi(3)", "y = Vj(3)")(X, Y), sq.sum(1), np.float64)
    assert_result(fw, mod.generic_sum("SqDist(x,y)", "s = Vj(1)", "x = Vi(3)", "y = Vj(3)")(X, Y), sq.sum(0), np.float64)
    lse = mod.generic_logsumexp("-SqDist(x,y)", "s = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    assert_result(fw, lse(X, Y), reference("LogSumExp", -sq), np.float64)
    argmin = mod.generic_argmin("SqDist(x,y)", "a = Vj(1)", "x = Vi(3)", "y = Vj(3)")
    assert_result(fw, argmin(X, Y), reference("ArgMin", sq, axis=0), np.float64, indices=True)
    argkmin = mod.generic_argkmin("SqDist(x,y)", "a = Vi(4)", "x = Vi(3)", "y = Vj(3)")
    assert_result(fw, argkmin(X, Y), reference("ArgKMin", sq, K=4), np.float64, indices=True)
    with pytest.raises(ValueError, match="'name = Vi\\(dim\\)'"):
        mod.generic_sum("SqDist(x,y)", "s = Pm(1)", "x = Vi(3)", "y = Vj(3)")
    assert mod.generic_sum.__module__ == f"pykeops.{fw.name}.operations"


def test_genred_with_options_pickles(fw):
    import pickle

    x, y = random_data(2)
    g = fw.module.Genred("x - y", ["x = Vi(2)", "y = Vj(2)"], reduction_op="KMin_ArgKMin", opt_arg=2, axis=1)
    h = pickle.loads(pickle.dumps(g))
    assert (h.reduction_op, h.opt_arg, h.formula) == ("KMin_ArgKMin", 2, g.formula)
    assert_any(fw, h(fw.array(x), fw.array(y)), reference("KMin_ArgKMin", difference(x, y), K=2), np.float64, "KMin_ArgKMin")


def test_lazytensor_backend_attribute_and_gpu_only_options(fw):
    x, y, D_ij = lazy_pair(fw)
    ref = reference("Max", difference(x, y))
    assert_result(fw, D_ij.max(dim=1, enable_chunks=False, use_fast_math=False, device_id=0), ref, np.float64)
    D_ij.backend = "CPU"  # the default backend of the reductions of D_ij and of what is built on it
    assert_result(fw, (D_ij * 1.0).max(dim=1), ref, np.float64)
    D_ij.backend = "GPU"
    with pytest.raises(RuntimeError, match="no GPU backend"):
        D_ij.max(dim=1)
    assert_result(fw, D_ij.max(dim=1, backend="auto"), ref, np.float64)  # a call-time backend wins
    other = fw.module.Vi(fw.array(x))
    other.backend = "CPU"
    with pytest.raises(ValueError, match="different backends"):
        D_ij + other


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,K", [("ArgMin", None), ("ArgMax", None), ("Min_ArgMin", None), ("ArgKMin", 7),
                                  ("KMin_ArgKMin", 40)])
def test_selections_with_many_ties_and_intervals_in_reverse_order(dtype, op, K):
    """Ties resolve to the smallest index whatever the order in which the reduced indices are visited (here the
    second half of j before the first, through ranges), in the vector loop's filter as in its tails."""
    from pykeops.numpy import Genred

    rng = np.random.default_rng(3)
    M, N = 37, 203
    x, y = rng.integers(0, 3, (M, 1)).astype(dtype), rng.integers(0, 3, (N, 1)).astype(dtype)
    ranges = (np.array([[0, M]]), np.array([2]), np.array([[101, N], [0, 101]]),
              np.array([[0, N]]), np.array([1]), np.array([[0, M]]))
    g = Genred("SqDist(x,y)", ["x = Vi(1)", "y = Vj(1)"], reduction_op=op, axis=1, **({"opt_arg": K} if K else {}))
    got = g(x, y, ranges=ranges)
    got = got[-1] if isinstance(got, tuple) else got
    D = (x - y.T) ** 2
    ref = np.argsort(-D if op == "ArgMax" else D, axis=1, kind="stable")[:, : K or 1]
    np.testing.assert_array_equal(got.reshape(M, -1), ref)
