"""Batch dimensions (broadcast like NumPy) and block-sparse ranges, against dense references and loops over batches.

Also the cluster helpers of pykeops.numpy.cluster / pykeops.torch.cluster that build the ranges.
"""

import importlib
import itertools

import numpy as np
import pytest

pytestmark = pytest.mark.engine

M, N, D = 6, 5, 3


def cluster(fw):
    return importlib.import_module(f"pykeops.{fw.name}.cluster")


# ------------------------------------------------------------------------------------------ references


def masked_reference(op, F, mask, K=None):
    """op over axis 1 of F (n_out, n_red, DF) restricted to mask (n_out, n_red); empty sets give neutral values."""
    F = np.asarray(F, dtype=np.float64)
    m3 = np.broadcast_to(mask[:, :, None], F.shape)
    empty = ~mask.any(axis=1)
    if op == "Sum":
        return np.where(m3, F, 0.0).sum(1)
    if op in ("Min", "ArgMin", "Min_ArgMin", "Max", "ArgMax", "Max_ArgMax"):
        sign = -1 if op.startswith("Max") or op == "ArgMax" else 1
        S = np.where(m3, sign * F, np.inf)
        idx = S.argmin(1)
        vals = sign * np.take_along_axis(S, idx[:, None], 1)[:, 0]
        idx[empty] = -1
        return {"Min": vals, "Max": vals, "ArgMin": idx, "ArgMax": idx}.get(op, (vals, idx))
    if op in ("KMin", "ArgKMin", "KMin_ArgKMin"):
        S = np.where(m3, F, np.inf)
        idx = np.argsort(S, axis=1, kind="stable")[:, :K]
        vals = np.take_along_axis(S, idx, 1)
        idx[empty] = -1
        if F.shape[2] == 1:
            vals, idx = vals[..., 0], idx[..., 0]
        return {"KMin": vals, "ArgKMin": idx, "KMin_ArgKMin": (vals, idx)}[op]
    if op == "LogSumExp":
        S = np.where(m3, F, -np.inf)
        m = S.max(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(m3, np.exp(S - np.where(np.isfinite(m), m, 0)[:, None]), 0).sum(1)
            return np.where(empty[:, None], -np.inf, m + np.log(s))
    raise AssertionError(op)


def dense_reference(op, F, axis, K=None):
    """op over the reduced axis of F (M, N, DF): reduce j when axis == 1, i when axis == 0."""
    F = F if axis == 1 else np.swapaxes(F, 0, 1)
    return masked_reference(op, F, np.ones(F.shape[:2], dtype=bool), K)


def compare(fw, got, ref):
    for g, r in zip(got if isinstance(got, tuple) else (got,), ref if isinstance(ref, tuple) else (ref,)):
        g = fw.numpy(g)
        assert g.shape == r.shape
        if r.dtype == np.int64:
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, r)
        else:
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13)


def batch_loop(op, F_full, axis, K=None):
    """dense_reference applied to each batch of F_full (B..., M, N, DF), stacked back to B + output shape."""
    batch = F_full.shape[:-3]
    results = [dense_reference(op, F_full[b], axis, K) for b in itertools.product(*map(range, batch))]
    if isinstance(results[0], tuple):
        return tuple(np.stack([r[k] for r in results]).reshape(batch + results[0][k].shape) for k in range(2))
    return np.stack(results).reshape(batch + results[0].shape)


# ------------------------------------------------------------------------------------ batch dimensions


BATCHES = [
    ((2, 3), (2, 3), (2, 3)),  # every variable batched
    ((2, 1), (1, 3), (2, 3)),  # broadcast in x and y
    ((3,), (2, 1), ()),  # leading dims added, parameter without batch
    ((), (), (4,)),  # only the parameter is batched
    ((1, 2), (), (2,)),
]


def batched_data(xb, yb, pb, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xb + (M, 1, D))
    y = rng.standard_normal(yb + (1, N, D))
    p = rng.uniform(0.5, 2, pb + (1, 1, 1))
    return x, y, p


