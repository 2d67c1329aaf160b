"""pykeops.torch.lazytensor.LazyTensor: KeOps's module path (CamelCase file name kept for it) of LazyTensor, Vi, Vj, Pm."""

from .. import ComplexLazyTensor  # noqa: F401
from ..lazy_tensor import LazyTensor, Pm, Var, Vi, Vj  # noqa: F401
