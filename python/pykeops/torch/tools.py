"""TorchTools: the ArrayTools primitives for torch tensors."""

import torch

from ..common.tools import ArrayTools
from . import autograd, compiled


def _check_layout(x, what):
    if x.layout != torch.strided:
        kind = "sparse" if "sparse" in str(x.layout) else str(x.layout).removeprefix("torch._")
        raise TypeError(f"{what} is a {kind} tensor (layout {x.layout}); pass a dense tensor (x.to_dense())")


_CPU = torch.device("cpu")
# Names of the dtypes and devices met so far (str() of either costs more than the rest of a check).
_DTYPE_NAMES, _DEVICE_NAMES = {}, {}


class TorchTools(ArrayTools):
    name = "torch"
    array_type = torch.Tensor
    autograd = autograd
    compiled = compiled

    @staticmethod
    def sharded(genred, args, group, backend, device_id, ranges, out):
        from . import distributed  # (torch.distributed is only loaded by sharded calls)

        return distributed.genred_call(genred, args, group, backend, device_id, ranges, out)

    @staticmethod
    def sharded_solve(solver, args, group, backend, device_id, alpha, eps, ranges):
        from . import distributed

        return distributed.solve_call(solver, args, group, backend, device_id, alpha, eps, ranges)

    @staticmethod
    def dtype_name(x):
        dtype = x.dtype
        name = _DTYPE_NAMES.get(dtype)
        if name is None:
            name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
        return name

    @classmethod
    def check_dtype(cls, x, what):
        """As ArrayTools, plus float16 for CUDA tensors (computed by the GPU backend, pykeops.common.gpu)."""
        _check_layout(x, what)
        if x.dtype == torch.float16 and x.is_cuda:
            return "float16"
        return super().check_dtype(x, what)

    @staticmethod
    def device(x):
        device = x.device
        name = _DEVICE_NAMES.get(device)
        if name is None:
            name = _DEVICE_NAMES[device] = str(device)
        return name

    @staticmethod
    def default_dtype():
        return str(torch.get_default_dtype()).removeprefix("torch.")

    @staticmethod
    def check_storage(x, what):
        _check_layout(x, what)
        if x.is_meta:
            raise ValueError(f"{what} is a meta tensor: meta tensors have no data to compute on")

    @staticmethod
    def holds_its_values(x):
        return not (x.is_neg() or x.is_conj())

    @staticmethod
    def may_share_memory(a, b):
        """Whether the byte ranges spanned by a and b intersect (strides are never negative in torch)."""
        if a.device != b.device or a.numel() == 0 or b.numel() == 0:
            return False

        def span(t):
            start = t.data_ptr()
            last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
            return start, start + (last + 1) * t.element_size()

        (a0, a1), (b0, b1) = span(a), span(b)
        return a0 < b1 and b0 < a1

    @staticmethod
    def layout_key(x):
        # (meta tensors differ by their device, sparse and mkldnn ones by their layout)
        return (type(x), x.dtype, x.device, x.layout, x.shape) if isinstance(x, torch.Tensor) else None

    @staticmethod
    def contiguous(x):
        # resolve_neg/resolve_conj copy the lazy views that the engine's raw reads would get wrong (x.conj().imag,
        # torch._neg_view); autograd still flows through the caller's x. (The first test is the common case, cheaply.)
        if x.is_contiguous() and not (x.is_neg() or x.is_conj()):
            return x
        return x.detach().resolve_neg().resolve_conj().contiguous()

    @staticmethod
    def is_writable_contiguous(x):
        return x.is_contiguous()

    @staticmethod
    def empty(shape, dtype, device):
        # (the shape unpacked and a device object: torch parses these arguments fastest)
        return torch.empty(*shape, dtype=getattr(torch, dtype), device=_CPU if device == "cpu" else device)

    @staticmethod
    def from_values(values, dtype, device):
        return torch.tensor(values, dtype=getattr(torch, dtype), device=device)

    @staticmethod
    def data_ptr(x):
        return x.data_ptr()

    @staticmethod
    def needs_grad(arrays):
        return torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in arrays)

    @staticmethod
    def is_integer(x):
        return not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != torch.bool

    @staticmethod
    def as_int64(x):
        return x.detach().to(torch.int64).contiguous()

    @staticmethod
    def log(x):
        return torch.log(x)

    # Primitives of the cluster helpers (pykeops.common.cluster).
    label_dtype = torch.int32  # as KeOps' torch grid_cluster

    @staticmethod
    def min_rows(x):
        return x.min(dim=0).values

    @staticmethod
    def floor_int(x):
        return torch.floor(x).to(torch.int64)

    @staticmethod
    def unique_rows_inverse(a):
        """Labels in [0, C) numbering the distinct rows of a in lexicographic order."""
        return torch.unique(a, dim=0, return_inverse=True)[1].reshape(-1)

    @staticmethod
    def argsort(a):
        return torch.argsort(a, stable=True)

    @staticmethod
    def counts(lab, n):
        return torch.bincount(lab.to(torch.int64), minlength=n)

    @staticmethod
    def segment_sum(values, lab, n):
        """out[c] = sum of values[k] over the k with lab[k] == c; values (L,) or (L, D)."""
        out = torch.zeros((n,) + tuple(values.shape[1:]), dtype=values.dtype, device=values.device)
        return out.index_add_(0, lab.to(torch.int64), values)

    @staticmethod
    def cumsum(a):
        return torch.cumsum(a, dim=0)

    @staticmethod
    def stack_columns(a, b):
        return torch.stack((a, b), dim=1)

    @staticmethod
    def nonzero(mask):
        return tuple(torch.nonzero(mask, as_tuple=True))

    @staticmethod
    def astype(x, dtype):
        return x.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)

    @staticmethod
    def as_array_like(values, like):
        return torch.as_tensor(values, dtype=like.dtype, device=like.device)
