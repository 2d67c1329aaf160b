"""from_matrix for numpy arrays (pykeops.common.cluster.from_matrix)."""

from ...common.cluster import framework_helpers
from ..tools import NumpyTools

from_matrix = framework_helpers(NumpyTools)["from_matrix"]
