"""LazyTensor, Vi, Vj, Pm, Var for jax.Arrays."""

from ..common.lazy_tensor import GenericLazyTensor, variable_helpers
from .genred import Genred
from .operations import KernelSolve
from .tools import JaxTools


class LazyTensor(GenericLazyTensor):
    """Symbolic (M, N, D) array over jax.Arrays, as pykeops.numpy.LazyTensor (see its documentation): reductions
    are XLA custom calls, so they run inside jax.jit, and are differentiable (jax.grad, jax.vjp, any order) and
    batched (jax.vmap)."""

    tools = JaxTools
    Genred = Genred
    KernelSolve = KernelSolve


Vi, Vj, Pm, Var = variable_helpers(LazyTensor)
