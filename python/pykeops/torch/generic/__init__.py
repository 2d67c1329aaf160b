"""pykeops.torch.generic: KeOps's module path of Genred and the generic_* helpers (re-exported from pykeops.torch)."""

from .generic_ops import generic_argkmin, generic_argmin, generic_logsumexp, generic_sum  # noqa: F401
from .generic_red import Genred  # noqa: F401
