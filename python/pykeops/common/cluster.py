"""Cluster helpers that build block-sparse `ranges=` for reductions, written once over a framework's ArrayTools.

Typical use (see tests/python/test_batch_ranges.py): label the points with grid_cluster, sort them by label
with sort_clusters, get each cluster's [start, end) rows and centroid with cluster_ranges_centroids, decide
which pairs of clusters interact (a boolean (Mc, Nc) matrix, e.g. centroid distance below a threshold) and
turn it into the 6-tuple that Genred and LazyTensor reductions take with from_matrix.

Differences from KeOps 2.3, on purpose: both frameworks quantise `(x - min(x)) / size` (the NumPy version of
KeOps omits the min shift), distinct voxels are numbered by a row-wise unique (no packing of coordinates in
one integer, so no collisions on grids wider than 1024 voxels), and ranges are always int64.
"""

import functools
import inspect
import numbers

from .tools import type_name


def _check_array(tools, x, what, ndim=None):
    if not tools.is_array(x):
        raise TypeError(f"{what} is a {type_name(x)}: pykeops.{tools.name}.cluster expects a {tools.array_type.__name__}")
    if ndim is not None and len(x.shape) != ndim:
        raise ValueError(f"{what} should have {ndim} axes, got shape {tuple(x.shape)}")


def _check_labels(tools, lab):
    _check_array(tools, lab, "lab", 1)
    if not tools.is_integer(lab):
        raise TypeError(f"lab has dtype {tools.dtype_name(lab)}: cluster labels are integers")


def _num_labels(lab):
    return int(lab.max()) + 1 if lab.shape[0] > 0 else 0


def grid_cluster(tools, x, size):
    """Labels in [0, C) of the voxels of side `size` (a float, or one per dimension) that hold each point.

    x: (M, D) points with D in 1, 2, 3. Voxels are counted from min(x) and numbered in lexicographic order.
    """
    _check_array(tools, x, "x", 2)
    D = x.shape[1]
    if D not in (1, 2, 3):
        raise NotImplementedError(f"grid_cluster handles points of dimension 1, 2 or 3, got D = {D}")
    if isinstance(size, numbers.Real):
        if not size > 0:
            raise ValueError(f"the voxel size must be positive, got {size}")
    else:
        size = tools.as_array_like(size, x)
        if tuple(size.shape) != (D,):
            raise ValueError(f"the voxel size is a number or a ({D},) array, got shape {tuple(size.shape)}")
        if not bool((size > 0).all()):
            raise ValueError("the voxel sizes must be positive")
    if x.shape[0] == 0:
        return tools.astype(tools.floor_int(x[:, 0]), tools.label_dtype)
    coords = tools.floor_int((x - tools.min_rows(x)) / size)
    return tools.astype(tools.unique_rows_inverse(coords), tools.label_dtype)


def sort_clusters(tools, x, lab):
    """Sort points by label (stable): x is an array or a tuple/list of arrays; returns (x_sorted, lab_sorted)."""
    _check_labels(tools, lab)
    perm = tools.argsort(lab)
    if isinstance(x, (tuple, list)):
        return type(x)(a[perm] for a in x), lab[perm]
    return x[perm], lab[perm]


def cluster_ranges(tools, lab, Nlab=None):
    """(C, 2) int64 [start, end) of each cluster's rows, for points sorted by label (Nlab: the counts)."""
    if Nlab is None:
        _check_labels(tools, lab)
        Nlab = tools.counts(lab, _num_labels(lab))
    Nlab = tools.as_int64(Nlab)
    ends = tools.cumsum(Nlab)
    return tools.stack_columns(ends - Nlab, ends)