@pytest.mark.parametrize("xb, yb, pb", BATCHES)
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op, K", [("Sum", None), ("Min", None), ("ArgMax", None), ("Min_ArgMin", None),
                                   ("KMin", 2), ("ArgKMin", 3), ("LogSumExp", None)])
def test_lazytensor_batch_dimensions(fw, xb, yb, pb, axis, op, K):
    x, y, p = batched_data(xb, yb, pb)
    lt = fw.module
    X, Y, P = (lt.LazyTensor(fw.array(a)) for a in (x, y, p))
    F_lt = (X - Y) * P
    F = (x - y) * p
    if op == "LogSumExp":
        F_lt, F = F_lt.sum(-1), F.sum(-1, keepdims=True)
    batch = np.broadcast_shapes(xb, yb, pb)
    assert F_lt.batchdims == batch and F_lt.nbatchdims == len(batch)
    F = np.broadcast_to(F, batch + F.shape[-3:])
    nb = len(batch)
    method = {"Sum": "sum", "Min": "min", "ArgMax": "argmax", "Min_ArgMin": "min_argmin", "KMin": "Kmin",
              "ArgKMin": "argKmin", "LogSumExp": "logsumexp"}[op]
    args = () if K is None else (K,)
    compare(fw, getattr(F_lt, method)(*args, dim=nb + axis), batch_loop(op, F, axis, K))


@pytest.mark.parametrize("op, K", [("Sum", None), ("ArgMin", None), ("KMin_ArgKMin", 2)])
def test_genred_batch_dimensions(fw, op, K):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, M, D))  # Vi (..., M, D)
    y = rng.standard_normal((3, N, D))  # Vj (..., N, D)
    p = rng.uniform(0.5, 2, (2, 3, 1))  # Pm (..., 1)
    g = fw.module.Genred("(x - y) * p", ["x = Vi(3)", "y = Vj(3)", "p = Pm(1)"], reduction_op=op, axis=1, opt_arg=K)
    got = g(*(fw.array(a) for a in (x, y, p)))
    F = (x[..., :, None, :] - y[..., None, :, :]) * p[..., None, None, :]
    compare(fw, got, batch_loop(op, F, 1, K))


