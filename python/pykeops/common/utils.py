"""Framework-independent helpers for pykeops.numpy.utils and pykeops.torch.utils: dense reference kernels, WarmUpGpu.

The kernel functions take an array namespace `xp` (the numpy or torch module: anything with exp, sqrt, log) so
that one definition serves both frameworks. They compute full (M, N) matrices: they are references for tests
and small problems, not KeOps reductions.
"""

import warnings

# Radial kernels k(d2), as functions of the squared distance d2 and the scale s.
KERNELS = ("gaussian", "laplacian", "cauchy", "inverse_multiquadric")
# Kernels on unit vectors a, b, as functions of the scalar product (a|b) and the scale s.
SPHERE_KERNELS = ("binet", "linear", "gaussian_unoriented", "gaussian_oriented")


def _check(kernel, names):
    if kernel not in names:
        raise ValueError(f"unknown kernel {kernel!r}: expected one of {', '.join(map(repr, names))}")


def kernel_of_sqdist(xp, d2, s, kernel):
    """k(d2): gaussian exp(-d2/s^2), laplacian exp(-sqrt(d2)/s), cauchy 1/(1+d2/s^2), inverse_multiquadric
    (1+d2/s^2)^(-1/2)."""
    _check(kernel, KERNELS)
    if kernel == "gaussian":
        return xp.exp(-d2 / (s * s))
    if kernel == "laplacian":
        return xp.exp(-xp.sqrt(d2) / s)
    if kernel == "cauchy":
        return 1 / (1 + d2 / (s * s))
    return 1 / xp.sqrt(1 + d2 / (s * s))


def log_kernel_of_sqdist(xp, d2, s, kernel):
    """log k(d2), computed without forming k (no underflow for far points)."""
    _check(kernel, KERNELS)
    if kernel == "gaussian":
        return -d2 / (s * s)
    if kernel == "laplacian":
        return -xp.sqrt(d2) / s
    if kernel == "cauchy":
        return -xp.log(1 + d2 / (s * s))
    return -0.5 * xp.log(1 + d2 / (s * s))


def kernel_derivative_of_sqdist(xp, d2, s, kernel):
    """dk/d(d2): gaussian -exp(-d2/s^2)/s^2, laplacian -exp(-sqrt(d2)/s)/(2 s sqrt(d2)) (-inf at d2 = 0),
    cauchy -(1+d2/s^2)^-2/s^2, inverse_multiquadric -(1+d2/s^2)^(-3/2)/(2 s^2)."""
    _check(kernel, KERNELS)
    if kernel == "gaussian":
        return -xp.exp(-d2 / (s * s)) / (s * s)
    if kernel == "laplacian":
        r = xp.sqrt(d2)
        return -xp.exp(-r / s) / (2 * s * r)
    u = 1 + d2 / (s * s)
    if kernel == "cauchy":
        return -1 / (s * s * u * u)
    return -0.5 / (s * s * u * xp.sqrt(u))


def sphere_kernel_of_scalprod(xp, prs, s, kernel):
    """k((a|b)) for unit vectors: binet (a|b)^2, linear (a|b), gaussian_unoriented exp((-2+2(a|b)^2)/s^2),
    gaussian_oriented exp((-2+2(a|b))/s^2)."""
    _check(kernel, SPHERE_KERNELS)
    if kernel == "binet":
        return prs * prs
    if kernel == "linear":
        return prs
    if kernel == "gaussian_unoriented":
        return xp.exp((-2 + 2 * prs * prs) / (s * s))
    return xp.exp((-2 + 2 * prs) / (s * s))


def IsGpuAvailable():
    """Whether pykeops has a usable GPU backend (pykeops.config.gpu_available)."""
    from .. import config

    return bool(config.gpu_available)


def WarmUpGpu():
    """Run a tiny reduction on the GPU, so that later timings exclude the driver's start-up and first compilation.

    Does nothing without a GPU backend, and never raises: a failure is reported as a warning.
    """
    if not IsGpuAvailable():
        return
    try:
        import numpy as np

        from ..numpy import Genred

        x = np.linspace(0, 1, 10, dtype=np.float32).reshape(10, 1)
        Genred("Exp(-SqDist(x, y)) * b", ["x = Vi(1)", "y = Vj(1)", "b = Vj(1)"], axis=1)(x, x, x, backend="GPU")
    except Exception as e:  # a warm-up must never break the caller
        warnings.warn(f"WarmUpGpu: the GPU warm-up failed ({type(e).__name__}: {e})", RuntimeWarning, stacklevel=2)