def cluster_centroids(tools, x, lab, Nlab=None, weights=None, weights_c=None):
    """(C, D) mean point of each cluster; weighted means when weights (M,) are given (weights_c: their sums)."""
    _check_array(tools, x, "x", 2)
    _check_labels(tools, lab)
    C = _num_labels(lab) if Nlab is None else Nlab.shape[0]
    if weights is None:
        if Nlab is None:
            Nlab = tools.counts(lab, C)
        return tools.segment_sum(x, lab, C) / tools.astype(Nlab, x.dtype)[:, None]
    if weights_c is None:
        weights_c = tools.segment_sum(weights, lab, C)
    return tools.segment_sum(x * weights[:, None], lab, C) / weights_c[:, None]


def cluster_ranges_centroids(tools, x, lab, weights=None, min_weight=1e-9):
    """(ranges, centroids, cluster weights): the counts when weights is None, else the summed weights.

    Summed weights are clamped to min_weight so that a cluster of zero weight gives no division by zero.
    """
    _check_array(tools, x, "x", 2)
    _check_labels(tools, lab)
    C = _num_labels(lab)
    Nlab = tools.counts(lab, C)
    ranges = cluster_ranges(tools, lab, Nlab)
    if weights is None:
        return ranges, cluster_centroids(tools, x, lab, Nlab), tools.astype(Nlab, x.dtype)
    weights_c = tools.segment_sum(weights, lab, C)
    weights_c = weights_c * (weights_c >= min_weight) + min_weight * (weights_c < min_weight)
    return ranges, cluster_centroids(tools, x, lab, Nlab, weights, weights_c), weights_c


def from_matrix(tools, ranges_i, ranges_j, keep):
    """The ranges 6-tuple of the cluster pairs (k, l) with keep[k, l] True.

    ranges_i (Mc, 2), ranges_j (Nc, 2): the clusters' rows; keep: (Mc, Nc) booleans. Returns
    (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i): slices_i[k] = number of kept pairs in
    rows 0..k of keep, redranges_j lists the kept j-clusters row after row; the last three are the transpose.
    """
    for name, r in (("ranges_i", ranges_i), ("ranges_j", ranges_j)):
        _check_array(tools, r, name, 2)
        if r.shape[1] != 2:
            raise ValueError(f"{name} should have shape (n, 2), got {tuple(r.shape)}")
    _check_array(tools, keep, "keep", 2)
    if tuple(keep.shape) != (ranges_i.shape[0], ranges_j.shape[0]):
        raise ValueError(
            f"keep should have shape ({ranges_i.shape[0]}, {ranges_j.shape[0]}) (clusters of i by clusters of j), "
            f"got {tuple(keep.shape)}"
        )
    ranges_i, ranges_j = tools.as_int64(ranges_i), tools.as_int64(ranges_j)
    keep = keep != 0
    rows, cols = tools.nonzero(keep)  # row-major: for each i-cluster, its kept j-clusters
    slices_i = tools.cumsum(tools.counts(rows, keep.shape[0]))
    redranges_j = ranges_j[cols]
    cols_t, rows_t = tools.nonzero(keep.T)  # for each j-cluster, its kept i-clusters
    slices_j = tools.cumsum(tools.counts(cols_t, keep.shape[1]))
    redranges_i = ranges_i[rows_t]
    return tuple(tools.as_int64(r) for r in (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i))


def swap_axes(ranges):
    """The ranges of the transposed reduction: None stays None, else the two halves swapped."""
    return None if ranges is None else (*ranges[3:6], *ranges[0:3])


@functools.lru_cache(maxsize=None)
def framework_helpers(tools):
    """The public cluster functions bound to one framework's tools (see pykeops.numpy.cluster), with the
    signatures of the functions without their `tools` argument (what inspect.signature shows). One dict per tools."""

    def bind(fn):
        @functools.wraps(fn)
        def helper(*args, **kwargs):
            return fn(tools, *args, **kwargs)

        signature = inspect.signature(fn)
        helper.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
        helper.__module__ = f"pykeops.{tools.name}.cluster"
        return helper

    return {fn.__name__: bind(fn) for fn in (
        grid_cluster, sort_clusters, cluster_ranges, cluster_centroids, cluster_ranges_centroids, from_matrix,
    )}
