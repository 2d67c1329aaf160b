"""TensorDot's permutation follows KeOps's rule: axis k of the numpy.tensordot result moves to position perm[k]."""

import numpy as np
import pytest
import torch

from pykeops.numpy import Genred, LazyTensor as NumpyLazyTensor
from pykeops.torch import LazyTensor

pytestmark = pytest.mark.engine


def moved(out, perm):
    """The numpy.tensordot result `out` with its axis k moved to position perm[k], written without argsort."""
    return np.moveaxis(out, list(range(len(perm))), list(perm))


def test_interleaving_permutation_is_kron():
    rng = np.random.default_rng(0)
    x, y = rng.random((1, 12)), rng.random((1, 12))  # one (2,3,2) and one (2,2,3) tensor
    f = Genred("TensorDot(x, y, [2,3,2], [2,2,3], [], [], [0,2,4,1,3,5])", ["x=Vi(0,12)", "y=Vj(1,12)"],
               reduction_op="Sum", axis=1)
    expected = np.kron(x.reshape(2, 3, 2), y.reshape(2, 2, 3)).ravel()
    np.testing.assert_allclose(f(x, y).ravel(), expected, rtol=1e-12)


@pytest.mark.parametrize("perm", [[1, 2, 0], [2, 0, 1], [0, 2, 1], [1, 0, 2]])
def test_keops_tensordot_cyclic_permutations(perm):
    # Three-cycles tell the rule from its inverse (numpy.transpose(perm)); transpositions check the rest.
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 1, 12)), rng.standard_normal((1, 4, 6))  # (2,3,2) and (2,3) tensors
    out = (NumpyLazyTensor(a).keops_tensordot(NumpyLazyTensor(b), [2, 3, 2], [2, 3], [1], [1], perm)).sum(1)
    ref = np.stack([sum(moved(np.tensordot(a[i, 0].reshape(2, 3, 2), b[0, j].reshape(2, 3), ([1], [1])), perm)
                        .ravel() for j in range(4)) for i in range(5)])
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


def test_kron_equals_its_tensordot_and_gradients_agree():
    rng = np.random.default_rng(2)
    a = torch.tensor(rng.standard_normal((3, 1, 12)), requires_grad=True)
    b = torch.tensor(rng.standard_normal((1, 2, 12)), requires_grad=True)
    td = LazyTensor(a).keops_tensordot(LazyTensor(b), [2, 3, 2], [2, 2, 3], [], [], [0, 2, 4, 1, 3, 5]).sum(1)
    kr = LazyTensor(a).keops_kron(LazyTensor(b), [2, 3, 2], [2, 2, 3]).sum(1)
    ref = torch.stack([sum(torch.kron(a[i, 0].reshape(2, 3, 2), b[0, j].reshape(2, 2, 3)).reshape(-1)
                           for j in range(2)) for i in range(3)])
    torch.testing.assert_close(td, ref)
    torch.testing.assert_close(kr, ref)
    w = torch.tensor(rng.standard_normal(ref.shape))
    grads = [torch.autograd.grad((r * w).sum(), (a, b)) for r in (td, kr, ref)]
    for g in grads[:2]:
        torch.testing.assert_close(g[0], grads[2][0])
        torch.testing.assert_close(g[1], grads[2][1])


@pytest.mark.parametrize("perm", [[1, 2, 0], [2, 0, 1]])
def test_tensordot_gradient_with_cyclic_permutation(perm):
    rng = np.random.default_rng(3)
    a = torch.tensor(rng.standard_normal((4, 1, 12)), requires_grad=True)
    b = torch.tensor(rng.standard_normal((1, 3, 6)), requires_grad=True)
    out = LazyTensor(a).keops_tensordot(LazyTensor(b), [2, 3, 2], [2, 3], [1], [1], perm).sum(1)
    ref = torch.stack([sum(torch.movedim(torch.tensordot(a[i, 0].reshape(2, 3, 2), b[0, j].reshape(2, 3),
                                                         dims=([1], [1])), (0, 1, 2), tuple(perm)).reshape(-1)
                           for j in range(3)) for i in range(4)])
    torch.testing.assert_close(out, ref)
    w = torch.tensor(rng.standard_normal(ref.shape))
    ga, gb = torch.autograd.grad((out * w).sum(), (a, b))
    ra, rb = torch.autograd.grad((ref * w).sum(), (a, b))
    torch.testing.assert_close(ga, ra)
    torch.testing.assert_close(gb, rb)
