"""pykeops.torch.test_install: KeOps's module path of test_torch_bindings (pykeops.test_torch_bindings)."""

from .. import test_torch_bindings  # noqa: F401
