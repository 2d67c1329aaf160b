"""pykeops.torch.generic.generic_ops: KeOps's module path of generic_sum, generic_logsumexp, generic_argmin, generic_argkmin."""

from ..operations import generic_argkmin, generic_argmin, generic_logsumexp, generic_sum  # noqa: F401
