"""Cluster helpers for block-sparse reductions on torch arrays (see pykeops.common.cluster), at KeOps's module paths."""

# (the submodules are imported before their functions are bound here, so that the package's names stay the functions)
from .grid_cluster import grid_cluster
from .matrix import from_matrix
from .utils import cluster_centroids, cluster_ranges, cluster_ranges_centroids, sort_clusters, swap_axes

__all__ = [
    "grid_cluster", "sort_clusters", "cluster_ranges", "cluster_centroids", "cluster_ranges_centroids",
    "from_matrix", "swap_axes",
]