def test_non_contiguous_batched_inputs(fw):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, M, 2 * D))[..., ::2]  # strided
    y = np.ascontiguousarray(rng.standard_normal((N, D, 2)).transpose(2, 0, 1))[::-1]  # negative stride
    assert not (x.flags.c_contiguous or y.flags.c_contiguous)
    lt = fw.module
    got = (lt.LazyTensor(fw.array(x)[:, :, None, :]) - lt.LazyTensor(fw.array(np.ascontiguousarray(y))[:, None])).sum(dim=2)
    ref = batch_loop("Sum", x[:, :, None, :] - y[:, None, :, :], 1)
    compare(fw, got, ref)
    g = fw.module.Genred("x - y", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    compare(fw, g(fw.array(x), fw.array(y.copy() if fw.name == "torch" else y)), ref)


def test_batched_shapes_and_axes(fw):
    lt = fw.module
    x_i = lt.LazyTensor(fw.array(np.ones((2, 3, M, 1, D))))
    y_j = lt.LazyTensor(fw.array(np.ones((3, 1, N, D))))
    K_ij = (x_i - y_j).sqnorm2()
    assert K_ij._shape == (2, 3, M, N, 1) and K_ij.shape == (2, 3, M, N)
    assert (x_i - y_j)._shape == (2, 3, M, N, D) and (x_i - y_j).shape == (2, 3, M, N, D)
    assert K_ij.batchdims == (2, 3) and K_ij.nbatchdims == 2
    assert x_i.ni == M and y_j.nj == N and x_i.formula == "Var(0,3,0)"
    assert fw.numpy(K_ij.sum(dim=3)).shape == (2, 3, M, 1)
    assert fw.numpy(K_ij.sum(axis=2)).shape == (2, 3, N, 1)
    assert K_ij.sum(dim=4).formula.startswith("Sum(")  # the inner axis: a vector operation
    with pytest.raises(ValueError, match=r"axis \(or dim\) 2 \(reduce over i\) or 3 \(over j\) \(this LazyTensor has 2"):
        K_ij.sum(dim=1)
    with pytest.raises(ValueError, match="do not broadcast"):
        x_i - lt.LazyTensor(fw.array(np.ones((4, 1, N, D))))


def test_empty_batch(fw):
    lt = fw.module
    x_i = lt.LazyTensor(fw.array(np.ones((0, M, 1, D))))
    y_j = lt.LazyTensor(fw.array(np.ones((N, D))), axis=1)
    assert fw.numpy((x_i - y_j).argmin(dim=2)).shape == (0, M, D)


# ---------------------------------------------------------------------------------------------- ranges


def mask_from_ranges(ranges, n_i, n_j):
    """Dense (n_i, n_j) mask of a ranges 6-tuple, read from its first half (output indexed by i)."""
    ranges_i, slices_i, redranges_j = (np.asarray(r) for r in ranges[:3])
    mask = np.zeros((n_i, n_j), dtype=bool)
    start = 0
    for (a, b), end in zip(ranges_i, slices_i):
        for c, d in redranges_j[start:end]:
            mask[a:b, c:d] = True
        start = end
    return mask


def mask_from_ranges_j(ranges, n_i, n_j):
    """Same from the second half (output indexed by j), as an (n_i, n_j) mask."""
    return mask_from_ranges((*ranges[3:], *ranges[:3]), n_j, n_i).T


def clustered_problem(fw, drop_first=False, seed=0):
    """Points sorted by grid cluster, and the ranges of the cluster pairs whose centroids are close.

    Every i-cluster keeps its nearest j-cluster and conversely, so that every reduced set is non-empty;
    drop_first leaves the first i-cluster out of ranges_i (its rows are covered by no range).
    """
    cl = cluster(fw)
    rng = np.random.default_rng(seed)
    x, y = (fw.array(rng.uniform(0, 1, (n, 2))) for n in (70, 60))
    x_lab, y_lab = cl.grid_cluster(x, 0.25), cl.grid_cluster(y, 0.25)
    x, x_lab = cl.sort_clusters(x, x_lab)
    y, y_lab = cl.sort_clusters(y, y_lab)
    x_ranges, x_centroids, _ = cl.cluster_ranges_centroids(x, x_lab)
    y_ranges, y_centroids, _ = cl.cluster_ranges_centroids(y, y_lab)
    d2 = ((fw.numpy(x_centroids)[:, None, :] - fw.numpy(y_centroids)[None, :, :]) ** 2).sum(-1)
    keep = d2 < 0.1
    keep[np.arange(len(d2)), d2.argmin(1)] = True
    keep[d2.argmin(0), np.arange(d2.shape[1])] = True
    if drop_first:
        keep[0] = False
        x_ranges_kept = x_ranges[1:]
        ranges = cl.from_matrix(x_ranges_kept, y_ranges, fw.array(keep[1:]))
    else:
        ranges = cl.from_matrix(x_ranges, y_ranges, fw.array(keep))
    mask = mask_from_ranges(ranges, 70, 60)
    assert (mask == mask_from_ranges_j(ranges, 70, 60)).all() and 0 < mask.mean() < 1
    return fw.numpy(x), fw.numpy(y), x, y, ranges, mask


@pytest.mark.parametrize("drop_first", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op, K", [("Sum", None), ("Min", None), ("Max", None), ("ArgMin", None), ("ArgMax", None),
                                   ("Min_ArgMin", None), ("KMin", 1), ("ArgKMin", 1), ("KMin_ArgKMin", 1),
                                   ("LogSumExp", None)])
