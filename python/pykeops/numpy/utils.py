"""Dense NumPy helpers (full (M, N) matrices: references for tests and small problems), WarmUpGpu, and the
complex <-> interleaved real views used by pykeops.numpy.ComplexLazyTensor."""

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
