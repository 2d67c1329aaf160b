"""JaxTools: the ArrayTools primitives for jax.Arrays (and tracers, whose shapes and dtypes are static)."""

import jax
import jax.numpy as jnp

from ..common.tools import ArrayTools
from . import primitive


class JaxTools(ArrayTools):
    name = "jax"
    array_type = jax.Array
    compiled = primitive  # every reduction is an XLA custom call (primitive.call), differentiable by custom_vjp

    @staticmethod
    def dtype_name(x):
        return str(x.dtype)

    @staticmethod
    def device(x):
        # (tracers have no device: the custom call runs where XLA's CPU target runs it)
        if isinstance(x, jax.core.Tracer):
            return "cpu"
        platforms = {d.platform for d in x.devices()}
        return "cpu" if platforms == {"cpu"} else ",".join(sorted(platforms))

    @staticmethod
    def default_dtype():
        return "float64" if jax.config.jax_enable_x64 else "float32"

    @staticmethod
    def contiguous(x):
        return x  # XLA's buffers are dense row-major

    @staticmethod
    def is_writable_contiguous(x):
        return False

    @staticmethod
    def may_share_memory(a, b):
        return False

    @staticmethod
    def from_values(values, dtype, device):
        return jnp.array(values, dtype=dtype)

    @staticmethod
    def needs_grad(arrays):
        return False

    @staticmethod
    def is_integer(x):
        return jnp.issubdtype(x.dtype, jnp.integer)

    @staticmethod
    def as_int64(x):
        return x.astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)

    @staticmethod
    def log(x):
        return jnp.log(x)
