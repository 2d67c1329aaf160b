"""pykeops.torch.generic.generic_red: KeOps's module path of Genred."""

from ..genred import Genred  # noqa: F401
