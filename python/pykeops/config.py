"""What this installation can use: which array frameworks are importable and whether a GPU backend exists."""

from importlib.util import find_spec

numpy_found = find_spec("numpy") is not None
torch_found = find_spec("torch") is not None

# The engine has only its CPU backend for now; the GPU backend will set this from the CUDA probe.
gpu_available = False
