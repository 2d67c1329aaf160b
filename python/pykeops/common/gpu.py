"""GPU backend: availability, backend choice, devices, streams and host-array transfers (GpuBackend, for Genred).

A Genred call runs on the GPU when a GPU backend is asked for ("GPU", "GPU_1D", "GPU_2D", ..._host/_device) or when
backend="auto" and the arguments are torch CUDA tensors. CUDA tensors are used in place on their own device, on
torch's current stream there; outputs are allocated by torch on that device. Host arrays (NumPy, CPU tensors) with a
GPU backend are copied to the device (device_id, else pykeops.default_device_id) and the results back: through torch
when it is installed, else through the engine's driver-API helpers. backend="auto" with host arrays stays on the CPU
(unless the build has no CPU backend).
"""

import functools
import glob
import os
import sys

from . import log
from .engine import load_engine

GPU_BACKENDS = ("GPU", "GPU_1D", "GPU_2D", "GPU_1D_device", "GPU_1D_host", "GPU_2D_device", "GPU_2D_host")

# What the last GPU launch of this process did: {'scheme': '1D' | '2D' | 'none', 'blocks', 'splits', 'scratch_bytes'}.
last_launch = None


def nvrtc_dirs():
    """Folders holding libnvrtc from pip wheels (nvidia-cuda-nvrtc: nvidia/cu13/lib, nvidia/cuda_nvrtc/lib, ...)."""
    bases = []
    try:
        import nvidia  # namespace package of NVIDIA's wheels

        bases += list(getattr(nvidia, "__path__", []))
    except ImportError:
        pass
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for prefix in {sys.prefix, sys.base_prefix}:
        bases.append(os.path.join(prefix, "lib", version, "site-packages", "nvidia"))
    dirs = []
    for base in bases:
        for lib in sorted(glob.glob(os.path.join(base, "*", "lib"))):
            if glob.glob(os.path.join(lib, "libnvrtc.so*")) and lib not in dirs:
                dirs.append(lib)
    return dirs


@functools.lru_cache(maxsize=None)
def engine():
    """The native engine, told where the pip wheels keep libnvrtc."""
    e = load_engine()
    if hasattr(e, "gpu_set_library_dirs"):
        e.gpu_set_library_dirs(nvrtc_dirs())
    return e


@functools.lru_cache(maxsize=None)
def status():
    """The engine's GPU probe: {'available': bool, 'reason': what is missing, ...}. Never raises."""
    try:
        e = engine()
    except ImportError as err:
        return {"available": False, "reason": f"the pykeops engine could not be imported ({err})"}
    if not hasattr(e, "gpu_status"):
        return {"available": False, "reason": "this pykeops engine was built without the GPU backend"}
    try:
        return dict(e.gpu_status())
    except Exception as err:  # a broken driver must not break `import pykeops`
        return {"available": False, "reason": f"probing the GPU failed: {type(err).__name__}: {err}"}


def available():
    return bool(status()["available"])


def _require(what):
    s = status()
    if not s["available"]:
        raise RuntimeError(f"{what} but no GPU backend is available: {s['reason']}")


def _is_host(device):
    return device == "cpu"


def selected(backend, args, tools):
    """Whether this call runs on the GPU; RuntimeError when it must but cannot (saying what is missing)."""
    devices = {tools.device(a) for a in args if tools.is_array(a)}
    on_gpu = sorted(d for d in devices if not _is_host(d))
    if backend in GPU_BACKENDS:
        _require(f"backend={backend!r} was requested")
        return True
    if on_gpu and backend == "auto":
        _require(f"the arguments are on {on_gpu[0]}")
        return True
    if on_gpu and backend == "CPU":
        raise ValueError(f"backend='CPU' cannot take arguments on {on_gpu[0]}: move them to the CPU or use a GPU backend")
    # Host arrays stay on the CPU, except in builds without the CPU backend, where the GPU is the only choice.
    return backend == "auto" and not cpu_backend() and available()


@functools.lru_cache(maxsize=None)
def cpu_backend():
    """Whether this build has the LLVM CPU backend (False when built with KEOPS_CPU_BACKEND=OFF)."""
    try:
        return bool(engine().cpu_backend_available())
    except ImportError:
        return False


def scheme_of(backend):
    if backend.startswith("GPU_1D"):
        return "1D"
    if backend.startswith("GPU_2D"):
        return "2D"
    return "auto"


def device_ordinal(device, device_id):
    """The CUDA device to run on: the arguments' own, or device_id (else pykeops.default_device_id) for host data."""
    import pykeops

    if _is_host(device):
        ordinal = pykeops.default_device_id if device_id is None or device_id < 0 else int(device_id)
    else:
        if not device.startswith("cuda"):
            raise ValueError(f"the arguments are on device {device}: the GPU backend takes CUDA tensors or host arrays")
        ordinal = int(device.split(":")[1]) if ":" in device else _torch().cuda.current_device()
        if device_id is not None and device_id >= 0 and int(device_id) != ordinal:
            raise ValueError(f"device_id={device_id} but the arguments are on {device}")
    count = status().get("devices", 0)
    if not 0 <= ordinal < count:
        raise ValueError(f"GPU device {ordinal} does not exist (this machine has {count} CUDA device{'s' * (count != 1)})")
    return ordinal


def _torch():
    import torch

    return torch


