"""Python API hardening: lazy torch views, out= aliasing, integer-like and real-like arguments, unusual arrays."""

import numpy as np
import pytest

from pykeops.common.tools import as_int, as_real

pytestmark = pytest.mark.engine

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((10, 3)), RNG.standard_normal((12, 3))


def sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def sum_of_sqdist(fw):
    """Sum_j |x_i - y_j|^2; fw: a conftest Framework or a pykeops.<framework> module."""
    return getattr(fw, "module", fw).Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)


# --------------------------------------------------------------------------- integers given as NumPy or torch values


def int_likes(value):
    """value as each integer type that pykeops accepts."""
    items = [value, np.int64(value), np.int32(value), np.array(value), np.array([value])]
    try:
        import torch

        items += [torch.tensor(value), torch.tensor([value]), torch.tensor(value, dtype=torch.int32)]
    except ImportError:
        pass
    return items


def not_ints():
    items = [True, np.bool_(True), 2.0, np.float64(2.0), np.array(2.0), np.array([2, 3]), "2", None, 2 + 0j]
    try:
        import torch

        items += [torch.tensor(True), torch.tensor(2.0), torch.tensor([2, 3])]
    except ImportError:
        pass
    return items


def test_as_int_accepts_integers_and_nothing_else():
    for v in int_likes(3):
        assert as_int(v) == 3 and type(as_int(v)) is int, repr(v)
    for v in not_ints():
        assert as_int(v) is None, repr(v)


def test_as_real():
    for v in int_likes(3) + [3.0, np.float32(3.0), np.array([3.0])]:
        assert as_real(v) == 3.0 and type(as_real(v)) is float, repr(v)
    for v in (True, 1j, np.array([1.0, 2.0]), "3", None):
        assert as_real(v) is None, repr(v)


def test_k_reductions_take_integer_tensors(fw):
    x, y = fw.array(X), fw.array(Y)
    D = (fw.module.Vi(x) - fw.module.Vj(y)).sqnorm2()
    d = sqdist(X, Y)
    order = np.argsort(d, 1, kind="stable")[:, :5]
    for K in int_likes(5):
        for dim in int_likes(1):
            vals, idx = D.Kmin_argKmin(K=K, dim=dim)
            np.testing.assert_allclose(fw.numpy(vals), np.take_along_axis(d, order, 1), rtol=1e-12)
            np.testing.assert_array_equal(fw.numpy(idx), order)
        np.testing.assert_allclose(fw.numpy(D.Kmin(K, dim=1)), np.take_along_axis(d, order, 1), rtol=1e-12)
        np.testing.assert_array_equal(fw.numpy(D.argKmin(K, axis=1)), order)
        g = fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgKMin", opt_arg=K,
                             axis=np.int64(1))
        assert g.formula == "ArgKMin_Reduction(SqDist(x,y),5,0)"
        np.testing.assert_array_equal(fw.numpy(g(x, y)), order)


@pytest.mark.parametrize("K", not_ints())
def test_k_must_be_an_integer(fw, K):
    error = ValueError if K is None else TypeError  # None: K missing; a bool, float or several values: not an int
    D = (fw.module.Vi(fw.array(X)) - fw.module.Vj(fw.array(Y))).sqnorm2()
    for reduction in (D.Kmin, D.argKmin, D.Kmin_argKmin):
        with pytest.raises(error, match="needs opt_arg = K"):
            reduction(K=K, dim=1)
    with pytest.raises(error, match="needs opt_arg = K"):
        fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="KMin", opt_arg=K, axis=1)


@pytest.mark.parametrize("axis", [True, 1.0, "1"])
def test_axis_must_be_an_integer(fw, axis):
    with pytest.raises(TypeError, match="axis must be 0"):
        fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=axis)
    D = (fw.module.Vi(fw.array(X)) - fw.module.Vj(fw.array(Y))).sqnorm2()
    with pytest.raises(TypeError, match="needs axis"):
        D.sum(dim=axis)


