"""grid_cluster for torch arrays (pykeops.common.cluster.grid_cluster)."""

from ...common.cluster import framework_helpers
from ..tools import TorchTools

grid_cluster = framework_helpers(TorchTools)["grid_cluster"]
