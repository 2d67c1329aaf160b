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
