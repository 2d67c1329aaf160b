"""Genred for NumPy arrays."""

from ..common.genred import GenericGenred
from .tools import NumpyTools


class Genred(GenericGenred):
    """Reduction of a KeOps formula over NumPy arrays (see pykeops.common.genred.GenericGenred)."""

    tools = NumpyTools
