"""Dense torch helpers (full (M, N) matrices: references for tests and small problems), WarmUpGpu, the
complex <-> interleaved real views used by pykeops.torch.ComplexLazyTensor, and torchtools (KeOps's array helpers)."""

import torch

from ..common import utils as _common
from ..common.utils import KERNELS, SPHERE_KERNELS, IsGpuAvailable, WarmUpGpu  # noqa: F401  (re-exported)


def squared_distances(x, y):
    """(M, N) tensor of the squared Euclidean distances |x_i - y_j|^2 of x (M, D) and y (N, D)."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def differences(x, y):
    """(D, M, N) tensor of the differences x_i[d] - y_j[d] of x (M, D) and y (N, D)."""
    return x.t()[:, :, None] - y.t()[:, None, :]


def torch_kernel(x, y, s, kernel):
    """(M, N) kernel matrix k(|x_i - y_j|^2) for kernel in KERNELS ("gaussian", "laplacian", "cauchy",
    "inverse_multiquadric"), with the scale s (a number or a tensor); differentiable by torch."""
    return _common.kernel_of_sqdist(torch, squared_distances(x, y), s, kernel)


# ------------------------------------------------------------------------------- complex <-> real views


def view_as_real_pairs(z):
    """Complex tensor (..., D) as the real tensor (..., 2D) of interleaved (re, im) pairs (a view if contiguous)."""
    z = z.resolve_conj()
    if z.dim() == 0:
        z = z.reshape(1)
    return torch.view_as_real(z).reshape(*z.shape[:-1], 2 * z.shape[-1])


def view_as_complex_pairs(a):
    """Real tensor (..., 2D) of interleaved (re, im) pairs as the complex tensor (..., D)."""
    a = a.contiguous()
    return torch.view_as_complex(a.reshape(*a.shape[:-1], a.shape[-1] // 2, 2))


def as_complex(x):
    """Real float32/float64 tensor as a complex64/complex128 one."""
    return x.to(torch.complex64 if x.dtype == torch.float32 else torch.complex128)


# ------------------------------------------------------------------------------- torchtools


class torchtools:  # noqa: N801  (KeOps's name)
    """KeOps's namespace of torch array helpers, for code that imports it; pykeops itself does not use it."""

    from .cluster import swap_axes
    from .genred import Genred
    from .operations import KernelSolve

    copy, exp, log, norm = staticmethod(torch.clone), staticmethod(torch.exp), staticmethod(torch.log), staticmethod(torch.norm)
    arraytype = torch.Tensor
    float_types = [float]
    eq = staticmethod(torch.eq)
    transpose = staticmethod(lambda x: x.t())
    permute = staticmethod(lambda x, *dims: x.permute(*dims))
    contiguous = staticmethod(lambda x: x.contiguous())
    solve = staticmethod(lambda A, b: torch.linalg.solve(A, b).contiguous())
    arraysum = staticmethod(lambda x, axis=None: x.sum() if axis is None else x.sum(dim=axis))
    long = staticmethod(lambda x: x.long())
    size = staticmethod(lambda x: x.numel())
    tile = staticmethod(lambda x, *reps: x.repeat(*reps))
    numpy = staticmethod(lambda x: x.detach().cpu().numpy())
    view = staticmethod(lambda x, s: x.view(s))
    is_tensor = staticmethod(lambda x: isinstance(x, torch.Tensor))
    dtype = staticmethod(lambda x: getattr(x, "dtype", type(x)))
    view_as_complex = staticmethod(view_as_complex_pairs)
    view_as_real = staticmethod(view_as_real_pairs)
    rand = staticmethod(lambda m, n, dtype, device: torch.rand(m, n, dtype=dtype, device=device))
    randn = staticmethod(lambda m, n, dtype, device: torch.randn(m, n, dtype=dtype, device=device))
    zeros = staticmethod(lambda shape, dtype, device, requires_grad=False: torch.zeros(
        *shape, dtype=dtype, device=device, requires_grad=requires_grad))
    empty = staticmethod(lambda shape, dtype, device, requires_grad=False: torch.empty(
        *shape, dtype=dtype, device=device, requires_grad=requires_grad))
    eye = staticmethod(lambda n, dtype, device: torch.eye(n, dtype=dtype, device=device))
    device = staticmethod(lambda x: x.device if isinstance(x, torch.Tensor) else None)
    get_pointer = staticmethod(lambda x: x.data_ptr())
    pointer = get_pointer
    device_type_index = staticmethod(lambda x: (x.device.type, x.device.index) if isinstance(x, torch.Tensor) else (None, None))

    @staticmethod
    def detect_complex(x):
        if isinstance(x, list):
            return any(isinstance(v, complex) for v in x)
        return torch.is_complex(x) if isinstance(x, torch.Tensor) else isinstance(x, complex)

    @staticmethod
    def dtypename(dtype):
        names = {torch.float16: "float16", torch.float32: "float32", torch.float64: "float64", list: "float32"}
        if dtype is int:
            return int
        if dtype not in names:
            raise ValueError(f"pykeops does not compute in {dtype}: use float16, float32 or float64")
        return names[dtype]

    @staticmethod
    def array(x, dtype, device):
        names = ("float16", "float32", "float64", "int32", "int64")
        if dtype not in names:
            raise ValueError(f"torchtools.array: dtype must be one of {', '.join(names)}, got {dtype!r}")
        return torch.tensor(x, dtype=getattr(torch, dtype), device=device)
