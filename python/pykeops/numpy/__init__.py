"""pykeops.numpy: KeOps reductions and LazyTensors over NumPy arrays."""

from .genred import Genred
from .lazy_tensor import LazyTensor, Pm, Vi, Vj

__all__ = ["Genred", "LazyTensor", "Vi", "Vj", "Pm"]
