"""pykeops.jax: reductions against dense jax.numpy float64 references, under jit and not, grads of first and second
order, vmap, KernelSolve, float32 / float64, bad input, and the custom call in the lowered HLO (no callback)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import pykeops.jax as pkj  # noqa: E402
from pykeops.jax import Genred, KernelSolve, LazyTensor, Vi, Vj  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Each test once per dtype; float64 needs jax_enable_x64 (restored afterwards)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    yield request.param
    jax.config.update("jax_enable_x64", old)


@pytest.fixture
def x64():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def data(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal(s).astype(dtype)) for s in shapes]


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)


def ref64(f, *arrays):
    """f evaluated densely in float64 (NumPy), whatever jax's x64 mode."""
    return f(*[np.asarray(a, dtype=np.float64) for a in arrays])


def sqd(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def lse(a, axis):
    m = a.max(axis, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis, keepdims=True))


# (name, LazyTensor reduction of D_ij = sqdist over axis a (1: over j), dense float64 reference on the (M, N) matrix)
REDUCTIONS = [
    ("sum", lambda D, a: (-D).exp().sum(a), lambda D, a: np.exp(-D).sum(a).reshape(-1, 1)),
    ("min", lambda D, a: D.min(a), lambda D, a: D.min(a).reshape(-1, 1)),
    ("max", lambda D, a: D.max(a), lambda D, a: D.max(a).reshape(-1, 1)),
    ("logsumexp", lambda D, a: (-D).logsumexp(a), lambda D, a: lse(-D, a).reshape(-1, 1)),
    ("kmin", lambda D, a: D.Kmin(3, a), lambda D, a: np.sort(D, a)[:, :3] if a == 1 else np.sort(D, 0)[:3].T),
]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("name,lazy,dense", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reductions_match_dense(dtype, jit, axis, name, lazy, dense):
    x, y = data(dtype, (40, 3), (50, 3))

    def f(x, y):
        return lazy(Vi(x).sqdist(Vj(y)), axis)

    out = (jax.jit(f) if jit else f)(x, y)
    assert out.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(out, np.float64), dense(ref64(sqd, x, y), axis), **tol(dtype))


@pytest.mark.parametrize("jit", [False, True])
def test_index_reductions(dtype, jit):
    x, y = data(dtype, (40, 3), (50, 3))
    D = ref64(sqd, x, y)

    def f(x, y):
        d = Vi(x).sqdist(Vj(y))
        return d.argmin(1), d.argmax(0), d.argKmin(4, 1), d.min_argmin(1), d.Kmin_argKmin(2, 0)

    amin, amax, ak, (vmin, imin), (vk, ik) = (jax.jit(f) if jit else f)(x, y)
    index = jnp.int64 if dtype == "float64" else jnp.int32  # (no int64 in JAX without jax_enable_x64)
    assert amin.dtype == index and ak.dtype == index
    np.testing.assert_array_equal(amin[:, 0], D.argmin(1))
    np.testing.assert_array_equal(amax[:, 0], D.argmax(0))
    np.testing.assert_array_equal(ak, np.argsort(D, 1, kind="stable")[:, :4])
    np.testing.assert_array_equal(imin[:, 0], D.argmin(1))
    np.testing.assert_allclose(np.asarray(vmin[:, 0], np.float64), D.min(1), **tol(dtype))
    np.testing.assert_array_equal(ik, np.argsort(D, 0, kind="stable")[:2].T)
    np.testing.assert_allclose(np.asarray(vk, np.float64), np.sort(D, 0)[:2].T, **tol(dtype))


def test_sumsoftmaxweight_and_genred(dtype):
    x, y, b = data(dtype, (30, 2), (45, 2), (45, 3))
    D = ref64(sqd, x, y)
    w = np.exp(-D - (-D).max(1, keepdims=True))
    ref = (w @ np.asarray(b, np.float64)) / w.sum(1, keepdims=True)
    out = jax.jit(lambda x, y, b: (-Vi(x).sqdist(Vj(y))).sumsoftmaxweight(Vj(b), axis=1))(x, y, b)
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, **tol(dtype))
    g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(3)"], reduction_op="Sum", axis=1)
    np.testing.assert_allclose(np.asarray(g(x, y, b), np.float64), np.exp(-D) @ np.asarray(b, np.float64),
                               **tol(dtype))


