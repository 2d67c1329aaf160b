"""Shared fixtures: the numpy/torch framework adapter and the `engine` marker for tests that run kernels."""

import importlib
import os
import shutil
import tempfile

# Kernels compiled by the tests go to a fresh folder, never the user's cache (set before pykeops is imported).
_CACHE_FOLDER = os.environ["KEOPS_CACHE_FOLDER"] = tempfile.mkdtemp(prefix="keops-tests-")

import numpy as np
import pytest


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_FOLDER, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: runs kernels of the compiled pykeops._engine (never skipped)")
    config.addinivalue_line("markers", "gpu: runs kernels on a GPU (skipped where none is available)")


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