def test_ranges_match_a_masked_dense_computation(fw, op, K, axis, drop_first):
    x, y, X, Y, ranges, mask = clustered_problem(fw, drop_first)
    F = -((x[:, None, :] - y[None, :, :]) ** 2).sum(-1, keepdims=True)
    g = fw.module.Genred("-SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=axis, opt_arg=K)
    ref = masked_reference(op, F if axis == 1 else F.transpose(1, 0, 2), mask if axis == 1 else mask.T, K)
    compare(fw, g(X, Y, ranges=ranges), ref)


def test_ranges_through_lazytensors(fw):
    x, y, X, Y, ranges, mask = clustered_problem(fw)
    lt = fw.module
    F = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1, keepdims=True)
    D_ij = lt.Vi(X).sqdist(lt.Vj(Y))
    compare(fw, D_ij.argKmin(1, dim=1, ranges=ranges), masked_reference("ArgKMin", F, mask, 1))
    D_ij.ranges = ranges  # the attribute is the default of every reduction of D_ij and of what is built on it
    compare(fw, D_ij.min(dim=0), masked_reference("Min", F.transpose(1, 0, 2), mask.T))
    K_ij = (-D_ij).exp()
    assert K_ij.ranges is ranges
    b = np.random.default_rng(3).standard_normal(60)
    compare(fw, K_ij @ fw.array(b), (np.exp(-F[..., 0]) * mask) @ b)
    compare(fw, K_ij.T @ fw.array(x[:, 0].copy()), (np.exp(-F[..., 0]) * mask).T @ x[:, 0])
    other = lt.Vi(X).sqdist(lt.Vj(Y))
    other.ranges = cluster(fw).swap_axes(ranges)
    with pytest.raises(ValueError, match="different ranges"):
        K_ij + other
    assert K_ij.T.ranges[0] is ranges[3] and K_ij.T.ranges[3] is ranges[0]


def test_ranges_with_batch_dimensions(fw):
    x, y, X, Y, ranges, mask = clustered_problem(fw)
    p = np.array([[0.5], [1.0], [2.0]])  # batch of 3 scales, the same sparsity pattern in each batch
    g = fw.module.Genred("-SqDist(x,y) * p", ["x = Vi(2)", "y = Vj(2)", "p = Pm(1)"], reduction_op="LogSumExp", axis=1)
    got = g(X, Y, fw.array(p), ranges=ranges)
    F = -((x[:, None, :] - y[None, :, :]) ** 2).sum(-1, keepdims=True)
    compare(fw, got, np.stack([masked_reference("LogSumExp", F * s, mask) for s in p[:, 0]]))
    xb = np.stack([x, x + 0.01])  # Vi variables batched too
    g = fw.module.Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op="ArgMin", axis=1)
    got = g(fw.array(xb), Y, ranges=ranges)
    ref = np.stack([masked_reference("ArgMin", ((xx[:, None] - y[None]) ** 2).sum(-1, keepdims=True), mask) for xx in xb])
    compare(fw, got, ref)


def good_ranges(fw):
    a = lambda v: fw.array(np.array(v, dtype=np.int64))  # noqa: E731
    return [a([[0, 4]]), a([1]), a([[0, 3]]), a([[0, 3]]), a([1]), a([[0, 4]])]


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda r, fw: r[:5], ValueError, "6-tuple"),
        (lambda r, fw: "ranges", ValueError, "6-tuple"),
        (lambda r, fw: [fw.array(np.array([[0.0, 4.0]]))] + r[1:], TypeError, "ranges_i has dtype float64"),
        (lambda r, fw: [[[0, 4]]] + r[1:], TypeError, "ranges_i is a list"),
        (lambda r, fw: [fw.array(np.array([[0, 4, 1]]))] + r[1:], ValueError, r"ranges_i should have shape \(n, 2\)"),
        (lambda r, fw: r[:4] + [fw.array(np.array([[1]]))] + r[5:], ValueError, r"the six arrays must have the same batch dimensions"),
        (lambda r, fw: r[:1] + [fw.array(np.array([1, 1]))] + r[2:], ValueError, "slices_i has 2 entries"),
        (lambda r, fw: [fw.array(np.array([[0, 5]]))] + r[1:], ValueError, r"ranges_i\[0\] = \[0, 5\)"),
        (lambda r, fw: [fw.array(np.array([[3, 2]]))] + r[1:], ValueError, "ranges_i"),
        (lambda r, fw: r[:2] + [fw.array(np.array([[0, 4]]))] + r[3:], ValueError, "redranges_j"),
        (lambda r, fw: r[:1] + [fw.array(np.array([2]))] + r[2:], ValueError, "slices_i"),
    ],
)
def test_bad_ranges_are_rejected(fw, change, error, match):
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], axis=1)
    x, y = fw.array(np.zeros((4, 1))), fw.array(np.zeros((3, 1)))
    with pytest.raises(error, match=match):
        g(x, y, ranges=change(good_ranges(fw), fw))