def gaussian_loss(x, y, b, s):
    K = (-Vi(x).sqdist(Vj(y)) / s).exp()
    return ((K * Vj(b)).sum(1) ** 2).sum()


def dense_gaussian_loss(x, y, b, s):
    K = jnp.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / s[0])
    return ((K @ b) ** 2).sum()


def test_gradients_first_and_second_order(x64):
    x, y, b = data("float64", (30, 3), (40, 3), (40, 2))
    s = jnp.array([0.7])
    args = (x, y, b, s)
    ours = jax.jit(jax.grad(gaussian_loss, argnums=(0, 1, 2, 3)))(*args)
    ref = jax.grad(dense_gaussian_loss, argnums=(0, 1, 2, 3))(*args)
    for a, r in zip(ours, ref):
        assert a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-11)
    # 2nd order: a Hessian-vector product and grad of a grad norm
    v = data("float64", (30, 3), seed=1)[0]
    hvp = jax.jit(jax.grad(lambda x: jnp.vdot(jax.grad(gaussian_loss)(x, y, b, s), v)))(x)
    hvp_ref = jax.grad(lambda x: jnp.vdot(jax.grad(dense_gaussian_loss)(x, y, b, s), v))(x)
    np.testing.assert_allclose(hvp, hvp_ref, rtol=1e-8, atol=1e-10)
    H = jax.jacrev(jax.grad(lambda s: gaussian_loss(x, y, b, s)))(s)
    H_ref = jax.jacrev(jax.grad(lambda s: dense_gaussian_loss(x, y, b, s)))(s)
    np.testing.assert_allclose(H, H_ref, rtol=1e-8)


def test_gradients_of_logsumexp_min_kmin(dtype):
    x, y = data(dtype, (25, 2), (35, 2))
    dense_d = lambda x, y: ((x[:, None] - y[None]) ** 2).sum(-1)  # noqa: E731
    cases = [
        (lambda x, y: (-Vi(x).sqdist(Vj(y))).logsumexp(1).sum(),
         lambda x, y: jax.nn.logsumexp(-dense_d(x, y), 1).sum()),
        (lambda x, y: Vi(x).sqdist(Vj(y)).min(0).sum(), lambda x, y: dense_d(x, y).min(0).sum()),
        (lambda x, y: (Vi(x).sqdist(Vj(y)).Kmin(3, 1) * jnp.arange(1.0, 4.0, dtype=x.dtype)).sum(),
         lambda x, y: (jnp.sort(dense_d(x, y), 1)[:, :3] * jnp.arange(1.0, 4.0, dtype=x.dtype)).sum()),
    ]
    for ours, ref in cases:
        for a, r in zip(jax.jit(jax.grad(ours, (0, 1)))(x, y), jax.grad(ref, (0, 1))(x, y)):
            np.testing.assert_allclose(a, r, rtol=1e-3 if dtype == "float32" else 1e-9, atol=1e-4 if dtype == "float32" else 1e-11)


