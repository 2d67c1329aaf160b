"""LazyTensor, Vi, Vj, Pm, Var for NumPy arrays."""

from ..common.lazy_tensor import GenericLazyTensor, variable_helpers
from .genred import Genred
from .operations import KernelSolve
from .tools import NumpyTools


class LazyTensor(GenericLazyTensor):
    """Symbolic wrapper for NumPy arrays (see pykeops.common.lazy_tensor.GenericLazyTensor)."""

    tools = NumpyTools
    Genred = Genred
    KernelSolve = KernelSolve


Vi, Vj, Pm, Var = variable_helpers(LazyTensor)
