"""Dense torch helpers (full (M, N) matrices: references for tests and small problems), WarmUpGpu, and the
complex <-> interleaved real views used by pykeops.torch.ComplexLazyTensor."""

import torch

from ..common import utils as _common
from ..common.utils import KERNELS, SPHERE_KERNELS, IsGpuAvailable, WarmUpGpu  # noqa: F401  (re-exported)


def squared_distances(x, y):
    """(M, N) tensor of the squared Euclidean distances |x_i - y_j|^2 of x (M, D) and y (N, D)."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def differences(x, y):
    """(D, M, N) tensor of the differences x_i[d] - y_j[d] of x (M, D) and y (N, D)."""
    return x.t()[:, :, None] - y.t()[:, None, :]


def torch_kernel(x, y, s, kernel):
    """(M, N) kernel matrix k(|x_i - y_j|^2) for kernel in KERNELS ("gaussian", "laplacian", "cauchy",
    "inverse_multiquadric"), with the scale s (a number or a tensor); differentiable by torch."""
    return _common.kernel_of_sqdist(torch, squared_distances(x, y), s, kernel)


# ------------------------------------------------------------------------------- complex <-> real views


def view_as_real_pairs(z):
    """Complex tensor (..., D) as the real tensor (..., 2D) of interleaved (re, im) pairs (a view if contiguous)."""
    z = z.resolve_conj()
    if z.dim() == 0:
        z = z.reshape(1)
    return torch.view_as_real(z).reshape(*z.shape[:-1], 2 * z.shape[-1])


def view_as_complex_pairs(a):
    """Real tensor (..., 2D) of interleaved (re, im) pairs as the complex tensor (..., D)."""
    a = a.contiguous()
    return torch.view_as_complex(a.reshape(*a.shape[:-1], a.shape[-1] // 2, 2))


def as_complex(x):
    """Real float32/float64 tensor as a complex64/complex128 one."""
    return x.to(torch.complex64 if x.dtype == torch.float32 else torch.complex128)
