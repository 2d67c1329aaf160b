"""LazyTensor, Vi, Vj, Pm, Var for torch tensors."""

from ..common.lazy_tensor import GenericLazyTensor, variable_helpers
from .genred import Genred
from .operations import KernelSolve
from .tools import TorchTools


class LazyTensor(GenericLazyTensor):
    """Symbolic (M, N, D) array over torch tensors: a formula F(x_i, y_j) that is never stored, only reduced.

    LazyTensor(x, axis) wraps an array: of shape (M, 1, D) (or (M, D) with axis=0) it is indexed by i, of shape
    (1, N, D) (or (N, D) with axis=1) by j, and of shape (D,) (axis=2) it is a parameter; leading dimensions are
    batch dimensions, broadcast as in NumPy. LazyTensor(number) is a constant, LazyTensor((ind, dim, cat)) a
    symbolic variable given when the reduced result is called. Vi, Vj and Pm are short forms. A complex array gives
    a ComplexLazyTensor.

    Arithmetic (+ - * / **, comparisons), element-wise functions (exp, log, sin, sqrt, relu, ...), vector
    operations on the inner dimension D (sum(-1), sqnorm2, sqdist, |, matvecmult, x[k], concat, ...) and
    derivatives (grad, diff, laplacian) build a new LazyTensor. A reduction over i (axis/dim 0) or j (1) runs
    the formula: sum, logsumexp, sumsoftmaxweight, min, max, argmin, argmax, min_argmin, Kmin, argKmin,
    Kmin_argKmin, and the linear algebra K @ v and K.solve(b). The result is a torch tensor on the arrays' device.
    Gradients flow through every reduction with torch.autograd.

    Example:
        >>> x, y, b = torch.rand(100, 3), torch.rand(200, 3), torch.rand(200, 2)
        >>> x_i, y_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
        >>> K_ij = (-((x_i - y_j) ** 2).sum(-1)).exp()        # (100, 200) symbolic matrix
        >>> K_ij.shape
        (100, 200)
        >>> (K_ij @ b).shape                                   # sum_j K_ij b_j
        torch.Size([100, 2])
    """

    tools = TorchTools
    Genred = Genred
    KernelSolve = KernelSolve


Vi, Vj, Pm, Var = variable_helpers(LazyTensor)
