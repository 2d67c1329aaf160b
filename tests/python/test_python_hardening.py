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


# ------------------------------------------------------------------ torch tensors with the negative / conjugate bit


def test_negative_views_are_read_with_their_sign():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    neg = torch._neg_view(x)
    assert neg.is_neg()
    got = sum_of_sqdist(pk)(neg, y)
    np.testing.assert_allclose(got.numpy(), sqdist(-X, Y).sum(1, keepdims=True), rtol=1e-12)

    z = torch.from_numpy(X + 1j * RNG.standard_normal(X.shape))
    imag = z.conj().imag  # a negative view of z's imaginary parts
    assert imag.is_neg()
    got = (pk.Vi(imag) - pk.Vj(y)).sqnorm2().sum(dim=1)
    np.testing.assert_allclose(got.numpy(), sqdist(-z.numpy().imag, Y).sum(1, keepdims=True), rtol=1e-12)


def test_conjugate_views_in_complex_lazy_tensors():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    z = X + 1j * RNG.standard_normal(X.shape)
    zc = torch.from_numpy(z).conj()
    assert zc.is_conj()
    got = pk.Vi(zc).sum(dim=0)
    np.testing.assert_allclose(got.numpy(), z.conj().sum(0, keepdims=True), rtol=1e-12)


def test_gradients_flow_through_negative_views():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    y = torch.from_numpy(Y)
    z = torch.from_numpy(X + 1j * RNG.standard_normal(X.shape)).requires_grad_()
    x = torch.from_numpy(X).requires_grad_()
    cases = ((x, lambda: torch._neg_view(x), lambda: -x), (z, lambda: z.conj().imag, lambda: -z.imag))
    for leaf, view, dense_view in cases:
        ours = (-(pk.Vi(view()) - pk.Vj(y)).sqnorm2()).exp().sum(dim=1).sum()
        (g_ours,) = torch.autograd.grad(ours, leaf)
        dense = torch.exp(-((dense_view()[:, None] - y[None]) ** 2).sum(-1)).sum()
        (g_dense,) = torch.autograd.grad(dense, leaf)
        torch.testing.assert_close(ours, dense)
        torch.testing.assert_close(g_ours, g_dense)


def test_out_as_a_negative_view_receives_the_result():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    buf = torch.zeros(10, 1, dtype=torch.float64)
    out = torch._neg_view(buf)
    res = sum_of_sqdist(pk)(torch.from_numpy(X), torch.from_numpy(Y), out=out)
    assert res is out
    np.testing.assert_allclose(out.resolve_neg().numpy(), sqdist(X, Y).sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(buf.numpy(), -sqdist(X, Y).sum(1, keepdims=True), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ out= aliasing


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dim", [1, 3])
def test_out_aliasing_an_input_gives_the_fresh_result(fw, axis, dim):
    """out= may be (part of) an input: the kernel then computes into a temporary copied into out."""
    g = fw.module.Genred("x - y", [f"x = Vi({dim})", f"y = Vj({dim})"], axis=axis)
    n = 1000  # several tasks and chunks of j (written in place, out = y came out wrong for dim 1)
    x, y = RNG.standard_normal((n, dim)), RNG.standard_normal((n, dim))
    expected = n * x - y.sum(0) if axis == 1 else x.sum(0) - n * y
    for name in ("x", "y"):
        args = {"x": fw.array(x.copy()), "y": fw.array(y.copy())}
        out = args[name]
        assert g(args["x"], args["y"], out=out) is out
        np.testing.assert_allclose(fw.numpy(out), expected, rtol=1e-10, err_msg=f"out={name}")


def test_out_overlapping_part_of_an_input(fw):
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], axis=1)
    n = 1000
    x = RNG.standard_normal((n, 1))
    block = fw.array(RNG.standard_normal((2 * n, 1)))
    y = fw.numpy(block)[n // 2: 3 * n // 2].copy()
    res = g(fw.array(x), block[n // 2: 3 * n // 2], out=block[:n])  # out covers the first half of y
    np.testing.assert_allclose(fw.numpy(res), n * x - y.sum(0), rtol=1e-10)


def test_out_disjoint_from_the_inputs_is_written_in_place(fw):
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], axis=1)
    n = 1000
    x, y = RNG.standard_normal((n, 1)), RNG.standard_normal((n, 1))
    block = fw.array(np.concatenate([y, np.zeros((n, 1))]))
    out = block[n:]  # same buffer as y, no overlap
    assert g(fw.array(x), block[:n], out=out) is out
    np.testing.assert_allclose(fw.numpy(out), n * x - y.sum(0), rtol=1e-10)


@pytest.mark.parametrize("op", ["KMin", "Min"])
def test_out_aliasing_with_selecting_reductions(fw, op):
    n = 1000
    x = RNG.standard_normal((n, 1))
    diff = x - x.T
    expected = np.sort(diff, 1)[:, :1] if op == "KMin" else diff.min(1, keepdims=True)
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], reduction_op=op, axis=1,
                         **({"opt_arg": 1} if op == "KMin" else {}))
    xt = fw.array(x.copy())
    res = g(xt, xt, out=xt)
    np.testing.assert_allclose(fw.numpy(res), expected, rtol=1e-12)


def test_overlapping_value_and_index_outs_are_refused(fw):
    g = fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min_ArgMin", axis=1)
    buf = fw.array(np.zeros(20))
    as_int64 = buf.view(np.int64) if fw.torch is None else buf.view(fw.torch.int64)
    with pytest.raises(ValueError, match="overlap"):
        g(fw.array(X), fw.array(Y), out=(buf[:10].reshape(10, 1), as_int64[5:15].reshape(10, 1)))


