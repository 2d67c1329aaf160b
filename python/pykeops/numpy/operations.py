"""KernelSolve and the generic_* reduction helpers for NumPy arrays."""

from ..common.genred import generic_reductions
from ..common.operations import GenericKernelSolve
from .genred import Genred


class KernelSolve(GenericKernelSolve):
    """Conjugate-gradient solver of (alpha * Id + K) a = b (see pykeops.common.operations.GenericKernelSolve)."""

    Genred = Genred


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = generic_reductions(Genred)
for _helper in (generic_sum, generic_logsumexp, generic_argmin, generic_argkmin):
    _helper.__module__ = __name__
