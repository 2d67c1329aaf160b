"""What pykeops says it does: a log line per kernel lookup, cache statistics, progress lines on terminals only."""

import io
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import pykeops
from pykeops.common import log
from pykeops.common.engine import load_engine
from pykeops.numpy import Genred, KernelSolve

pytestmark = pytest.mark.engine

FORMULA = "Exp(-SqDist(x,y))*b"
ALIASES = ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"]


class FakeTty(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def logger_state():
    """Leaves the "pykeops" logger (level, handlers) and pykeops.verbose as they were."""
    logger = logging.getLogger("pykeops")
    level, handlers, verbose = logger.level, list(logger.handlers), pykeops.verbose
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers
    pykeops.verbose = verbose


@pytest.fixture
def fresh_cache(tmp_path):
    """An empty disk cache and memory cache: the next lookup of a new Genred compiles."""
    engine = load_engine()
    before = engine.cache_folder()
    engine.set_cache_folder(str(tmp_path))
    engine.clear_memory_cache()
    yield engine
    engine.set_cache_folder(before)


def data(m=5, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((m, 3)), rng.random((n, 3)), rng.random((n, 1))


def lookups(caplog):
    return [r for r in caplog.records if r.name == "pykeops" and hasattr(r, "keops_outcome")]


def test_one_line_per_kernel_compiled_memory_disk(caplog, logger_state, fresh_cache):
    caplog.set_level(logging.INFO, logger="pykeops")
    x, y, b = data()
    expected = np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b
    g = Genred(FORMULA, ALIASES, axis=1)
    np.testing.assert_allclose(g(x, y, b), expected, rtol=1e-12)
    g(x, y, b)  # the Genred keeps its kernel: no second line
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)  # another Genred: the engine's memory
    fresh_cache.clear_memory_cache()
    np.testing.assert_allclose(Genred(FORMULA, ALIASES, axis=1)(x, y, b), expected, rtol=1e-12)  # the disk
    records = lookups(caplog)
    assert [r.keops_outcome for r in records] == ["compiled", "memory", "disk"]
    for r, word in zip(records, ["compiled", "memory hit", "disk hit"]):
        assert r.levelno == logging.INFO
        assert r.keops_backend == "CPU" and r.keops_dtype == "float64"
        assert r.keops_formula == "Sum_Reduction(Exp(-SqDist(x,y))*b,0)"
        assert r.keops_seconds >= 0
        message = r.getMessage()
        assert message.startswith("CPU kernel Sum_Reduction(Exp(-SqDist(x,y))*b,0) (float64): " + word + " in ")
        assert message.endswith(" ms")


def test_silent_by_default(capsys, caplog, fresh_cache):
    x, y, b = data()
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    assert not [r for r in caplog.records if r.name == "pykeops"]
    assert capsys.readouterr() == ("", "")


SCRIPT = f"""
import numpy as np
from pykeops.numpy import Genred
x = np.ones((4, 3)); y = np.ones((6, 3)); b = np.ones((6, 1))
assert (Genred({FORMULA!r}, {ALIASES!r}, axis=1)(x, y, b) == 6).all()
"""


def test_environment_switches_it_on(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYKEOPS_VERBOSE"}
    env["KEOPS_CACHE_FOLDER"] = str(tmp_path)
    quiet = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    loud = subprocess.run([sys.executable, "-c", SCRIPT], env={**env, "PYKEOPS_VERBOSE": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == ""
    assert loud.stderr.startswith("[pyKeOps] CPU kernel Sum_Reduction(Exp(-SqDist(x,y))*b,0) (float64): disk hit in ")
    assert len(loud.stderr.splitlines()) == 1


def test_set_verbose_adds_and_removes_the_handler(capsys, logger_state, fresh_cache):
    x, y, b = data()
    pykeops.set_verbose(True)
    assert pykeops.verbose is True
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    err = capsys.readouterr().err
    assert err.startswith("[pyKeOps] CPU kernel Sum_Reduction(Exp(-SqDist(x,y))*b,0) (float64): compiled in ")
    assert len(err.splitlines()) == 1
    pykeops.set_verbose(False)
    assert pykeops.verbose is False
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    assert capsys.readouterr() == ("", "")


def test_set_verbose_false_silences_an_application_configuration(caplog, logger_state, fresh_cache):
    caplog.set_level(logging.INFO)  # the root logger: what logging.basicConfig(level=INFO) does
    pykeops.set_verbose(False)
    x, y, b = data()
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    assert not lookups(caplog)


def test_cache_stats(caplog, logger_state, fresh_cache):
    caplog.set_level(logging.INFO, logger="pykeops")
    before = pykeops.cache_stats()
    assert set(before) >= {"requests", "memory_hits", "disk_hits", "compiled", "memory_entries", "compile_seconds",
                           "disk_seconds"}
    assert before["memory_entries"] == 0  # (fresh_cache emptied the memory)
    x, y, b = data()
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    Genred(FORMULA, ALIASES, axis=1)(x, y, b)
    after = pykeops.cache_stats()
    assert after["compiled"] == before["compiled"] + 1
    assert after["memory_hits"] == before["memory_hits"] + 1
    assert after["requests"] == before["requests"] + 2
    assert after["memory_entries"] == 1
    compiled = [r for r in lookups(caplog) if r.keops_outcome == "compiled"]
    assert after["compile_seconds"] - before["compile_seconds"] == pytest.approx(compiled[0].keops_seconds, abs=1e-5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("kernel cache: ")]
    assert len(lines) == 2 and "compiled=" in lines[-1] and "memory_entries=1" in lines[-1]
    assert "kernel cache" not in str(log.cache_stats(log=False))


def slow(seconds, value):
    def get():
        time.sleep(seconds)  # releases the GIL, as the engine's compile does
        return value

    return get


def test_progress_line_on_a_terminal(monkeypatch):
    monkeypatch.setattr(log, "PROGRESS_AFTER", 0.05)
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert log.lookup(slow(0.4, "kernel"), "Sum_Reduction(F,0)", "CPU", "float32") == "kernel"
    out = tty.getvalue()
    assert out.startswith("\r[pyKeOps] compiling Sum_Reduction(F,0) ... ")
    shown = [s for s in out.split("\r") if s.strip()]
    assert len(shown) >= 2  # updated while it ran
    assert all(s.startswith("[pyKeOps] compiling Sum_Reduction(F,0) ... ") and s.rstrip().endswith(" s") for s in shown)
    assert out.endswith("\r") and not out.split("\r")[-2].strip()  # erased at the end
    assert "\n" not in out


def test_no_progress_line_when_quick_or_not_a_terminal(monkeypatch):
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    log.lookup(slow(0.01, 1), "Sum_Reduction(F,0)", "CPU", "float32")  # under PROGRESS_AFTER (1 s)
    assert tty.getvalue() == ""
    monkeypatch.setattr(log, "PROGRESS_AFTER", 0.0)
    pipe = io.StringIO()  # isatty() is False
    monkeypatch.setattr(sys, "stderr", pipe)
    log.lookup(slow(0.3, 1), "Sum_Reduction(F,0)", "CPU", "float32")
    assert pipe.getvalue() == ""


def test_progress_line_survives_a_failing_compile(monkeypatch):
    monkeypatch.setattr(log, "PROGRESS_AFTER", 0.0)
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)

    def fail():
        time.sleep(0.2)
        raise ValueError("bad formula")

    with pytest.raises(ValueError, match="bad formula"):
        log.lookup(fail, "Sum_Reduction(F,0)", "CPU", "float32")
    assert tty.getvalue().endswith("\r") and not tty.getvalue().split("\r")[-2].strip()


def kernel_system(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x, b = rng.random((n, 2)), rng.random((n, 1))
    K = np.exp(-((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / 0.1)
    solver = KernelSolve("Exp(-SqDist(x,y)*g)*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)", "g = Pm(1)"], "b", axis=1)
    return solver, x, b, K


def test_kernel_solve_progress_and_log(monkeypatch, caplog, logger_state):
    caplog.set_level(logging.INFO, logger="pykeops")
    monkeypatch.setattr(log, "PROGRESS_AFTER", 0.0)
    solver, x, b, K = kernel_system()
    solver(x, x, b, np.array([10.0]), alpha=0.1)  # compiles outside of the measured part
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    a = solver(x, x, b, np.array([10.0]), alpha=0.1, eps=1e-8)
    np.testing.assert_allclose(a, np.linalg.solve(K + 0.1 * np.eye(len(x)), b), rtol=1e-6, atol=1e-8)
    out = tty.getvalue()
    shown = [s for s in out.split("\r") if s.strip()]
    assert shown and all(s.startswith("[pyKeOps] KernelSolve: iteration ") and "||r||^2 = " in s for s in shown)
    assert out.endswith("\r") and not out.split("\r")[-2].strip()
    solves = [r.getMessage() for r in caplog.records if r.getMessage().startswith("KernelSolve: ")]
    assert len(solves) == 2 and " conjugate gradient iterations in " in solves[-1] and "(< " in solves[-1]


def test_kernel_solve_quiet_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(log, "PROGRESS_AFTER", 0.0)
    solver, x, b, _ = kernel_system()
    solver(x, x, b, np.array([10.0]), alpha=0.1)
    assert capsys.readouterr() == ("", "")


def test_gpu_lookup_line(caplog, logger_state):
    """A GPU kernel's lookup generates its CUDA source (no GPU needed; compiled per architecture at its first run)."""
    from pykeops.common import gpu
    from pykeops.numpy.tools import NumpyTools

    caplog.set_level(logging.INFO, logger="pykeops")
    load_engine().gpu_clear_memory_cache()
    g = Genred(FORMULA, ALIASES, axis=1)
    kernel = gpu.GpuBackend("GPU", -1, NumpyTools).kernel(g, "float32")
    assert gpu.GpuBackend("GPU", -1, NumpyTools).kernel(g, "float32") is kernel  # kept by the Genred: no line
    gpu.GpuBackend("GPU", -1, NumpyTools).kernel(Genred(FORMULA, ALIASES, axis=1), "float32")
    records = lookups(caplog)
    assert [(r.keops_backend, r.keops_dtype, r.keops_outcome) for r in records] == [
        ("GPU", "float32", "generated"), ("GPU", "float32", "memory")]
    assert records[0].getMessage().startswith("GPU kernel Sum_Reduction(Exp(-SqDist(x,y))*b,0) (float32): CUDA source")
