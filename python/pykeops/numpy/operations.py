"""KernelSolve and the generic_* reduction helpers for NumPy arrays."""

from ..common.genred import generic_reductions
from ..common.operations import KERNEL_SOLVE_DOC, GenericKernelSolve
from .genred import Genred


class KernelSolve(GenericKernelSolve):
    __doc__ = KERNEL_SOLVE_DOC.format(
        returns="A NumPy array", grad="",
        example="x, b = np.random.rand(50, 2), np.random.rand(50, 1)",
    )

    Genred = Genred

    def __init__(
        self, formula, aliases, varinvalias, axis=0, dtype=None, opt_arg=None, dtype_acc="auto", use_double_acc=False,
        sum_scheme="auto", enable_chunks=True, rec_multVar_highdim=None, use_fast_math=True,
    ):
        # (pykeops.numpy's positional order, which differs from pykeops.torch's)
        if opt_arg is not None:
            raise ValueError("KernelSolve takes no opt_arg: its reduction is a Sum")
        super().__init__(
            formula, aliases, varinvalias, axis=axis, dtype_acc=dtype_acc, use_double_acc=use_double_acc,
            sum_scheme=sum_scheme, enable_chunks=enable_chunks, rec_multVar_highdim=rec_multVar_highdim, dtype=dtype,
            use_fast_math=use_fast_math,
        )


generic_sum, generic_logsumexp, generic_argmin, generic_argkmin = generic_reductions(Genred)
for _helper in (generic_sum, generic_logsumexp, generic_argmin, generic_argkmin):
    _helper.__module__ = __name__
