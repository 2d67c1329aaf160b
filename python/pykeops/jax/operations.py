"""KernelSolve and the generic_* reduction helpers for jax.Arrays."""

from ..common.genred import generic_reductions
from ..common.operations import KERNEL_SOLVE_DOC, GenericKernelSolve
from .genred import Genred


class KernelSolve(GenericKernelSolve):
    __doc__ = KERNEL_SOLVE_DOC.format(
        returns="A jax.Array", grad=" Differentiable by jax.grad (implicitly: the backward solves again).",
        example="x, b = jnp.linspace(0, 1, 100).reshape(50, 2), jnp.ones((50, 1))",
    )

    Genred = Genred


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = generic_reductions(Genred)
for _helper in (generic_sum, generic_logsumexp, generic_argmin, generic_argkmin):
    _helper.__module__ = __name__
