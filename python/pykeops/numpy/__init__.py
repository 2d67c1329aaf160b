"""pykeops.numpy: KeOps reductions and LazyTensors over NumPy arrays."""

from . import cluster  # noqa: F401  (pykeops.numpy.cluster)
from .genred import Genred
from .lazy_tensor import LazyTensor, Pm, Vi, Vj
from .operations import KernelSolve, generic_argkmin, generic_argmin, generic_logsumexp, generic_sum

from ..common.complex_lazy_tensor import complex_lazy_tensor_class

ComplexLazyTensor = complex_lazy_tensor_class(LazyTensor)  # importable, not in __all__ (as in KeOps)

__all__ = [
    "Genred", "generic_sum", "generic_logsumexp", "generic_argmin", "generic_argkmin", "KernelSolve",
    "LazyTensor", "Vi", "Vj", "Pm",
]
