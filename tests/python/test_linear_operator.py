"""LazyTensors as linear operators: .t() / .T, K @ v, matvec / rmatvec and scipy's aslinearoperator / eigsh."""

import numpy as np
import pytest

pytestmark = pytest.mark.engine

M, N = 30, 20


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (M, 2)), rng.uniform(0, 1, (N, 2))


def gaussian(fw, x, y, scale=5.0):
    lt = fw.module
    return (-scale * lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(y)))).exp()


def dense_gaussian(x, y, scale=5.0):
    return np.exp(-scale * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))


# ------------------------------------------------------------------------------------------------ transpose


def test_transpose_swaps_categories_sizes_and_symbolic_variables(fw):
    x, y = data()
    lt = fw.module
    K = lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(y))) * lt.Vi(0, 1) + lt.Pm(fw.array(np.array([2.0])))
    assert K.formula == "((SqDist(Var(1,2,0),Var(2,2,1)) * Var(0,1,0)) + Var(3,1,2))"
    T = K.t()
    assert T.formula == "((SqDist(Var(1,2,1),Var(2,2,0)) * Var(0,1,1)) + Var(3,1,2))"
    assert T.symbolic_variables == ((0, 1, 1),) and (T.ni, T.nj) == (N, M)
    assert K.T.formula == T.formula and T.T.formula == K.formula
    assert T.shape == (N, M) and K.shape == (M, N)
    assert lt.Vi(fw.array(x)).T.axis == 1
    same = lt.Vi(fw.array(x)) - lt.Vj(fw.array(x))  # one array in both categories: two variables, swapped
    assert same.T.formula == "(Var(0,2,1) - Var(1,2,0))"


def test_transposed_reductions(fw):
    x, y = data()
    K = gaussian(fw, x, y)
    Kd = dense_gaussian(x, y)
    np.testing.assert_allclose(fw.numpy(K.T.sum(dim=1)), Kd.sum(0)[:, None], rtol=1e-12)
    np.testing.assert_array_equal(fw.numpy(K.T.argmax(dim=1)), Kd.argmax(0)[:, None])


# ----------------------------------------------------------------------------------------------- K @ v


def test_matmul(fw):
    x, y = data()
    K, Kd = gaussian(fw, x, y), dense_gaussian(x, y)
    rng = np.random.default_rng(1)
    v, V = rng.standard_normal(N), rng.standard_normal((N, 3))
    r = K @ fw.array(v)
    assert tuple(r.shape) == (M,)
    np.testing.assert_allclose(fw.numpy(r), Kd @ v, rtol=1e-12)
    np.testing.assert_allclose(fw.numpy(K @ fw.array(V)), Kd @ V, rtol=1e-12)
    w = rng.standard_normal(M)
    np.testing.assert_allclose(fw.numpy(K.T @ fw.array(w)), Kd.T @ w, rtol=1e-12)
    out = fw.array(np.zeros(M))
    assert K.__matmul__(fw.array(v), out=out) is out
    np.testing.assert_allclose(fw.numpy(out), Kd @ v, rtol=1e-12)
    Vb = rng.standard_normal((2, N, 3))  # batched right-hand sides
    np.testing.assert_allclose(fw.numpy(K @ fw.array(Vb)), np.einsum("mn,bne->bme", Kd, Vb), rtol=1e-12)


def test_matvec_rmatvec(fw):
    x, y = data()
    K, Kd = gaussian(fw, x, y), dense_gaussian(x, y)
    rng = np.random.default_rng(2)
    v, w = rng.standard_normal(N), rng.standard_normal(M)
    np.testing.assert_allclose(fw.numpy(K.matvec(fw.array(v))), Kd @ v, rtol=1e-12)
    np.testing.assert_allclose(fw.numpy(K.rmatvec(fw.array(w))), Kd.T @ w, rtol=1e-12)


def test_matmul_errors(fw):
    x, y = data()
    lt = fw.module
    D_ij = lt.Vi(fw.array(x)) - lt.Vj(fw.array(y))
    with pytest.raises(ValueError, match="inner dimension 1"):
        D_ij @ fw.array(np.ones(N))
    K = gaussian(fw, x, y)
    with pytest.raises(TypeError, match="got a list"):
        K @ [1.0] * N
    with pytest.raises(ValueError, match="j-rows"):
        K @ fw.array(np.ones(N + 1))


# ------------------------------------------------------------------------------------------------- scipy


def test_scipy_linear_operator_and_eigsh():
    from scipy.sparse.linalg import aslinearoperator, eigsh

    from pykeops.numpy import Vi, Vj

    x = np.random.default_rng(3).uniform(0, 1, (200, 2))
    K = (-10.0 * Vi(x).sqdist(Vj(x))).exp()
    op = aslinearoperator(K)
    assert op.shape == (200, 200) and op.dtype == np.float64
    v = np.random.default_rng(4).standard_normal(200)
    Kd = dense_gaussian(x, x, 10.0)
    np.testing.assert_allclose(op.matvec(v), Kd @ v, rtol=1e-12)
    np.testing.assert_allclose(op.rmatvec(v), Kd @ v, rtol=1e-12)
    np.testing.assert_allclose(op.matmat(np.stack([v, 2 * v], 1)), Kd @ np.stack([v, 2 * v], 1), rtol=1e-12)
    vals, vecs = eigsh(op, k=6, which="LM")
    np.testing.assert_allclose(np.sort(vals), np.linalg.eigvalsh(Kd)[-6:], rtol=1e-8)


def test_scipy_with_a_rectangular_float32_operator():
    from scipy.sparse.linalg import aslinearoperator

    from pykeops.numpy import Vi, Vj

    x, y = (a.astype(np.float32) for a in data())
    op = aslinearoperator((-5.0 * Vi(x).sqdist(Vj(y))).exp())
    assert op.shape == (M, N) and op.dtype == np.float32
    v = np.ones(N, dtype=np.float32)
    np.testing.assert_allclose(op.matvec(v), dense_gaussian(x, y) @ v, rtol=1e-5)
    np.testing.assert_allclose(op.rmatvec(np.ones(M, dtype=np.float32)), dense_gaussian(x, y).T @ np.ones(M), rtol=1e-5)