def _torch_cuda():
    """Whether torch is installed with CUDA (host arrays then travel through torch tensors)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


class _DeviceArrays:
    """Device copies of host arrays when torch is absent: driver-API buffers, freed with this object."""

    def __init__(self, ordinal):
        self.ordinal, self.buffers = ordinal, []

    def upload(self, a):
        import numpy as np

        a = np.ascontiguousarray(a)
        ptr = engine().gpu_alloc(self.ordinal, max(a.nbytes, 1))
        self.buffers.append(ptr)
        engine().gpu_upload(self.ordinal, ptr, a.ctypes.data, a.nbytes)
        return ptr

    def empty(self, nbytes):
        ptr = engine().gpu_alloc(self.ordinal, max(nbytes, 1))
        self.buffers.append(ptr)
        return ptr

    def __del__(self):
        for ptr in self.buffers:
            try:
                engine().gpu_free(self.ordinal, ptr)
            except Exception:
                pass


class GpuBackend:
    """The CUDA backend for GenericGenred._run: CUDA tensors in place on their device and torch's current stream;
    host arrays copied to device `device_id` and the results back, through torch when it has CUDA, else through the
    engine's driver-API helpers (stream 0)."""

    in_place = False  # set by use_device: only results on the arguments' own device are written into out=

    def __init__(self, backend, device_id, tools):
        self.scheme, self.device_id, self.tools = scheme_of(backend), device_id, tools

    def dtype_of(self, a, what):
        dtype = self.tools.dtype_name(a)
        if dtype not in ("float16", "float32", "float64"):
            raise TypeError(f"{what} has dtype {dtype}: the GPU backend computes on float16, float32 or float64 arrays")
        return dtype

    def use_device(self, device):
        self.ordinal = device_ordinal(device, self.device_id)
        self.host = _is_host(device)
        self.in_place = not self.host
        self.torch = _torch() if not self.host or _torch_cuda() else None
        if self.torch is not None:
            self.device = self.torch.device("cuda", self.ordinal)

    def kernel(self, genred, dtype):
        """The GpuKernel of a Genred for one dtype (cached on the Genred like its CPU kernels)."""
        key = ("gpu", dtype, genred.use_fast_math, genred.enable_chunks)
        k = genred._kernels.get(key)
        if k is None:
            acc = genred.engine_acc(dtype)
            k = log.lookup(lambda: engine().get_gpu_kernel(genred.formula, genred.aliases, dtype, acc, genred.sum_scheme,
                                                           use_fast_math=genred.use_fast_math,
                                                           enable_chunks=genred.enable_chunks),
                           genred.formula, "GPU", dtype)
            genred._kernels[key] = k
        return k

    def bind(self, args, kernel):
        from .genred import bind_arguments

        if self.torch is None:  # uploaded by launch
            return bind_arguments(args, kernel, self.tools)
        from ..torch.tools import TorchTools

        on_device = [_to_torch(a, self.device) for a in args] if self.host else list(args)
        return bind_arguments(on_device, kernel, TorchTools)

    def use_ranges(self, ranges):
        """The block-sparse plan is made on the host: pointers to int64 host copies (kept until the launch)."""
        self.ranges = [_host_int64(r) for r in ranges]
        return [r.ctypes.data for r in self.ranges]

    def empty(self, shape, kind):
        if self.torch is None:
            import numpy as np

            return np.empty(shape, dtype=kind)  # host buffers, downloaded into by launch
        return self.torch.empty(shape, dtype=getattr(self.torch, kind), device=self.device)

    def launch(self, kernel, bound, buffers, extra):
        run = functools.partial(kernel.run, device=self.ordinal, scheme=self.scheme, **extra)
        if self.torch is not None:
            stream = self.torch.cuda.current_stream(self.device).cuda_stream
            _record(run([a.data_ptr() for a in bound.arrays], bound.nx, bound.ny, [b.data_ptr() for b in buffers],
                        stream=stream))
            return
        mem = _DeviceArrays(self.ordinal)
        ptrs = [mem.upload(a) for a in bound.arrays]
        dptrs = [mem.empty(b.nbytes) for b in buffers]
        _record(run(ptrs, bound.nx, bound.ny, dptrs, stream=0))
        for b, p in zip(buffers, dptrs):
            engine().gpu_download(self.ordinal, b.ctypes.data, p, b.nbytes)

    def results(self, buffers):
        """The buffers as the caller's framework's arrays, on the host for host arguments."""
        if self.torch is None:
            return [_from_numpy(b, self.tools) for b in buffers]
        return [_from_torch(b, self.tools) for b in buffers] if self.host else buffers


def _record(report):
    global last_launch
    last_launch = dict(report)


def _host_int64(r):
    """A C-contiguous int64 NumPy copy (or view) of a ranges array, wherever it lives."""
    import numpy as np

    if hasattr(r, "detach"):  # torch
        r = r.detach().to("cpu").numpy()
    return np.ascontiguousarray(r, dtype=np.int64)


def _to_torch(a, dev):
    torch = _torch()
    if isinstance(a, torch.Tensor):
        return a.detach().to(dev).contiguous()
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(a)).to(dev)


def _from_numpy(a, tools):
    if tools.name == "torch":
        return _torch().from_numpy(a)
    return a


def _from_torch(t, tools):
    """A device result back on the host, as the caller's framework's array."""
    t = t.cpu()
    return t if tools.name == "torch" else t.numpy()
