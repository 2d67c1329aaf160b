"""pykeops.numpy.utils, pykeops.torch.utils, WarmUpGpu and pykeops.config: dense helpers against direct formulas,
and LazyTensor kernel reductions against the dense kernel matrices they stand for."""

import warnings

import numpy as np
import pytest

import pykeops
import pykeops.config
from pykeops.numpy import utils as npu

KERNELS = ["gaussian", "laplacian", "cauchy", "inverse_multiquadric"]
SPHERE_KERNELS = ["binet", "linear", "gaussian_unoriented", "gaussian_oriented"]
M, N, D, S = 7, 6, 3, 0.8


def points(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((M, D)), rng.standard_normal((N, D)), rng.standard_normal((N, 2))


def direct_sqdist(x, y):
    return np.array([[sum((x[i, k] - y[j, k]) ** 2 for k in range(x.shape[1])) for j in range(len(y))]
                     for i in range(len(x))])


# Direct formulas, as functions of the squared distance d2 and the scale s.
DIRECT = {
    "gaussian": (lambda d2, s: np.exp(-d2 / s**2), lambda d2, s: -np.exp(-d2 / s**2) / s**2),
    "laplacian": (lambda d2, s: np.exp(-np.sqrt(d2) / s),
                  lambda d2, s: -np.exp(-np.sqrt(d2) / s) / (2 * s * np.sqrt(d2))),
    "cauchy": (lambda d2, s: 1 / (1 + d2 / s**2), lambda d2, s: -1 / (s**2 * (1 + d2 / s**2) ** 2)),
    "inverse_multiquadric": (lambda d2, s: (1 + d2 / s**2) ** -0.5,
                             lambda d2, s: -0.5 / s**2 * (1 + d2 / s**2) ** -1.5),
}


def test_squared_distances_and_differences():
    x, y, _ = points()
    np.testing.assert_allclose(npu.squared_distances(x, y), direct_sqdist(x, y), rtol=1e-14)
    diff = npu.differences(x, y)
    assert diff.shape == (D, M, N)
    for k in range(D):
        np.testing.assert_array_equal(diff[k], x[:, k][:, None] - y[:, k][None, :])
    assert (npu.squared_distances(x, x).diagonal() == 0).all()  # exact zeros: no negative round-off


@pytest.mark.parametrize("kernel", KERNELS)
def test_np_kernel_and_log_against_direct_formulas(kernel):
    x, y, _ = points(1)
    d2 = direct_sqdist(x, y)
    k = npu.np_kernel(x, y, S, kernel)
    assert k.shape == (M, N)
    np.testing.assert_allclose(k, DIRECT[kernel][0](d2, S), rtol=1e-13)
    np.testing.assert_allclose(npu.log_np_kernel(x, y, S, kernel), np.log(DIRECT[kernel][0](d2, S)), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("kernel", KERNELS)
def test_grad_np_kernel_is_the_derivative_in_d2(kernel):
    x, y, _ = points(2)
    d2 = direct_sqdist(x, y)
    g = npu.grad_np_kernel(x, y, S, kernel)
    np.testing.assert_allclose(g, DIRECT[kernel][1](d2, S), rtol=1e-12)
    h = 1e-6
    fd = (DIRECT[kernel][0](d2 + h, S) - DIRECT[kernel][0](d2 - h, S)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_laplacian_derivative_at_zero_distance():
    x = np.zeros((1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning for the division by zero
        assert npu.grad_np_kernel(x, x, 1.0, "laplacian")[0, 0] == -np.inf


@pytest.mark.parametrize("kernel", SPHERE_KERNELS)
def test_np_kernel_sphere(kernel):
    x, y, _ = points(3)
    a, b = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    prs = np.array([[a[i] @ b[j] for j in range(N)] for i in range(M)])
    direct = {"binet": prs**2, "linear": prs, "gaussian_unoriented": np.exp((-2 + 2 * prs**2) / S**2),
              "gaussian_oriented": np.exp((-2 + 2 * prs) / S**2)}[kernel]
    np.testing.assert_allclose(npu.np_kernel_sphere(a, b, S, kernel), direct, rtol=1e-13)


def test_unknown_kernels():
    x, y, _ = points()
    with pytest.raises(ValueError, match="unknown kernel 'gauss'.*'gaussian'"):
        npu.np_kernel(x, y, S, "gauss")
    with pytest.raises(ValueError, match="unknown kernel 'gaussian'.*'binet'"):
        npu.np_kernel_sphere(x, y, S, "gaussian")
    for fn in (npu.log_np_kernel, npu.grad_np_kernel):
        with pytest.raises(ValueError, match="unknown kernel"):
            fn(x, y, S, "binet")


def test_log_sum_exp():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(4)
    mat = rng.standard_normal((5, 4)) * 3
    for axis in (0, 1):
        np.testing.assert_allclose(npu.log_sum_exp(mat, axis=axis), special.logsumexp(mat, axis=axis), rtol=1e-14)
    np.testing.assert_allclose(npu.log_sum_exp(mat), special.logsumexp(mat, axis=0), rtol=1e-14)
    big = np.array([[1000.0, 1000.0], [-1000.0, 999.0]])
    np.testing.assert_allclose(npu.log_sum_exp(big, axis=0), [1000.0, 1000.0 + np.log1p(np.exp(-1.0))], rtol=1e-15)
    empty_row = np.array([[-np.inf, -np.inf], [0.0, 0.0]])
    np.testing.assert_array_equal(npu.log_sum_exp(empty_row, axis=1), [-np.inf, np.log(2.0)])


# ------------------------------------------------------------------------------------ LazyTensor vs dense


def lazy_kernel(x_i, y_j, s, kernel):
    d2 = x_i.sqdist(y_j)
    if kernel == "gaussian":
        return (-d2 / s**2).exp()
    if kernel == "laplacian":
        return (-d2.sqrt() / s).exp()
    if kernel == "cauchy":
        return 1 / (1 + d2 / s**2)
    return (1 + d2 / s**2) ** -0.5


def lazy_sphere_kernel(a_i, b_j, s, kernel):
    prs = a_i | b_j
    if kernel == "binet":
        return prs**2
    if kernel == "linear":
        return prs
    if kernel == "gaussian_unoriented":
        return ((-2 + 2 * prs**2) / s**2).exp()
    return ((-2 + 2 * prs) / s**2).exp()


@pytest.mark.engine
@pytest.mark.parametrize("kernel", KERNELS)
def test_lazytensor_kernel_matches_np_kernel(fw, kernel):
    x, y, b = points(5)
    K = lazy_kernel(fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y)), S, kernel)
    got = fw.numpy((K * fw.module.Vj(fw.array(b))).sum(dim=1))
    np.testing.assert_allclose(got, npu.np_kernel(x, y, S, kernel) @ b, rtol=1e-12)
    got_t = fw.numpy((K * fw.module.Vi(fw.array(b[:1].repeat(M, 0)))).sum(dim=0))
    np.testing.assert_allclose(got_t, npu.np_kernel(x, y, S, kernel).T @ b[:1].repeat(M, 0), rtol=1e-12)


@pytest.mark.engine
@pytest.mark.parametrize("kernel", SPHERE_KERNELS)
def test_lazytensor_sphere_kernel_matches_np_kernel_sphere(fw, kernel):
    x, y, b = points(6)
    a, c = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    K = lazy_sphere_kernel(fw.module.Vi(fw.array(a)), fw.module.Vj(fw.array(c)), S, kernel)
    got = fw.numpy((K * fw.module.Vj(fw.array(b))).sum(dim=1))
    np.testing.assert_allclose(got, npu.np_kernel_sphere(a, c, S, kernel) @ b, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- torch utils


@pytest.mark.parametrize("kernel", KERNELS)
def test_torch_kernel(kernel):
    torch = pytest.importorskip("torch")
    from pykeops.torch import utils as tu

    x, y, _ = points(7)
    k = tu.torch_kernel(torch.from_numpy(x), torch.from_numpy(y), S, kernel)
    assert isinstance(k, torch.Tensor) and k.shape == (M, N)
    np.testing.assert_allclose(k.numpy(), npu.np_kernel(x, y, S, kernel), rtol=1e-13)
    s = torch.tensor(S, dtype=torch.float64)
    np.testing.assert_allclose(tu.torch_kernel(torch.from_numpy(x), torch.from_numpy(y), s, kernel).numpy(),
                               npu.np_kernel(x, y, S, kernel), rtol=1e-13)
    xt = torch.from_numpy(x).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: tu.torch_kernel(a, torch.from_numpy(y), S, kernel), (xt,))
    with pytest.raises(ValueError, match="unknown kernel"):
        tu.torch_kernel(xt, xt, S, "linear")


def test_torch_distances():
    torch = pytest.importorskip("torch")
    from pykeops.torch import utils as tu

    x, y, _ = points(8)
    np.testing.assert_allclose(tu.squared_distances(torch.from_numpy(x), torch.from_numpy(y)).numpy(),
                               direct_sqdist(x, y), rtol=1e-14)
    np.testing.assert_array_equal(tu.differences(torch.from_numpy(x), torch.from_numpy(y)).numpy(),
                                  npu.differences(x, y))


# ------------------------------------------------------------------------------------- complex pair views


def test_complex_pair_views(fw):
    utils = npu if fw.name == "numpy" else __import__("pykeops.torch.utils", fromlist=["utils"])
    z = (np.arange(6) + 1j * np.arange(6, 12)).reshape(3, 2).astype(np.complex64)
    real = utils.view_as_real_pairs(fw.array(z))
    assert tuple(real.shape) == (3, 4) and fw.numpy(real).dtype == np.float32
    np.testing.assert_array_equal(fw.numpy(real)[:, 0::2], z.real)
    np.testing.assert_array_equal(fw.numpy(real)[:, 1::2], z.imag)
    back = utils.view_as_complex_pairs(real)
    np.testing.assert_array_equal(fw.numpy(back), z)
    assert tuple(utils.view_as_real_pairs(fw.array(np.array(1 + 2j))).shape) == (2,)
    promoted = utils.as_complex(fw.array(np.ones(2, dtype=np.float32)))
    assert fw.numpy(promoted).dtype == np.complex64


# ------------------------------------------------------------------------------------------- GPU and config


def test_config_attributes():
    for name in ("numpy_found", "torch_found", "gpu_available"):
        assert isinstance(getattr(pykeops.config, name), bool)
    assert pykeops.config.numpy_found is True


def test_warm_up_gpu_is_exported_and_never_fails():
    torch_utils = pytest.importorskip("pykeops.torch.utils")
    assert pykeops.WarmUpGpu is npu.WarmUpGpu is torch_utils.WarmUpGpu
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pykeops.WarmUpGpu() is None  # without a GPU backend: a silent no-op
    assert npu.IsGpuAvailable() is pykeops.config.gpu_available


def test_warm_up_gpu_failure_is_a_warning(monkeypatch):
    import pykeops.numpy

    class BrokenGenred:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("no device")

    monkeypatch.setattr(pykeops.config, "gpu_available", True)  # pretend there is a GPU, whose use then fails
    monkeypatch.setattr(pykeops.numpy, "Genred", BrokenGenred)
    with pytest.warns(RuntimeWarning, match="WarmUpGpu: the GPU warm-up failed \\(RuntimeError: no device\\)"):
        assert pykeops.WarmUpGpu() is None
