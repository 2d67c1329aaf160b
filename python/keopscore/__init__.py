"""keopscore: the settings pykeops user code sets on KeOps's compiler package, for keops-jit, which has none.

keops-jit compiles formulas in process (C++ engine, LLVM, NVRTC): there is no keopscore to configure. This package
accepts what user code sets or calls here. Honoured: auto_factorize (always on: equal subformulas are one node of the
engine's formula graph, computed once, so True and False give the same kernels), set_build_folder, get_build_folder,
build_folder, clean_keops, check_health, show_cuda_status. Accepted with a one-time warning when given a value other
than the default, because nothing here reads them: debug_ops, debug_ops_at_exec (KeOps's debug prints of its
generated C++), cuda_block_size (the GPU backend sizes each kernel's blocks), and the GPU chunking constants of
keopscore.config.chunks. verbose is kept for code that reads it; pykeops's messages follow pykeops.verbose.
"""

import os
import sys

from . import _settings
from .config import config, cuda_config, openmp_config, platform_detector  # noqa: F401  (as KeOps: config is the object)

__version__ = "2.3"

verbose = os.environ.get("KEOPS_VERBOSE") != "0"
auto_factorize = False  # honoured whatever its value: always factorized here
debug_ops = False
debug_ops_at_exec = False
cuda_block_size = 192

_NO_EFFECT = {
    "debug_ops": (False, "it printed KeOps's generated C++ code, and keops-jit generates none"),
    "debug_ops_at_exec": (False, "it printed KeOps's generated C++ code at run time, and keops-jit generates none"),
    "cuda_block_size": (192, "the GPU backend chooses each kernel's block size (192 threads, fewer when its shared memory needs it)"),
}

show_gpu_config = cuda_config


def set_build_folder(path=None, *args, **kwargs):
    """Moves the disk cache of compiled kernels to `path` (None: the default), as pykeops.set_build_folder; KeOps's
    other arguments (paths of its compiled binders) have nothing to act on here and are ignored."""
    import pykeops

    pykeops.set_build_folder(path)


def get_build_folder():
    """The folder of the disk cache of compiled kernels (pykeops.get_build_folder())."""
    import pykeops

    return pykeops.get_build_folder()


def clean_keops(recompile_jit_binary=True, verbose=True):
    """Deletes the compiled kernels on disk and forgets those in memory (pykeops.clean_pykeops())."""
    import pykeops

    pykeops.clean_pykeops()


def check_health(config_type="all"):
    """Prints what this installation can use (pykeops.check_health(); config_type: accepted, one report here)."""
    import pykeops

    pykeops.check_health()


def __getattr__(name):
    # (values that can change during the process are read when asked for)
    if name == "build_folder":
        return get_build_folder()
    if name == "show_cuda_status":
        return cuda_config.get_use_cuda()
    raise AttributeError(f"module 'keopscore' has no attribute {name!r}")


sys.modules[__name__].__class__ = _settings.SettingsModule
