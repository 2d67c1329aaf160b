"""pykeops.jax: KeOps reductions and LazyTensors over jax.Arrays, as XLA custom calls (jit, grad, vmap)."""

try:
    import jax  # noqa: F401
except ImportError as e:
    raise ImportError(f"pykeops.jax needs jax and jaxlib (`pip install jax jaxlib`): {e}") from e

from . import primitive

primitive.engine()  # registers the FFI target; ImportError when the engine was built without it

from .genred import Genred  # noqa: E402
from .lazy_tensor import LazyTensor, Pm, Vi, Vj  # noqa: E402
from .operations import KernelSolve, generic_argkmin, generic_argmin, generic_logsumexp, generic_sum  # noqa: E402

__all__ = [
    "Genred", "generic_sum", "generic_logsumexp", "generic_argmin", "generic_argkmin", "KernelSolve",
    "LazyTensor", "Vi", "Vj", "Pm",
]
