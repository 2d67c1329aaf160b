"""pykeops.torch: KeOps reductions and LazyTensors over torch CPU tensors (ImportError without torch)."""

from .genred import Genred
from .lazy_tensor import LazyTensor, Pm, Vi, Vj

__all__ = ["Genred", "LazyTensor", "Vi", "Vj", "Pm"]
