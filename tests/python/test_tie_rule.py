"""Ties in Min / Max / KMin gradients: the gradient of a selected value flows to the one index the reduction selected
(the smallest among equal values, the index ArgMin / ArgKMin report), as torch.min(dim) does. The engine's
Grad_WithSavedForward follows the same rule given the saved indices (tests/cpp/test_differentiate.cpp)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from pykeops.torch import LazyTensor  # noqa: E402


def dense_kmin_grad(x, y, K, largest=False):
    """Gradient of sum_k w_k * (k-th best of |x_i - y_j|^2) by a stable sort: ties go to the smaller index."""
    x, y = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    order = torch.sort(-d if largest else d, dim=1, stable=True).indices[:, :K]
    vals = torch.gather(d, 1, order)
    w = torch.arange(1, K + 1, dtype=torch.float64)
    (vals * w).sum().backward()
    return x.grad, y.grad


@pytest.mark.parametrize("K", [1, 2, 3])
def test_kmin_over_repeated_points(K):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(6, 2)))
    base = rng.normal(size=(4, 2))
    y = torch.tensor(np.concatenate([base, base, base[:1]]))  # every point twice, the first three times: ties
    xs, ys = x.clone().requires_grad_(), y.clone().requires_grad_()
    d = ((LazyTensor(xs[:, None, :]) - LazyTensor(ys[None, :, :])) ** 2).sum(-1)
    vals = d.Kmin(K, dim=1) if K > 1 else d.min(dim=1)
    w = torch.arange(1, K + 1, dtype=torch.float64)
    (vals.reshape(6, K) * w).sum().backward()
    gx, gy = dense_kmin_grad(x, y, K)
    torch.testing.assert_close(xs.grad, gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ys.grad, gy, rtol=1e-12, atol=1e-12)
    # The duplicates of a point never both receive the same slot's gradient: y's rows j and j + 4 differ.
    assert not torch.allclose(ys.grad[:4], ys.grad[4:8])


def test_max_over_repeated_points():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(5, 3)))
    base = rng.normal(size=(3, 3))
    y = torch.tensor(np.concatenate([base, base]))
    xs, ys = x.clone().requires_grad_(), y.clone().requires_grad_()
    d = ((LazyTensor(xs[:, None, :]) - LazyTensor(ys[None, :, :])) ** 2).sum(-1)
    d.max(dim=1).sum().backward()
    gx, gy = dense_kmin_grad(x, y, 1, largest=True)
    torch.testing.assert_close(xs.grad, gx, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ys.grad, gy, rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(ys.grad[3:]) == 0  # the later copies get nothing
