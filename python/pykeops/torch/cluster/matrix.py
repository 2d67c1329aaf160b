"""from_matrix for torch arrays (pykeops.common.cluster.from_matrix)."""

from ...common.cluster import framework_helpers
from ..tools import TorchTools

from_matrix = framework_helpers(TorchTools)["from_matrix"]
