"""Cluster helpers for block-sparse reductions on NumPy arrays (see pykeops.common.cluster)."""

from ..common.cluster import framework_helpers, swap_axes
from .tools import NumpyTools

_helpers = framework_helpers(NumpyTools)
grid_cluster = _helpers["grid_cluster"]
sort_clusters = _helpers["sort_clusters"]
cluster_ranges = _helpers["cluster_ranges"]
cluster_centroids = _helpers["cluster_centroids"]
cluster_ranges_centroids = _helpers["cluster_ranges_centroids"]
from_matrix = _helpers["from_matrix"]

__all__ = [
    "grid_cluster", "sort_clusters", "cluster_ranges", "cluster_centroids", "cluster_ranges_centroids",
    "from_matrix", "swap_axes",
]
