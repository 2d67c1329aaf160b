"""grid_cluster for numpy arrays (pykeops.common.cluster.grid_cluster)."""

from ...common.cluster import framework_helpers
from ..tools import NumpyTools

grid_cluster = framework_helpers(NumpyTools)["grid_cluster"]
