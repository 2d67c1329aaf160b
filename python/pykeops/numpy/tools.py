"""NumpyTools: the ArrayTools primitives for NumPy arrays (host memory, no autograd)."""

import numpy as np

from ..common.tools import ArrayTools


class NumpyTools(ArrayTools):
    name = "numpy"
    array_type = np.ndarray

    @staticmethod
    def dtype_name(x):
        return str(x.dtype)  # non-native byte orders print as '>f4' and are rejected with it

    @staticmethod
    def device(x):
        return "cpu"

    @staticmethod
    def default_dtype():
        return "float64"

    @staticmethod
    def contiguous(x):
        return np.require(x, requirements=("C", "A"))

    @staticmethod
    def is_writable_contiguous(x):
        flags = x.flags
        return flags.c_contiguous and flags.aligned and flags.writeable

    @staticmethod
    def empty(shape, dtype, device):
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def from_values(values, dtype, device):
        return np.array(values, dtype=dtype)

    @staticmethod
    def data_ptr(x):
        return x.__array_interface__["data"][0]

    @staticmethod
    def needs_grad(arrays):
        return False

    @staticmethod
    def is_integer(x):
        return x.dtype.kind in "iu"

    @staticmethod
    def as_int64(x):
        return np.require(x, dtype=np.int64, requirements=("C", "A"))

    @staticmethod
    def log(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)
