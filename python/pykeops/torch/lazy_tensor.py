"""LazyTensor, Vi, Vj, Pm, Var for torch tensors."""

from ..common.lazy_tensor import GenericLazyTensor, variable_helpers
from .genred import Genred
from .operations import KernelSolve
from .tools import TorchTools


class LazyTensor(GenericLazyTensor):
    """Symbolic wrapper for torch tensors (see pykeops.common.lazy_tensor.GenericLazyTensor)."""

    tools = TorchTools
    Genred = Genred
    KernelSolve = KernelSolve


Vi, Vj, Pm, Var = variable_helpers(LazyTensor)
