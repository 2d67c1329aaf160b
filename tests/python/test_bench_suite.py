"""Smoke test of benchmarks/bench_suite.py: its smallest workloads run in-process and pass their float64 checks."""
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "bench_suite.py")
_spec = importlib.util.spec_from_file_location("bench_suite", _PATH)
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)


@pytest.mark.engine
@pytest.mark.parametrize("kind,k", [("knn", 5), ("gauss", 0), ("sqdist_min", 0), ("scalprod_max", 0)])
@pytest.mark.parametrize("name", [suite.KEOPS, suite.TORCH])
def test_run_cell_passes_check(name, kind, k):
    m, n, d = 50, 80, 7
    x, y, b = suite.make_points(m, n, d)
    out = suite.contender_fn(name, kind, k, m, n)(*map(torch.from_numpy, (x, y, b)))
    out = out[0] if isinstance(out, tuple) else out
    assert suite.check(kind, k, x, y, b, out.numpy())


def test_check_rejects_wrong_neighbours():
    x, y, b = suite.make_points(20, 30, 3)
    assert not suite.check("knn", 3, x, y, b, np.tile([0, 1, 29], (20, 1)))


@pytest.mark.engine
@pytest.mark.parametrize("family,param", [("knn_d", 8), ("argkmin_k", 20), ("nested_sin", 5), ("exp_sum", 200)])
def test_compile_cell_passes_check(family, param):
    from pykeops.numpy import Genred

    formula, aliases, red, opt, inputs, ok = suite.compile_genred({"family": family, "param": param})
    kwargs = {"opt_arg": opt} if opt is not None else {}
    assert ok(Genred(formula, aliases, reduction_op=red, axis=1, **kwargs)(*inputs))
