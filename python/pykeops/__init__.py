"""pykeops: symbolic M x N kernel reductions (LazyTensor, Genred) computed by a C++ JIT engine."""

import importlib
import os

from ._version import __version__  # noqa: F401  (the distribution's version, as importlib.metadata reports it)
from .common import log
from .common.engine import load_engine, warn_if_unloadable
from .config import gpu_available, numpy_found, torch_found  # noqa: F401  (re-exported)
from .common.utils import WarmUpGpu  # noqa: F401  (re-exported; a no-op without a GPU backend)

# The KeOps API this package implements (the pykeops release whose interface it follows).
keops_api_version = "2.3"

warn_if_unloadable()

# Whether the "pykeops" logger's INFO lines (one per kernel looked up, cache statistics) go to stderr: off by
# default, on with PYKEOPS_VERBOSE=1 or set_verbose(True). Applications may configure logging.getLogger("pykeops").
verbose = log.env_verbose()
if verbose:
    log.set_verbose(True)

# GPU used when inputs are on the host and a GPU backend is chosen.
default_device_id = 0


def set_verbose(val):
    """True: pykeops says what it does on stderr (a line per kernel: formula, backend, dtype, memory hit, disk hit
    or compile and its time). False: silent, even under an application's logging configuration."""
    global verbose
    verbose = bool(val)
    log.set_verbose(verbose)


def cache_stats():
    """Kernel cache statistics of this process (dict: requests, memory_hits, disk_hits, compiled, memory_entries,
    compile_seconds, disk_seconds; "gpu": the GPU backend's counters), also logged at INFO."""
    return log.cache_stats()


def set_num_threads(n):
    """Number of CPU threads the engine uses for one reduction."""
    load_engine().set_num_threads(n)


def get_num_threads():
    """Number of CPU threads the engine uses for one reduction (see set_num_threads)."""
    return load_engine().get_num_threads()


def get_build_folder():
    """Folder of the disk cache of compiled kernels (KEOPS_CACHE_FOLDER, else ~/.cache/keops-jit)."""
    return load_engine().cache_folder()


keops_get_build_folder = get_build_folder


def set_build_folder(path=None):
    """Moves the disk cache of compiled kernels to `path` (None: the default folder) for this process."""
    engine = load_engine()
    if path is None:
        path = os.environ.get("KEOPS_CACHE_FOLDER") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "keops-jit")
    engine.set_cache_folder(os.fspath(path))
    engine.clear_memory_cache()


def clean_pykeops(recompile_jit_binaries=True):
    """Deletes the compiled kernels on disk and forgets those in memory (recompile_jit_binaries: accepted, unused)."""
    engine = load_engine()
    folder = engine.cache_folder()
    if folder and os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith((".o", ".key", ".cubin", ".gpukey")):
                os.remove(os.path.join(folder, name))
    from .common import call_cache

    call_cache.clear()
    engine.clear_memory_cache()


def check_health():
    """Prints what this installation can use: engine, threads, cache, frameworks, GPU."""
    engine = load_engine()
    print(f"[pyKeOps] engine: {engine.__file__}")
    print(f"[pyKeOps] CPU threads: {engine.get_num_threads()}; kernel cache: {engine.cache_folder() or 'memory only'}")
    print(f"[pyKeOps] numpy found: {numpy_found}; torch found: {torch_found}; GPU available: {gpu_available}")
    print(f"[pyKeOps] kernel cache statistics: {engine.cache_stats()}")


def _check_bindings(framework, as_array):
    """Compile and run a tiny known reduction with one framework; print the outcome, never raise."""
    expected = [[63.0], [90.0]]
    try:
        import numpy as np

        module = importlib.import_module(f"pykeops.{framework}")
        x = as_array(np.arange(1, 10, dtype=np.float32).reshape(3, 3))
        y = as_array(np.arange(3, 9, dtype=np.float32).reshape(2, 3))
        result = module.Genred("SqNorm2(x - y)", ["x = Vi(3)", "y = Vj(3)"])(x, y)
        got = np.asarray(result).tolist()
        if got != expected:
            print(f"[pyKeOps] pykeops.{framework} computed a wrong result: expected {expected}, got {got}.")
            return
    except Exception as e:  # report any failure: this is a diagnostic for users, not an API
        print(f"[pyKeOps] pykeops.{framework} is not working: {type(e).__name__}: {e}")
        return
    print(f"pyKeOps with {framework} bindings is working!")


def test_numpy_bindings():
    """Check that pykeops.numpy compiles and runs a reduction; prints the result of the check."""
    _check_bindings("numpy", lambda a: a)


def test_torch_bindings():
    """Check that pykeops.torch compiles and runs a reduction; prints the result of the check."""

    def as_tensor(a):
        import torch

        return torch.from_numpy(a)

    _check_bindings("torch", as_tensor)