def test_out_aliasing_with_logsumexp(fw):
    g = fw.module.Genred("Elem(x,0) * Elem(y,0)", ["x = Vi(1)", "y = Vj(1)"], reduction_op="LogSumExp", axis=1)
    x = RNG.standard_normal((12, 1))
    expected = np.log(np.exp(x * x.T).sum(1, keepdims=True))
    xt = fw.array(x.copy())
    assert g(xt, xt, out=xt) is xt
    np.testing.assert_allclose(fw.numpy(xt), expected, rtol=1e-12)


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


# --------------------------------------------------------------------------------- unusual arrays: clear errors


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["sparse_coo", "sparse_csr", "mkldnn"])
def test_sparse_and_mkldnn_tensors_are_refused(layout):
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    x, y = torch.from_numpy(X).float(), torch.from_numpy(Y).float()
    odd = {"sparse_coo": y.to_sparse(), "sparse_csr": y.to_sparse_csr(), "mkldnn": y.to_mkldnn()}[layout]
    kind = "mkldnn" if layout == "mkldnn" else "sparse"
    g = sum_of_sqdist(pk)
    message = rf"argument 1 is a {kind} tensor \(layout torch\.(_mkldnn|{layout})\); pass a dense tensor"
    with pytest.raises(TypeError, match=message):
        g(x, odd)
    with pytest.raises(TypeError, match=f"is a {kind} tensor"):
        pk.LazyTensor(odd[None] if layout == "sparse_coo" else odd, axis=None if layout == "sparse_coo" else 1)
    with pytest.raises(TypeError, match=f"out is a {kind} tensor"):
        g(x, y, out={"sparse_coo": torch.zeros(10, 1).to_sparse(), "sparse_csr": torch.zeros(10, 1).to_sparse_csr(),
                     "mkldnn": torch.zeros(10, 1).to_mkldnn()}[layout])


def test_meta_tensors_are_refused():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    x, y = torch.empty(10, 3, device="meta"), torch.empty(12, 3, device="meta")
    with pytest.raises(ValueError, match="argument 0 is a meta tensor: meta tensors have no data"):
        sum_of_sqdist(pk)(x, y)
    D = (pk.Vi(x) - pk.Vj(y)).sqnorm2()  # built lazily: the arrays are only read by the reduction
    with pytest.raises(ValueError, match="argument 0 is a meta tensor"):
        D.sum(dim=1)


def test_masked_numpy_arrays_are_refused():
    import pykeops.numpy as pk

    y = np.ma.masked_less(Y, 0)
    with pytest.raises(TypeError, match="argument 1 is a numpy.ma.MaskedArray"):
        sum_of_sqdist(pk)(X, y)


@pytest.mark.parametrize("dtype", ["complex128", "bool"])
def test_complex_and_bool_arrays_in_real_reductions(fw, dtype):
    bad = fw.array(Y.astype(dtype))
    hint = "ComplexLazyTensor" if dtype == "complex128" else "float32 or float64"
    with pytest.raises(TypeError, match=f"argument 1 has dtype {dtype}: .*{hint}"):
        sum_of_sqdist(fw)(fw.array(X), bad)


def test_views_requiring_grad():
    torch = pytest.importorskip("torch")
    import pykeops.torch as pk

    base = torch.from_numpy(RNG.standard_normal((10, 5))).requires_grad_()
    y = torch.from_numpy(Y)
    x = base[:, 1:4]  # a non-contiguous view of a leaf
    got = sum_of_sqdist(pk)(x, y)
    dense = ((x[:, None] - y[None]) ** 2).sum(-1).sum(1, keepdim=True)
    torch.testing.assert_close(got, dense)
    (g_ours,) = torch.autograd.grad(got.sum(), base)
    (g_dense,) = torch.autograd.grad(dense.sum(), base)
    torch.testing.assert_close(g_ours, g_dense)
    assert (g_ours[:, 0] == 0).all() and (g_ours[:, 4] == 0).all()


def test_empty_arrays(fw):
    g = sum_of_sqdist(fw)
    assert fw.numpy(g(fw.array(np.zeros((0, 3))), fw.array(Y))).shape == (0, 1)
    np.testing.assert_array_equal(fw.numpy(g(fw.array(X), fw.array(np.zeros((0, 3))))), np.zeros((10, 1)))
    m = fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min", axis=1)
    np.testing.assert_array_equal(fw.numpy(m(fw.array(X), fw.array(np.zeros((0, 3))))), np.full((10, 1), np.inf))


def test_nan_inputs_propagate(fw):
    x = X.copy()
    x[3, 1] = np.nan
    got = fw.numpy(sum_of_sqdist(fw)(fw.array(x), fw.array(Y)))
    expected = sqdist(x, Y).sum(1, keepdims=True)
    assert np.isnan(got[3, 0]) and np.isnan(got).sum() == 1
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- torchdr (keops)


def test_torchdr_tsne_with_the_keops_backend():
    torch = pytest.importorskip("torch")
    torchdr = pytest.importorskip("torchdr")

    torch.manual_seed(0)
    X = torch.randn(200, 5)
    Z = torchdr.TSNE(n_components=2, perplexity=10, max_iter=30, backend="keops", device="cpu").fit_transform(X)
    Z = torch.as_tensor(Z)
    assert Z.shape == (200, 2) and torch.isfinite(Z).all() and Z.std() > 0
