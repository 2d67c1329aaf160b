"""Genred for NumPy arrays."""

from ..common.genred import GENRED_DOC, GenericGenred
from .tools import NumpyTools


class Genred(GenericGenred):
    __doc__ = GENRED_DOC.format(
        arrays="NumPy arrays", returns="A NumPy array", shape="(5, 1)", call_arrays="NumPy arrays",
        example="x, y, b = np.random.rand(5, 3), np.random.rand(7, 3), np.random.rand(7, 1)",
    )

    tools = NumpyTools
