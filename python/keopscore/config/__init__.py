"""keopscore.config: KeOps's configuration objects (config, cuda_config, openmp_config, platform_detector) answering
from keops-jit's own state; setters act where keops-jit has the equivalent (the build folder)."""

import platform

from . import chunks  # noqa: F401  (keopscore.config.chunks)


class Config:
    """The base configuration: where compiled kernels are cached (keops-jit uses no C++ compiler at run time)."""

    chunks = chunks  # (keopscore.config is this object, as in KeOps: keopscore.config.chunks still reaches the module)
    cxx_compiler = None  # (no compiler runs: the engine compiles in process with LLVM)
    cpp_flags = ""

    def get_build_folder(self):
        import pykeops

        return pykeops.get_build_folder()

    def set_build_folder(self, path=None):
        import pykeops

        pykeops.set_build_folder(path)

    def set_different_build_folder(self, path=None, *args, **kwargs):
        self.set_build_folder(path)

    get_keops_cache_folder = get_build_folder

    def get_cxx_compiler(self):
        return self.cxx_compiler

    def get_cpp_flags(self):
        return self.cpp_flags

    def get_os(self):
        return f"{platform.system()} {platform.release()}"

    def print_all(self):
        import pykeops

        pykeops.check_health()


class CUDAConfig:
    """Whether the GPU backend is usable (libcuda, a device and libnvrtc found: see pykeops.common.gpu.status())."""

    def get_use_cuda(self):
        from pykeops.common import gpu

        return gpu.available()

    use_cuda = property(get_use_cuda)

    def get_cuda_block_size(self):
        import keopscore

        return keopscore.cuda_block_size

    def set_cuda_block_size(self, cuda_block_size=192):
        import keopscore

        keopscore.cuda_block_size = cuda_block_size  # (notes once that it has no effect, for a non-default value)

    def print_all(self):
        from pykeops.common import gpu

        print(f"[KeOps] GPU backend: {gpu.status()}")


class OpenMPConfig:
    """CPU parallelism: the engine runs every reduction on its own thread pool (pykeops.set_num_threads)."""

    def get_use_OpenMP(self):  # noqa: N802  (KeOps's name)
        return True

    use_OpenMP = property(get_use_OpenMP)


class DetectPlatform:
    """The operating system and Python, as KeOps's platform report gives them."""

    def get_os(self):
        return f"{platform.system()} {platform.release()}"

    def get_python_version(self):
        return platform.python_version()


config = Config()
cuda_config = CUDAConfig()
openmp_config = OpenMPConfig()
platform_detector = DetectPlatform()


def get_config():
    return config


def get_cuda_config():
    return cuda_config


def get_openmp_config():
    return openmp_config


def get_platform_config():
    return platform_detector


__all__ = ["config", "platform_detector", "cuda_config", "openmp_config", "get_config", "get_platform_config",
           "get_cuda_config", "get_openmp_config"]
