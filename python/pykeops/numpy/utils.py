"""Dense NumPy helpers (full (M, N) matrices: references for tests and small problems), WarmUpGpu, the
complex <-> interleaved real views used by pykeops.numpy.ComplexLazyTensor, and numpytools (KeOps's array helpers)."""

import numpy as np

from ..common import utils as _common
from ..common.utils import KERNELS, SPHERE_KERNELS, IsGpuAvailable, WarmUpGpu  # noqa: F401  (re-exported)


def squared_distances(x, y):
    """(M, N) matrix of the squared Euclidean distances |x_i - y_j|^2 of x (M, D) and y (N, D)."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def differences(x, y):
    """(D, M, N) array of the differences x_i[d] - y_j[d] of x (M, D) and y (N, D)."""
    return x.T[:, :, None] - y.T[:, None, :]


def np_kernel(x, y, s, kernel):
    """(M, N) kernel matrix k(|x_i - y_j|^2) for kernel in KERNELS ("gaussian", "laplacian", "cauchy",
    "inverse_multiquadric"), with the scale s."""
    return _common.kernel_of_sqdist(np, squared_distances(x, y), s, kernel)


def log_np_kernel(x, y, s, kernel):
    """(M, N) matrix of log k(|x_i - y_j|^2), see np_kernel."""
    return _common.log_kernel_of_sqdist(np, squared_distances(x, y), s, kernel)


def grad_np_kernel(x, y, s, kernel):
    """(M, N) matrix of the derivative of the kernel k with respect to the squared distance, at |x_i - y_j|^2."""
    with np.errstate(divide="ignore"):
        return _common.kernel_derivative_of_sqdist(np, squared_distances(x, y), s, kernel)


def np_kernel_sphere(nalpha, nbeta, s, kernel):
    """(M, N) kernel matrix k((a_i|b_j)) of unit vectors nalpha (M, D) and nbeta (N, D), for kernel in
    SPHERE_KERNELS ("binet", "linear", "gaussian_unoriented", "gaussian_oriented")."""
    return _common.sphere_kernel_of_scalprod(np, nalpha @ nbeta.T, s, kernel)


def log_sum_exp(mat, axis=0):
    """log(sum(exp(mat), axis)) computed stably (shifted by the max along axis)."""
    mat = np.asarray(mat)
    shift = np.max(mat, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(shift, axis=axis) + np.log(np.sum(np.exp(mat - shift), axis=axis))


# ------------------------------------------------------------------------------- complex <-> real views


def view_as_real_pairs(z):
    """Complex array (..., D) as the real array (..., 2D) of interleaved (re, im) pairs (a view if C-contiguous)."""
    z = np.ascontiguousarray(z)  # also makes a 0-d array 1-d
    return z.view(z.real.dtype)


def view_as_complex_pairs(a):
    """Real array (..., 2D) of interleaved (re, im) pairs as the complex array (..., D)."""
    a = np.ascontiguousarray(a)
    return a.view(np.complex64 if a.dtype == np.float32 else np.complex128)


def as_complex(x):
    """Real float32/float64 array as a complex64/complex128 one."""
    return x.astype(np.complex64 if x.dtype == np.float32 else np.complex128)


# ------------------------------------------------------------------------------- numpytools


class numpytools:  # noqa: N801  (KeOps's name)
    """KeOps's namespace of NumPy array helpers, for code that imports it; pykeops itself does not use it."""

    from .cluster import swap_axes
    from .genred import Genred
    from .operations import KernelSolve

    norm, arraysum, exp, log = staticmethod(np.linalg.norm), staticmethod(np.sum), staticmethod(np.exp), staticmethod(np.log)
    arraytype = np.ndarray
    float_types = [float, np.float16, np.float32, np.float64]
    is_tensor = staticmethod(lambda x: isinstance(x, np.ndarray))
    copy = staticmethod(np.copy)
    eq = staticmethod(np.equal)
    transpose = staticmethod(lambda x: x.T)
    permute = staticmethod(lambda x, *axes: x.transpose(*axes))
    contiguous = staticmethod(np.ascontiguousarray)
    numpy = staticmethod(lambda x: x)
    tile = staticmethod(np.tile)
    solve = staticmethod(np.linalg.solve)
    size = staticmethod(lambda x: x.size)
    view = staticmethod(np.reshape)
    long = staticmethod(lambda x: x.astype(np.int64))
    dtype = staticmethod(lambda x: x.dtype)
    detect_complex = staticmethod(lambda x: any(isinstance(v, complex) for v in x) if isinstance(x, list)
                                  else np.iscomplexobj(x) if isinstance(x, np.ndarray) else isinstance(x, complex))
    view_as_complex = staticmethod(view_as_complex_pairs)
    view_as_real = staticmethod(view_as_real_pairs)
    dtypename = staticmethod(lambda dtype: np.dtype(dtype).name)
    rand = staticmethod(lambda m, n, dtype: np.random.rand(m, n).astype(dtype))
    randn = staticmethod(lambda m, n, dtype: np.random.randn(m, n).astype(dtype))
    zeros = staticmethod(lambda shape, dtype, device=None, requires_grad=None: np.zeros(shape, dtype=dtype))
    empty = staticmethod(lambda shape, dtype, device=None, requires_grad=None: np.empty(shape, dtype=dtype))
    eye = staticmethod(lambda n, dtype: np.eye(n, dtype=dtype))
    array = staticmethod(lambda x, dtype, device=None: np.array(x, dtype=dtype))
    get_pointer = staticmethod(lambda x: x.__array_interface__["data"][0])
    device = staticmethod(lambda x: "cpu")
    device_type_index = staticmethod(lambda x: ("cpu", None))
    device_dict = staticmethod(lambda x: {"cat": "cpu"})