def test_vmap_is_a_batch_dimension(dtype):
    xs, y, b = data(dtype, (4, 20, 3), (30, 3), (30, 1))

    def f(x, y, b):
        return ((-Vi(x).sqdist(Vj(y))).exp() * Vj(b)).sum(1)

    dense = np.stack([np.exp(-ref64(sqd, x, y)) @ np.asarray(b, np.float64) for x in xs])
    np.testing.assert_allclose(np.asarray(jax.vmap(f, (0, None, None))(xs, y, b), np.float64), dense, **tol(dtype))
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(f, (0, None, None)))(xs, y, b), np.float64), dense,
                               **tol(dtype))
    # vmap of a gradient (per-example gradients)
    g = jax.vmap(jax.grad(lambda x: f(x, y, b).sum()))(xs)
    g_ref = jax.vmap(jax.grad(lambda x: (jnp.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) @ b).sum()))(xs)
    np.testing.assert_allclose(g, g_ref, **tol(dtype))
    # per-example gradients of a KMin: one block-sparse pattern of the selected pairs per example
    w = jnp.arange(1.0, 3.0, dtype=dtype)
    g = jax.jit(jax.vmap(jax.grad(lambda x: (Vi(x).sqdist(Vj(y)).Kmin(2, 1) * w).sum())))(xs)
    g_ref = jax.vmap(jax.grad(lambda x: (jnp.sort(((x[:, None] - y[None]) ** 2).sum(-1), 1)[:, :2] * w).sum()))(xs)
    np.testing.assert_allclose(g, g_ref, rtol=1e-3 if dtype == "float32" else 1e-9, atol=1e-4 if dtype == "float32" else 1e-11)


def test_batch_dims_and_block_sparse_ranges(x64):
    x, y, b = data("float64", (2, 10, 2), (2, 12, 2), (2, 12, 1))
    out = jax.jit(lambda x, y, b: ((-LazyTensor(x).sqdist(LazyTensor(y))).exp() * LazyTensor(b)).sum(2))(
        x[:, :, None], y[:, None], b[:, None])
    ref = np.stack([np.exp(-ref64(sqd, x[k], y[k])) @ np.asarray(b[k]) for k in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # ranges: i-rows 0..5 see j 0..6, i-rows 5..10 see j 6..12
    x, y, b = x[0], y[0], b[0]
    ranges = tuple(jnp.asarray(r, jnp.int64) for r in (
        [[0, 5], [5, 10]], [1, 2], [[0, 6], [6, 12]], [[0, 6], [6, 12]], [1, 2], [[0, 5], [5, 10]]))
    g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], axis=1)
    out = jax.jit(lambda x, y, b, r: g(x, y, b, ranges=r))(x, y, b, ranges)
    K = np.exp(-ref64(sqd, x, y))
    K[:5, 6:] = 0
    K[5:, :6] = 0
    np.testing.assert_allclose(out, K @ np.asarray(b), rtol=1e-12)
    gx = jax.grad(lambda x: g(x, y, b, ranges=ranges).sum())(x)
    gx_ref = jax.grad(lambda x: (jnp.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) * jnp.asarray(K > 0) @ b).sum())(x)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)


