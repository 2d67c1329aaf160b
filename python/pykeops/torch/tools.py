"""TorchTools: the ArrayTools primitives for torch tensors."""

import torch

from ..common.tools import ArrayTools


class TorchTools(ArrayTools):
    name = "torch"
    array_type = torch.Tensor

    @staticmethod
    def dtype_name(x):
        return str(x.dtype).removeprefix("torch.")

    @staticmethod
    def device(x):
        return str(x.device)

    @staticmethod
    def default_dtype():
        return str(torch.get_default_dtype()).removeprefix("torch.")

    @staticmethod
    def contiguous(x):
        return x.detach().contiguous()

    @staticmethod
    def is_writable_contiguous(x):
        return x.is_contiguous()

    @staticmethod
    def empty(shape, dtype, device):
        return torch.empty(shape, dtype=getattr(torch, dtype), device=device)

    @staticmethod
    def from_values(values, dtype, device):
        return torch.tensor(values, dtype=getattr(torch, dtype), device=device)

    @staticmethod
    def data_ptr(x):
        return x.data_ptr()

    @staticmethod
    def needs_grad(arrays):
        return torch.is_grad_enabled() and any(a.requires_grad for a in arrays)

    @staticmethod
    def is_integer(x):
        return not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != torch.bool

    @staticmethod
    def as_int64(x):
        return x.detach().to(torch.int64).contiguous()

    @staticmethod
    def log(x):
        return torch.log(x)