def test_int32_ranges_are_accepted(fw):
    g = fw.module.Genred("x - y", ["x = Vi(1)", "y = Vj(1)"], axis=1)
    x, y = fw.array(np.arange(4.0)[:, None]), fw.array(np.arange(3.0)[:, None])
    ranges = [fw.numpy(r).astype(np.int32) for r in good_ranges(fw)]
    got = g(x, y, ranges=[fw.array(r) for r in ranges])
    np.testing.assert_array_equal(fw.numpy(got)[:, 0], 3 * np.arange(4.0) - 3)


# ----------------------------------------------------------------------------------------- cluster helpers


def test_grid_cluster(fw):
    cl = cluster(fw)
    x = fw.array(np.array([[0.0, 0.0], [0.05, 0.02], [0.5, 0.0], [0.0, 0.5], [0.52, 0.03]]))
    lab = fw.numpy(cl.grid_cluster(x, 0.1))
    assert lab.dtype == (np.int32 if fw.name == "torch" else np.int64)
    assert lab.tolist() == [0, 0, 2, 1, 2]  # voxels numbered in lexicographic order of their coordinates
    lab = fw.numpy(cl.grid_cluster(x, fw.array(np.array([1.0, 0.1]))))
    assert lab.tolist() == [0, 0, 0, 1, 0]
    with pytest.raises(NotImplementedError, match="dimension 1, 2 or 3"):
        cl.grid_cluster(fw.array(np.zeros((3, 4))), 0.1)
    with pytest.raises(ValueError, match="positive"):
        cl.grid_cluster(x, 0.0)


def test_sort_ranges_centroids(fw):
    cl = cluster(fw)
    x = np.array([[5.0], [1.0], [6.0], [2.0], [3.0]])
    lab = fw.array(np.array([1, 0, 1, 0, 0]))
    (xs, w), ls = cl.sort_clusters((fw.array(x), fw.array(np.arange(5.0))), lab)
    assert fw.numpy(ls).tolist() == [0, 0, 0, 1, 1] and fw.numpy(w).tolist() == [1, 3, 4, 0, 2]
    ranges = cl.cluster_ranges(ls)
    assert fw.numpy(ranges).tolist() == [[0, 3], [3, 5]] and fw.numpy(ranges).dtype == np.int64
    np.testing.assert_allclose(fw.numpy(cl.cluster_centroids(xs, ls)), [[2.0], [5.5]])
    weights = fw.array(np.array([1.0, 1.0, 2.0, 3.0, 1.0]))
    np.testing.assert_allclose(fw.numpy(cl.cluster_centroids(xs, ls, weights=weights)), [[9 / 4], [21 / 4]])
    r, c, n = cl.cluster_ranges_centroids(xs, ls)
    assert fw.numpy(r).tolist() == [[0, 3], [3, 5]] and fw.numpy(n).tolist() == [3, 2]
    r, c, wc = cl.cluster_ranges_centroids(xs, ls, weights=fw.array(np.array([0.0, 0.0, 0.0, 1.0, 3.0])))
    np.testing.assert_allclose(fw.numpy(wc), [1e-9, 4.0])  # clamped to min_weight
    np.testing.assert_allclose(fw.numpy(c)[1], [23 / 4])


def test_from_matrix_and_swap_axes(fw):
    cl = cluster(fw)
    ranges_i = fw.array(np.array([[0, 2], [2, 5], [5, 6]]))
    ranges_j = fw.array(np.array([[0, 3], [3, 4]]))
    keep = fw.array(np.array([[True, False], [True, True], [False, False]]))
    out = [fw.numpy(r).tolist() for r in cl.from_matrix(ranges_i, ranges_j, keep)]
    assert out == [
        [[0, 2], [2, 5], [5, 6]], [1, 3, 3], [[0, 3], [0, 3], [3, 4]],
        [[0, 3], [3, 4]], [2, 3], [[0, 2], [2, 5], [2, 5]],
    ]
    swapped = cl.swap_axes(cl.from_matrix(ranges_i, ranges_j, keep))
    assert [fw.numpy(r).tolist() for r in swapped] == out[3:] + out[:3]
    assert cl.swap_axes(None) is None
    with pytest.raises(ValueError, match=r"keep should have shape \(3, 2\)"):
        cl.from_matrix(ranges_i, ranges_j, fw.array(np.ones((2, 3), dtype=bool)))