def test_kernel_solve_and_its_gradient(x64):
    x, b = data("float64", (40, 2), (40, 1))
    alpha = 0.5
    K = np.exp(-ref64(sqd, x, x))
    solver = KernelSolve("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "b", axis=1)
    a = jax.jit(lambda x, b: solver(x, x, b, alpha=alpha, eps=1e-12))(x, b)
    np.testing.assert_allclose(a, np.linalg.solve(K + alpha * np.eye(40), np.asarray(b)), rtol=1e-8, atol=1e-10)
    lazy = jax.jit(lambda x, b: (-Vi(x).sqdist(Vj(x))).exp().solve(Vi(b), alpha=alpha, eps=1e-12))(x, b)
    np.testing.assert_allclose(lazy, a, rtol=1e-8, atol=1e-10)

    def dense(x, b):
        Kx = jnp.exp(-((x[:, None] - x[None]) ** 2).sum(-1))
        return (jnp.linalg.solve(Kx + alpha * jnp.eye(40), b) ** 2).sum()

    ours = jax.grad(lambda x, b: (solver(x, x, b, alpha=alpha, eps=1e-12) ** 2).sum(), (1,))(x, b)
    np.testing.assert_allclose(ours[0], jax.grad(dense, (1,))(x, b)[0], rtol=1e-6, atol=1e-8)


def test_equals_the_torch_module(x64):
    torch = pytest.importorskip("torch")
    from pykeops.torch import Vi as tVi, Vj as tVj

    x, y, b = data("float64", (30, 3), (40, 3), (40, 2))
    s = jnp.array([0.7])
    gj = jax.grad(gaussian_loss, (0, 1, 2))(x, y, b, s)
    tx, ty, tb = (torch.tensor(np.asarray(a), requires_grad=True) for a in (x, y, b))
    K = (-tVi(tx).sqdist(tVj(ty)) / 0.7).exp()
    ((K * tVj(tb)).sum(1) ** 2).sum().backward()
    for a, t in zip(gj, (tx, ty, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_the_jitted_gradient_is_a_custom_call_without_callback(dtype):
    x, y, b = data(dtype, (30, 3), (40, 3), (40, 2))
    s = jnp.array([0.7], dtype=dtype)
    hlo = jax.jit(jax.grad(gaussian_loss)).lower(x, y, b, s).as_text()
    assert hlo.count("pykeops_genred") >= 2  # the forward and the gradient in x, both custom calls
    assert "callback" not in hlo.lower()
    jaxpr = str(jax.make_jaxpr(jax.grad(gaussian_loss))(x, y, b, s))
    assert "ffi_call" in jaxpr and "callback" not in jaxpr


def test_bad_input_gives_clear_errors(x64):
    x, y = data("float64", (10, 3), (12, 3))
    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min", axis=1)
    with pytest.raises(ValueError, match=r"argument 1 \(Vj variable of dim 3\) should have shape \(N, 3\)"):
        g(x, y[:, :2])
    with pytest.raises(ValueError, match="argument 1 has dtype float32 but argument 0 has float64"):
        jax.jit(g)(x, y.astype(jnp.float32))
    with pytest.raises(TypeError, match="dtype int64"):
        g(x.astype(jnp.int64), y.astype(jnp.int64))
    with pytest.raises(TypeError, match="pykeops.jax expects jax.*Array arguments"):
        g(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="the formula has 2 variables but 1 arguments"):
        g(x)
    with pytest.raises(ValueError, match="out= is not supported"):
        g(x, y, out=jnp.zeros((10, 1)))
    with pytest.raises(ValueError, match="runs on the CPU"):
        g(x, y, backend="GPU")
    with pytest.raises(TypeError, match="K must be an integer"):  # a tracer where a static value is needed
        jax.jit(lambda x, y, k: Vi(x).sqdist(Vj(y)).Kmin(k, 1))(x, y, 3)
    with pytest.raises(TypeError):
        LazyTensor(np.asarray(x)[:, None, :]) + Vi(x)  # mixing NumPy and jax LazyTensors


def test_float32_indices_without_x64():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        x, y = data("float32", (2000, 2), (3000, 2))
        idx = jax.jit(lambda x, y: Vi(x).sqdist(Vj(y)).argKmin(2, 1))(x, y)
        assert idx.dtype == jnp.int32
        np.testing.assert_array_equal(idx, np.argsort(ref64(sqd, x, y), 1, kind="stable")[:, :2])
    finally:
        jax.config.update("jax_enable_x64", old)


def test_module_exports():
    assert set(pkj.__all__) >= {"Genred", "LazyTensor", "Vi", "Vj", "Pm", "KernelSolve"}


@pytest.mark.parametrize("cls", [Genred, KernelSolve], ids=lambda c: c.__name__)
def test_docstring_examples_run(cls):
    import doctest

    env = {"np": np, "jnp": jnp, "Genred": Genred, "KernelSolve": KernelSolve, "LazyTensor": LazyTensor}
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(cls, name=cls.__name__, globs=env)
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_an_engine_without_the_ffi_handler_gives_an_import_error(monkeypatch):
    import types

    from pykeops.jax import primitive

    monkeypatch.setattr(primitive, "load_engine", lambda: types.SimpleNamespace())
    primitive.engine.cache_clear()
    try:
        with pytest.raises(ImportError, match="built only when jaxlib is installed"):
            primitive.engine()
    finally:
        monkeypatch.undo()
        primitive.engine.cache_clear()
        primitive.engine()


def test_pykeops_imports_without_jax():
    import subprocess
    import sys

    code = ("import sys; sys.modules['jax'] = None; import pykeops, pykeops.numpy\n"
            "try:\n    import pykeops.jax\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pykeops.jax needs jax and jaxlib" in out.stdout
