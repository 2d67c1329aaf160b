"""NumpyTools: the ArrayTools primitives for NumPy arrays (host memory, no autograd)."""

import numpy as np

from ..common.engine import load_engine
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
    def layout_key(x):
        # (the dtype object keeps the byte order; a MaskedArray differs by its type)
        return (type(x), x.dtype, x.shape) if isinstance(x, np.ndarray) else None

    @staticmethod
    def contiguous(x):
        flags = x.flags
        return x if flags.c_contiguous and flags.aligned else np.require(x, requirements=("C", "A"))

    @staticmethod
    def is_writable_contiguous(x):
        flags = x.flags
        return flags.c_contiguous and flags.aligned and flags.writeable

    @staticmethod
    def check_storage(x, what):
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{what} is a numpy.ma.MaskedArray: pykeops would ignore its mask; pass x.filled(value) "
                            "or x.data")

    @staticmethod
    def may_share_memory(a, b):
        return bool(np.may_share_memory(a, b))

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
    def data_ptrs(arrays):
        return load_engine().data_ptrs(list(arrays))  # (through the buffer protocol: one call for all)

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

    # Primitives of the cluster helpers (pykeops.common.cluster).
    label_dtype = np.int64

    @staticmethod
    def min_rows(x):
        return x.min(axis=0)

    @staticmethod
    def floor_int(x):
        return np.floor(x).astype(np.int64)

    @staticmethod
    def unique_rows_inverse(a):
        """Labels in [0, C) numbering the distinct rows of a in lexicographic order."""
        return np.unique(a, axis=0, return_inverse=True)[1].reshape(-1)

    @staticmethod
    def argsort(a):
        return np.argsort(a, kind="stable")

    @staticmethod
    def counts(lab, n):
        return np.bincount(lab, minlength=n).astype(np.int64)

    @staticmethod
    def segment_sum(values, lab, n):
        """out[c] = sum of values[k] over the k with lab[k] == c; values (L,) or (L, D)."""
        out = np.zeros((n,) + values.shape[1:], dtype=values.dtype)
        np.add.at(out, lab, values)
        return out

    @staticmethod
    def cumsum(a):
        return np.cumsum(a, axis=0)

    @staticmethod
    def stack_columns(a, b):
        return np.stack((a, b), axis=1)

    @staticmethod
    def nonzero(mask):
        return tuple(np.nonzero(mask))

    @staticmethod
    def astype(x, dtype):
        return x.astype(dtype)

    @staticmethod
    def as_array_like(values, like):
        return np.asarray(values, dtype=like.dtype)
