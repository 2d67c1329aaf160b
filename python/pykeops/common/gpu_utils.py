"""pykeops.common.gpu_utils: KeOps's module path of get_gpu_number (the GPU-selection examples import it)."""

from . import gpu


def get_gpu_number():
    """Number of GPUs the GPU backend can use: 0 when it is not available (see pykeops.common.gpu.status())."""
    status = gpu.status()
    return int(status.get("devices", 0)) if status["available"] else 0
