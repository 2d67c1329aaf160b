"""GPU backend glue: availability, backend choice, devices and streams of torch CUDA tensors, host-array transfers.

A Genred call runs on the GPU when a GPU backend is asked for ("GPU", "GPU_1D", "GPU_2D", ..._host/_device) or when
backend="auto" and the arguments are torch CUDA tensors. CUDA tensors are used in place on their own device, on
torch's current stream there; outputs are allocated by torch on that device. Host arrays (NumPy, CPU tensors) with a
GPU backend are copied to the device (device_id, else pykeops.default_device_id) and the results back: through torch
when it is installed, else through the engine's driver-API helpers. backend="auto" with host arrays stays on the CPU
(unless the build has no CPU backend).
"""

import functools
import glob
import math
import os
import sys

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


def check_arrays(args, tools):
    """(dtype, device) shared by the arguments: one framework, one of float16/32/64, one device."""
    from .tools import class_name, type_name

    if not args:
        return tools.default_dtype(), "cpu"
    dtype = device = None
    for k, a in enumerate(args):
        if not tools.is_array(a):
            raise TypeError(
                f"argument {k} is a {type_name(a)}: pykeops.{tools.name} expects {class_name(tools.array_type)} arguments"
            )
        dt = tools.dtype_name(a)
        if dt not in ("float16", "float32", "float64"):
            raise TypeError(f"argument {k} has dtype {dt}: the GPU backend computes on float16, float32 or float64 arrays")
        if dtype is None:
            dtype, device = dt, tools.device(a)
        elif dt != dtype:
            raise ValueError(f"argument {k} has dtype {dt} but argument 0 has {dtype}: all arguments must share one dtype")
        elif tools.device(a) != device:
            raise ValueError(
                f"argument {k} is on device {tools.device(a)} but argument 0 is on {device}: all arguments must be on one "
                "device"
            )
    return dtype, device


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


def engine_acc(genred, dtype):
    """dtype_acc for the GPU engine: float16 accumulators only when asked for with float16 data."""
    if dtype == "float16" and genred.dtype_acc == "float16":
        return "float16"
    return genred._engine_acc(dtype)


def kernel(genred, dtype):
    """The GpuKernel of a Genred for one dtype (cached on the Genred like its CPU kernels)."""
    fast = getattr(genred, "use_fast_math", True)
    chunks = getattr(genred, "enable_chunks", True)
    key = ("gpu", dtype, fast, chunks)
    k = genred._kernels.get(key)
    if k is None:
        k = engine().get_gpu_kernel(genred.formula, genred.aliases, dtype, engine_acc(genred, dtype), genred.sum_scheme,
                                    use_fast_math=fast, enable_chunks=chunks)
        genred._kernels[key] = k
    return k


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


def run(genred, args, backend, device_id, ranges, out):
    """GenericGenred._run on the GPU: returns (raw buffers, final shapes, out arrays or None) in the caller's framework."""
    from .genred import REDUCTIONS, _final_shapes, bind_arguments, check_ranges, copy_into, writes_in_place

    tools = genred.tools
    dtype, device = check_arrays(args, tools)
    ordinal = device_ordinal(device, device_id)
    host = _is_host(device)
    range_batch = ()
    if ranges is not None:
        ranges, range_counts, range_batch = check_ranges(ranges, device, tools)
        ranges = [_host_int64(r) for r in ranges]  # the block-sparse plan is made on the host
    k = kernel(genred, dtype)
    red = REDUCTIONS[genred.reduction_op]
    outputs = [tuple(o) for o in k.outputs]
    kinds = [dtype if kind == "values" else "int64" for kind, _ in outputs]

    use_torch = not host or _torch_cuda()
    if use_torch:
        torch = _torch()
        dev = torch.device("cuda", ordinal)
        from ..torch.tools import TorchTools

        dargs = [_to_torch(a, dev) for a in args] if host else list(args)
        bound = bind_arguments(dargs, k, TorchTools)
    else:
        bound = bind_arguments(args, k, tools)
    if ranges is not None and range_batch and tuple(range_batch) != tuple(bound.batch):
        raise ValueError(f"ranges: per-batch patterns have batch dimensions {tuple(range_batch)} but the "
                         f"arguments' batch dimensions are {tuple(bound.batch)}")
    lead = bound.batch + (bound.nx if k.tag == 0 else bound.ny,)
    shapes = _final_shapes(red, outputs, lead, genred.opt_arg)
    outs = genred._check_outs(out, shapes, kinds, device) if out is not None else None
    direct = red.post in ("raw", "kshape")

    extra = {}
    if bound.batch:
        extra.update(batch=list(bound.batch), arg_batch=[list(b) for b in bound.arg_batch])
    if ranges is not None:
        extra.update(ranges=[r.ctypes.data for r in ranges], range_counts=list(range_counts),
                     range_sets=math.prod(range_batch) if range_batch else 1)
    scheme = scheme_of(backend)

    if use_torch:
        torch = _torch()
        in_place = not host and outs is not None and direct and writes_in_place(outs, bound.arrays, TorchTools)
        if in_place:
            buffers = [o.reshape(lead + (ncols,)) for o, (_, ncols) in zip(outs, outputs)]
        else:
            buffers = [torch.empty(lead + (ncols,), dtype=getattr(torch, kind), device=dev) for (_, ncols), kind in zip(outputs, kinds)]
        if math.prod(lead) > 0:
            stream = torch.cuda.current_stream(dev).cuda_stream
            _record(k.run([a.data_ptr() for a in bound.arrays], bound.nx, bound.ny, [b.data_ptr() for b in buffers],
                          device=ordinal, stream=stream, scheme=scheme, **extra))
        if host:
            buffers = [_from_torch(b, tools) for b in buffers]
    else:
        import numpy as np

        mem = _DeviceArrays(ordinal)
        ptrs = [mem.upload(a) for a in bound.arrays]
        host_bufs = [np.empty(lead + (ncols,), dtype=kind) for (_, ncols), kind in zip(outputs, kinds)]
        dptrs = [mem.empty(b.nbytes) for b in host_bufs]
        if math.prod(lead) > 0:
            _record(k.run(ptrs, bound.nx, bound.ny, dptrs, device=ordinal, stream=0, scheme=scheme, **extra))
            for b, p in zip(host_bufs, dptrs):
                engine().gpu_download(ordinal, b.ctypes.data, p, b.nbytes)
        buffers = [_from_numpy(b, tools) for b in host_bufs]
        in_place = False
    if outs is not None and direct and not in_place:
        buffers = copy_into(outs, buffers)
    return buffers, shapes, outs


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