def test_lazy_tensor_integer_arguments(fw):
    x, y = fw.array(X), fw.array(Y)
    d = sqdist(X, Y)
    D = (fw.module.Vi(x) - fw.module.Vj(y)).sqnorm2()
    for one in int_likes(1):
        np.testing.assert_allclose(fw.numpy(D.sum(dim=one)), d.sum(1, keepdims=True), rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(D.sum(axis=one)), d.sum(1, keepdims=True), rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(D.min(one)), d.min(1, keepdims=True), rtol=1e-12)
        x_i, y_j = fw.module.LazyTensor(x, axis=one - 1), fw.module.LazyTensor(y, axis=one)
        np.testing.assert_allclose(fw.numpy(((x_i - y_j) ** 2).sum(-1).sum(1)), d.sum(1, keepdims=True), rtol=1e-12)
        xv = fw.module.Vi(x)  # no j-variable: the sums over j have one term
        np.testing.assert_allclose(fw.numpy(xv[one].sum(1)), X[:, 1:2], rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv.elem(one).sum(1)), X[:, 1:2], rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv.extract(one, one + 1).sum(1)), X[:, 1:3], rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv[:, :, one:].sum(1)), X[:, 1:], rtol=1e-12)
        np.testing.assert_allclose(fw.numpy((xv ** (one + 2)).sum(1)), X**3, rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv.round(one).sum(1)), np.round(X, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv.clamp(one - 1, one).sum(1)), X.clip(0, 1), rtol=1e-12)
        np.testing.assert_allclose(fw.numpy(xv.norm(one + 1).sum(1)), np.linalg.norm(X, axis=1, keepdims=True))
    for v in not_ints()[:2]:
        with pytest.raises(TypeError):
            fw.module.Vi(x).elem(v)
        with pytest.raises(TypeError):
            fw.module.LazyTensor(x, axis=v)


def test_symbolic_variables_take_integer_tensors(fw):
    x, y = fw.array(X), fw.array(Y)
    for zero, three in zip(int_likes(0), int_likes(3)):
        D = (fw.module.Vi(zero, three) - fw.module.Vj(three - 2, three)).sqnorm2()
        assert D.formula == "SqNorm2((Var(0,3,0) - Var(1,3,1)))"
        np.testing.assert_allclose(fw.numpy(D.sum(dim=1)(x, y)), sqdist(X, Y).sum(1, keepdims=True), rtol=1e-12)
    with pytest.raises(TypeError, match="dim of the symbolic variable"):
        fw.module.Vi(0, 3.0)
    with pytest.raises(TypeError, match="ind of the symbolic variable"):
        fw.module.Vi(True, 3)


def test_tensordot_and_one_hot_take_integer_arrays(fw):
    x = RNG.standard_normal((4, 6))
    xv = fw.module.Vi(fw.array(x))
    ident = xv.keops_tensordot(fw.module.Vj(fw.array(np.ones((5, 1)))), np.array([2, 3]), [1], [], [])
    assert ident.ndim == 6
    np.testing.assert_allclose(fw.numpy(ident.sum(1)), 5 * x, rtol=1e-12)
    t = fw.module.Vi(fw.array(np.array([[0.0], [2.0]]))).one_hot(np.int64(3))
    np.testing.assert_allclose(fw.numpy(t.sum(1)), np.eye(3)[[0, 2]])


# ---------------------------------------------------------------------------------- KernelSolve's alpha as an array


def alphas():
    items = [0.1, np.float64(0.1), np.float32(0.1), np.array(0.1), np.array([0.1])]
    try:
        import torch

        items += [torch.tensor(0.1), torch.tensor([0.1]), torch.tensor([0.1], dtype=torch.float64)]
    except ImportError:
        pass
    return items


def test_kernel_solve_alpha_as_an_array(fw):
    x, b = RNG.standard_normal((20, 2)), RNG.standard_normal((20, 1))
    K = np.exp(-sqdist(x, x))
    solver = fw.module.KernelSolve("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "b", axis=1)
    for alpha in alphas():
        expected = np.linalg.solve(K + as_real(alpha) * np.eye(20), b)
        a = solver(fw.array(x), fw.array(x), fw.array(b), alpha=alpha, eps=1e-10)
        np.testing.assert_allclose(fw.numpy(a), expected, rtol=1e-6, atol=1e-8)
        lt = (-(fw.module.Vi(fw.array(x)) - fw.module.Vj(fw.array(x))).sqnorm2()).exp()
        a = lt.solve(fw.array(b), alpha=alpha, eps=1e-10)
        np.testing.assert_allclose(fw.numpy(a), expected, rtol=1e-6, atol=1e-8)
    for alpha in (True, np.array([0.1, 0.2]), 1j, "0.1"):
        with pytest.raises(ValueError, match="alpha must be a real number"):
            solver(fw.array(x), fw.array(x), fw.array(b), alpha=alpha)


# ---------------------------------------------------------------------------------------------- torchdr (keops)


def test_torchdr_tsne_with_the_keops_backend():
    torch = pytest.importorskip("torch")
    torchdr = pytest.importorskip("torchdr")

    torch.manual_seed(0)
    X = torch.randn(200, 5)
    Z = torchdr.TSNE(n_components=2, perplexity=10, max_iter=30, backend="keops", device="cpu").fit_transform(X)
    Z = torch.as_tensor(Z)
    assert Z.shape == (200, 2) and torch.isfinite(Z).all() and Z.std() > 0
