"""pykeops.numpy.test_install: KeOps's module path of test_numpy_bindings (pykeops.test_numpy_bindings)."""

from .. import test_numpy_bindings  # noqa: F401
