"""Genred for jax.Arrays."""

from ..common.genred import GENRED_DOC, GenericGenred
from .tools import JaxTools


class Genred(GenericGenred):
    __doc__ = GENRED_DOC.format(
        arrays="jax.Arrays (inside jax.jit too, as an XLA custom call; differentiable by jax.grad, batched by jax.vmap)",
        returns="A jax.Array", shape="(5, 1)", call_arrays="jax.Arrays (out= is not supported)",
        example="x, y, b = jnp.ones((5, 3)), jnp.zeros((7, 3)), jnp.ones((7, 1))",
    )

    tools = JaxTools
