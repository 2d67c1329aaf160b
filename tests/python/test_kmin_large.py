"""K-reductions for large K (the CPU keeps the K best in a heap beyond K = 16) against a dense float64 reference: a
stable sort, ties by index, NaN after every number (its values reading +inf)."""
import numpy as np
import pytest

from pykeops import _engine as engine
from pykeops.numpy import Genred


def reference(R, K):
    """K smallest of R (M, N, D) over axis 1: values (M, K, D) with NaN read as +inf, indices (M, K, D)."""
    idx = np.argsort(np.where(np.isnan(R), np.inf, R), axis=1, kind="stable")[:, :K, :]
    vals = np.take_along_axis(R, idx, axis=1)
    return np.where(np.isnan(vals), np.inf, vals), idx


def run(op, formula, x, y, K, axis=1):
    g = Genred(formula, [f"x = Vi({x.shape[1]})", f"y = Vj({y.shape[1]})"], reduction_op=op, axis=axis, opt_arg=K)
    return g(x, y)


def check(x, y, K, sub=True):
    """All three K-reductions of x - y (or x * y) match the reference exactly."""
    formula = "x - y" if sub else "x * y"
    R = x[:, None, :] - y[None, :, :] if sub else x[:, None, :] * y[None, :, :]
    vals, idx = reference(R.astype(np.float64), K)
    D = x.shape[1]
    shape = (len(x), K) if D == 1 else (len(x), K, D)
    kv, ki = run("KMin_ArgKMin", formula, x, y, K)
    np.testing.assert_array_equal(ki.reshape(shape), idx.reshape(shape))
    np.testing.assert_array_equal(kv.reshape(shape), vals.reshape(shape).astype(x.dtype))
    np.testing.assert_array_equal(run("ArgKMin", formula, x, y, K).reshape(shape), idx.reshape(shape))
    np.testing.assert_array_equal(run("KMin", formula, x, y, K).reshape(shape), vals.reshape(shape).astype(x.dtype))


@pytest.mark.parametrize("K", [17, 100, 1024])
def test_random_values(K):
    rng = np.random.default_rng(K)
    check(rng.normal(size=(37, 1)), rng.normal(size=(2 * K + 13, 1)), K)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_1024_with_ties(dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (29, 1)).astype(dtype)
    y = rng.integers(-20, 20, (3001, 1)).astype(dtype)  # each value about 75 times in every row: ties everywhere
    check(x, y, 1024, sub=False)


def test_several_components_and_k_equal_to_n():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(11, 3)), rng.normal(size=(300, 3))
    check(x, y, 300)  # every entry kept, sorted


def test_nan_ranks_last():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(13, 1)), rng.normal(size=(700, 1))
    y[rng.choice(700, 600, replace=False)] = np.nan  # fewer numbers than K: the NaN fill the end, by index
    check(x, y, 200)


def test_reduction_over_i():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(500, 1)), rng.normal(size=(17, 1))
    got = run("ArgKMin", "x - y", x, y, 64, axis=0)
    _, idx = reference(np.swapaxes(x[:, None, :] - y[None, :, :], 0, 1), 64)
    np.testing.assert_array_equal(got.reshape(17, 64), idx[:, :, 0])


def test_heap_agrees_with_the_unrolled_lists():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, (40, 2)).astype(np.float32)
    y = rng.integers(0, 4, (900, 2)).astype(np.float32)
    small = run("KMin_ArgKMin", "x * y", x, y, 16)  # K <= 16: unrolled insertion
    large = run("KMin_ArgKMin", "x * y", x, y, 17)
    np.testing.assert_array_equal(large[0][:, :16], small[0])
    np.testing.assert_array_equal(large[1][:, :16], small[1])


@pytest.fixture
def tiny_cache_chunks():
    engine.set_chunk_bytes(1)
    yield
    engine.set_chunk_bytes(0)


def test_rows_cut_in_chunks_elsewhere(tiny_cache_chunks):
    """Heap states do not wait in scratch: their rows run whole while other reductions are cut in chunks."""
    rng = np.random.default_rng(6)
    check(rng.normal(size=(20, 1)), rng.normal(size=(500, 1)), 50)
