"""The per-call caches: a repeated reduction reuses its Genred, its checked call layout and its gradient Genreds."""
import numpy as np
import pytest

from pykeops.common import call_cache
from pykeops.common.lazy_tensor import REDUCTIONS

pytestmark = pytest.mark.engine

ALIASES = ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"]


def gaussian_sum(x, y, b):
    """float64 dense reference of sum_j exp(-|x_i - y_j|^2) b_j."""
    x, y, b = (np.asarray(a, dtype=np.float64) for a in (x, y, b))
    return np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b


def data(fw, m=7, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [fw.array(rng.random(shape)) for shape in ((m, 3), (n, 3), (n, 1))]


def delta(before, name):
    return call_cache.stats().get(name, 0) - before.get(name, 0)


def lazy_gaussian(fw, x, y, b):
    LazyTensor = fw.module.LazyTensor
    x_i, y_j, b_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
    return ((-((x_i - y_j) ** 2).sum(-1)).exp() * b_j).sum(dim=1)


def test_lazy_tensor_reductions_share_one_genred_per_structure(fw):
    REDUCTIONS.clear()
    before = call_cache.stats()
    first, second = data(fw, seed=1), data(fw, seed=2)  # new arrays, same layout: the same formula
    for args in (first, second):
        np.testing.assert_allclose(fw.numpy(lazy_gaussian(fw, *args)), gaussian_sum(*map(fw.numpy, args)), rtol=1e-12)
    assert delta(before, "reduction_builds") == 1 and delta(before, "reduction_hits") == 1
    # and the second call found the first one's checked layout on that Genred
    assert delta(before, "layout_builds") == 1 and delta(before, "layout_hits") == 1
    assert len(REDUCTIONS.entries) == 1
    genred = next(iter(REDUCTIONS.entries.values()))
    assert len(genred._kernels) == 1  # one kernel, compiled once, for the float64 calls


def test_other_options_or_structure_get_their_own_genred(fw):
    REDUCTIONS.clear()
    x, y, b = data(fw)
    LazyTensor = fw.module.LazyTensor
    x_i, y_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
    K = (-((x_i - y_j) ** 2).sum(-1)).exp()
    K.sum(dim=1)
    K.sum(dim=1, sum_scheme="kahan_scheme")
    K.sum(dim=0)
    (K * 2).sum(dim=1)
    assert len(REDUCTIONS.entries) == 4
    np.testing.assert_allclose(fw.numpy(K.sum(dim=0)), gaussian_sum(fw.numpy(y), fw.numpy(x), np.ones((7, 1))),
                               rtol=1e-12)
    assert len(REDUCTIONS.entries) == 4


def test_genred_layouts_follow_the_arguments_shapes_and_dtypes(fw):
    g = fw.module.Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)
    before = call_cache.stats()
    x, y, b = data(fw)
    for _ in range(3):
        np.testing.assert_allclose(fw.numpy(g(x, y, b)), gaussian_sum(*map(fw.numpy, (x, y, b))), rtol=1e-12)
    assert delta(before, "layout_builds") == 1 and delta(before, "layout_hits") == 2
    x2, y2, b2 = data(fw, m=4, n=6)  # another shape: checked again, its own layout
    np.testing.assert_allclose(fw.numpy(g(x2, y2, b2)), gaussian_sum(*map(fw.numpy, (x2, y2, b2))), rtol=1e-12)
    assert delta(before, "layout_builds") == 2
    # a layout that failed its checks is not remembered: the same error every time
    for _ in range(2):
        with pytest.raises(ValueError, match="argument 2 .* has 5 rows but argument 1 has 6"):
            g(x, y2, b)
    assert delta(before, "layout_builds") == 2


def test_a_cached_layout_still_copies_non_contiguous_arguments(fw):
    g = fw.module.Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)
    rng = np.random.default_rng(3)
    x = rng.random((7, 3))
    y, b = rng.random((5, 3)), rng.random((5, 1))
    ref = gaussian_sum(x, y, b)
    g(*map(fw.array, (x, y, b)))
    xt = fw.array(np.ascontiguousarray(x.T)).T  # the same shape and dtype, not C-contiguous
    np.testing.assert_allclose(fw.numpy(g(xt, *map(fw.array, (y, b)))), ref, rtol=1e-12)


def test_gradients_reuse_their_derived_genred():
    torch = pytest.importorskip("torch")
    from pykeops.torch import Genred

    g = Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)
    rng = np.random.default_rng(4)
    x0, y, b = (torch.from_numpy(rng.random(s)) for s in ((6, 3), (5, 3), (5, 1)))
    before = call_cache.stats()
    grads = []
    for _ in range(3):
        x = x0.clone().requires_grad_(True)
        g(x, y, b).sum().backward()
        grads.append(x.grad)
    assert delta(before, "derived_builds") == 1 and delta(before, "derived_hits") == 2
    assert len(g._derived.entries) == 1
    # the dense float64 gradient of sum_ij exp(-|x_i - y_j|^2) b_j
    x = x0.clone().requires_grad_(True)
    torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)).matmul(b).sum().backward()
    for grad in grads:
        torch.testing.assert_close(grad, x.grad, rtol=1e-12, atol=1e-12)


def test_untracked_torch_calls_skip_the_autograd_function():
    torch = pytest.importorskip("torch")
    from pykeops.torch import Genred
    from pykeops.torch import autograd

    x, y, b = (torch.rand(4, 3, dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64),
               torch.rand(3, 1, dtype=torch.float64))
    assert autograd.untracked((x, y, b))
    assert not autograd.untracked((x.requires_grad_(True), y, b))
    with torch.no_grad():
        assert autograd.untracked((x, y, b))
    out = Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)(x, y, b)
    assert out.grad_fn is not None  # x requires grad: recorded


def test_clean_pykeops_forgets_the_shared_genreds(fw):
    import pykeops

    lazy_gaussian(fw, *data(fw))
    assert REDUCTIONS.entries
    pykeops.clean_pykeops()
    assert not REDUCTIONS.entries


def test_a_cached_layout_still_resolves_torch_lazy_views():
    torch = pytest.importorskip("torch")
    from pykeops.torch import Genred

    g = Genred("Exp(-SqDist(x,y))*b", ALIASES, axis=1)
    rng = np.random.default_rng(5)
    x, y, b = (torch.from_numpy(rng.random(s)) for s in ((7, 3), (5, 3), (5, 1)))
    g(x, y, b)  # the layout of these shapes and dtypes, remembered
    neg = torch._neg_view(-x)  # contiguous, its values negated by a bit that the engine's raw reads would miss
    assert neg.is_contiguous() and neg.is_neg()
    np.testing.assert_allclose(g(neg, y, b).numpy(), gaussian_sum(x.numpy(), y.numpy(), b.numpy()), rtol=1e-12)


def test_repeated_lazy_tensor_operands_that_disagree_still_raise(fw):
    x, y, b = data(fw)
    LazyTensor = fw.module.LazyTensor
    for _ in range(2):
        x_i, y_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
        with pytest.raises(ValueError, match="numbers of j-rows"):
            (x_i - y_j) * LazyTensor(fw.array(np.ones((4, 1)))[None, :, :])
