"""Shared fixtures: the numpy/torch framework adapter and the `engine` marker for tests that run kernels."""

import importlib
import os

import numpy as np
import pytest


def _engine_importable():
    try:
        importlib.import_module("pykeops._engine")
        return True
    except ImportError:
        return False


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: needs the compiled pykeops._engine")


def pytest_collection_modifyitems(config, items):
    # Without the engine, only formula building and validation can be tested. In CI a missing engine
    # is a broken build, so the tests run (and fail) instead of being skipped.
    if _engine_importable() or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="pykeops._engine is not built")
    for item in items:
        if "engine" in item.keywords:
            item.add_marker(skip)


class Framework:
    """One array framework as seen by the tests: its pykeops module and numpy <-> array conversions."""

    def __init__(self, name):
        self.name = name
        self.module = importlib.import_module(f"pykeops.{name}")
        self.torch = importlib.import_module("torch") if name == "torch" else None

    def array(self, a):
        return a if self.torch is None else self.torch.from_numpy(a)

    def numpy(self, a):
        return np.asarray(a) if self.torch is None else a.detach().numpy()

    def __repr__(self):
        return self.name


@pytest.fixture(params=["numpy", "torch"])
def fw(request):
    if request.param == "torch":
        pytest.importorskip("torch")
    return Framework(request.param)
