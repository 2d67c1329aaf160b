"""Gaussian kernel sums (LazyTensor and Genred) against a dense float64 NumPy reference, over many sizes."""

import functools

import numpy as np
import pytest

pytestmark = pytest.mark.engine

SIZES = [1, 7, 1000, 3001]
E = 2  # dimension of the weights b


@functools.lru_cache(maxsize=None)
def problem(M, N, axis):
    """x (M, 3), y (N, 3), weights b on the reduced side, and the dense float64 reference of the sum."""
    rng = np.random.default_rng(M * 10007 + N)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # exact in both dtypes: one reference for both
    x, y = f32(rng.random((M, 3))), f32(rng.random((N, 3)))
    b = f32(0.5 + rng.random((N if axis == 1 else M, E)))
    ref = np.zeros((M if axis == 1 else N, E))
    for start in range(0, M, 256):  # row blocks keep the dense (rows, N, 3) differences small
        rows = slice(start, start + 256)
        K = np.exp(-((x[rows, None, :] - y[None, :, :]) ** 2).sum(-1))
        if axis == 1:
            ref[rows] = K @ b
        else:
            ref += K.T @ b[rows]
    return x, y, b, ref


def check(fw, result, ref, dtype):
    assert isinstance(result, type(fw.array(np.zeros(1)))) and fw.numpy(result).dtype == dtype
    assert fw.numpy(result).shape == ref.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fw.numpy(result), ref, rtol=rtol, atol=rtol * 1e-3 * np.abs(ref).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("M", SIZES)
def test_gaussian_kernel_sum(fw, M, N, axis, dtype):
    x, y, b, ref = problem(M, N, axis)
    x, y, b = (fw.array(a.astype(dtype)) for a in (x, y, b))
    lt = fw.module

    x_i, y_j = lt.LazyTensor(x[:, None, :]), lt.LazyTensor(y[None, :, :])
    b_red = lt.Vj(b) if axis == 1 else lt.Vi(b)
    check(fw, ((-((x_i - y_j) ** 2).sum(-1)).exp() * b_red).sum(dim=axis), ref, dtype)

    b_alias = f"b = {'Vj' if axis == 1 else 'Vi'}({E})"
    gaussian = lt.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", b_alias], axis=axis)
    check(fw, gaussian(x, y, b), ref, dtype)