def test_one_block_sparse_pattern_per_batch(fw):
    """Ranges arrays with leading batch dims: each batch has its own pattern (KeOps refuses batch + ranges)."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 6, 2))
    # batch 0: rows [0, 3) see j in [0, 2); batch 1: rows [2, 5) see j in [1, 6)
    ranges_i = np.array([[[0, 3]], [[2, 5]]], dtype=np.int64)
    slices_i = np.array([[1], [1]], dtype=np.int64)
    red_j = np.array([[[0, 2]], [[1, 6]]], dtype=np.int64)
    ranges_j = np.array([[[0, 2]], [[1, 6]]], dtype=np.int64)
    slices_j = np.array([[1], [1]], dtype=np.int64)
    red_i = np.array([[[0, 3]], [[2, 5]]], dtype=np.int64)
    mask = np.zeros((2, 5, 6), bool)
    mask[0, 0:3, 0:2] = True
    mask[1, 2:5, 1:6] = True
    kernel = np.exp(-((x[:, :, None] - y[:, None]) ** 2).sum(-1)) * mask
    g = fw.module.Genred("Exp(-SqDist(x,y))", ["x = Vi(2)", "y = Vj(2)"], axis=1)
    ranges = tuple(fw.array(r) for r in (ranges_i, slices_i, red_j, ranges_j, slices_j, red_i))
    out = g(fw.array(x), fw.array(y), ranges=ranges)
    np.testing.assert_allclose(fw.numpy(out), kernel.sum(2)[..., None], rtol=1e-12)
    g0 = fw.module.Genred("Exp(-SqDist(x,y))", ["x = Vi(2)", "y = Vj(2)"], axis=0)
    np.testing.assert_allclose(fw.numpy(g0(fw.array(x), fw.array(y), ranges=ranges)), kernel.sum(1)[..., None], rtol=1e-12)
    bad = tuple(fw.array(np.concatenate([r, r])) for r in (ranges_i, slices_i, red_j, ranges_j, slices_j, red_i))
    with pytest.raises(ValueError, match="per-batch patterns have batch dimensions"):
        g(fw.array(x), fw.array(y), ranges=bad)


@pytest.fixture
def tiny_cache_chunks():
    """The CPU engine cuts every row's reduction into chunks of one vector of j (see CpuKernel::run), resuming the
    rows' states between chunks: results must not change."""
    from pykeops.common.engine import load_engine

    engine = load_engine()
    engine.set_chunk_bytes(1)
    yield
    engine.set_chunk_bytes(0)


@pytest.mark.parametrize("op, K", [("Sum", None), ("ArgMin", None), ("KMin_ArgKMin", 2), ("LogSumExp", None)])
def test_ranges_and_batches_in_cache_chunks(fw, tiny_cache_chunks, op, K):
    for axis, drop_first in itertools.product((0, 1), (False, True)):  # (its reference knows K = 1 only)
        test_ranges_match_a_masked_dense_computation(fw, op, K and 1, axis, drop_first)
    test_one_block_sparse_pattern_per_batch(fw)
    if op == "LogSumExp":
        return
    rng = np.random.default_rng(2)  # batch dimensions, with rows long enough to be cut in chunks
    x, y, p = rng.standard_normal((2, 1, 20, D)), rng.standard_normal((3, 50, D)), rng.uniform(0.5, 2, (2, 3, 1))
    g = fw.module.Genred("(x - y) * p", ["x = Vi(3)", "y = Vj(3)", "p = Pm(1)"], reduction_op=op, axis=1, opt_arg=K)
    F = (x[..., :, None, :] - y[..., None, :, :]) * p[..., None, None, :]
    compare(fw, g(*(fw.array(a) for a in (x, y, p))), batch_loop(op, F, 1, K))
