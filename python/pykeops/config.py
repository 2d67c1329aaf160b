"""What this installation can use: which array frameworks are importable and whether a GPU backend exists."""

from importlib.util import find_spec

numpy_found = find_spec("numpy") is not None
torch_found = find_spec("torch") is not None


def _probe_gpu():
    """Whether the GPU backend can run: libcuda loads, cuInit succeeds, a device exists, libnvrtc is found.
    Never raises: without them (or without the engine) the GPU backend is simply absent."""
    from .common.gpu import available

    return available()


gpu_available = _probe_gpu()


def get_build_folder():
    """Folder of the disk cache of compiled kernels (pykeops.get_build_folder())."""
    from . import get_build_folder as build_folder

    return build_folder()


_KEOPSCORE_OBJECTS = {"pykeops_base": "config", "pykeops_cuda": "cuda_config", "pykeops_openmp": "openmp_config"}


def __getattr__(name):
    # KeOps's configuration objects, for code that reads them (see keopscore.config); imported on first use only
    if name in _KEOPSCORE_OBJECTS:
        import importlib

        return getattr(importlib.import_module("keopscore.config"), _KEOPSCORE_OBJECTS[name])
    raise AttributeError(f"module 'pykeops.config' has no attribute {name!r}")
