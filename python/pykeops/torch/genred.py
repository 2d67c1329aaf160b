"""Genred for torch CPU tensors."""

from ..common.genred import GenericGenred
from .tools import TorchTools


class Genred(GenericGenred):
    """Reduction of a KeOps formula over torch CPU tensors (see pykeops.common.genred.GenericGenred)."""

    tools = TorchTools
