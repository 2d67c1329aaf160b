"""sort_clusters, cluster_ranges, cluster_centroids, cluster_ranges_centroids, swap_axes for torch arrays."""

from ...common.cluster import framework_helpers, swap_axes  # noqa: F401  (re-exported)
from ..tools import TorchTools

_helpers = framework_helpers(TorchTools)
sort_clusters = _helpers["sort_clusters"]
cluster_ranges = _helpers["cluster_ranges"]
cluster_centroids = _helpers["cluster_centroids"]
cluster_ranges_centroids = _helpers["cluster_ranges_centroids"]
