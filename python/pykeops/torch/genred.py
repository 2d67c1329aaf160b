"""Genred for torch CPU tensors."""

from ..common.genred import GENRED_DOC, GenericGenred
from .tools import TorchTools


class Genred(GenericGenred):
    __doc__ = GENRED_DOC.format(
        arrays="torch tensors", returns="A torch tensor", shape="torch.Size([5, 1])",
        call_arrays="torch tensors (CPU, or CUDA through the GPU backend; gradients flow through autograd)",
        example="x, y, b = torch.rand(5, 3), torch.rand(7, 3), torch.rand(7, 1)",
    )

    tools = TorchTools
