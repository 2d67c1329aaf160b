"""KernelSolve and the generic_* reduction helpers for torch tensors."""

from ..common.genred import generic_reductions
from ..common.operations import KERNEL_SOLVE_DOC, GenericKernelSolve
from .genred import Genred


class KernelSolve(GenericKernelSolve):
    __doc__ = KERNEL_SOLVE_DOC.format(
        returns="A torch tensor",
        grad=" Gradients with respect to b and the other arguments flow through autograd (implicit differentiation).",
        example="x, b = torch.rand(50, 2, dtype=torch.float64), torch.rand(50, 1, dtype=torch.float64)",
    )

    Genred = Genred


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = generic_reductions(Genred)
for _helper in (generic_sum, generic_logsumexp, generic_argmin, generic_argkmin):
    _helper.__module__ = __name__
