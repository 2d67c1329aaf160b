"""Top-level pykeops: attributes, config, imports without torch, binding self-tests and thread settings."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

import pykeops


def test_attributes():
    assert pykeops.keops_api_version == "2.3"
    assert pykeops.default_device_id == 0
    assert pykeops.numpy_found is True
    assert isinstance(pykeops.gpu_available, bool)
    assert isinstance(pykeops.torch_found, bool)


def test_identity():
    # One version: python/pykeops/_version.py, read by the build into the distribution's metadata.
    dist = importlib.metadata.distribution("keops-jit")
    assert pykeops.__version__ == dist.version == importlib.metadata.version("keops-jit")
    assert re.fullmatch(r"\d+\.\d+\.\d+", pykeops.__version__)
    assert dist.metadata.get_all("Import-Name") == ["pykeops"]
    assert dist.metadata["License-Expression"] == "MIT"
    assert any(f.name == "LICENSE" for f in dist.files), "LICENSE is not in the installed distribution"


def test_set_verbose():
    before = pykeops.verbose
    try:
        pykeops.set_verbose(False)
        assert pykeops.verbose is False
        pykeops.set_verbose(True)
        assert pykeops.verbose is True
    finally:
        pykeops.set_verbose(before)


def run_python(code, **env):
    """Run code in a fresh interpreter (same environment plus env); return its stripped stdout."""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_verbose_from_environment():
    assert run_python("import pykeops; print(pykeops.verbose)", PYKEOPS_VERBOSE="0") == "False"
    assert run_python("import pykeops; print(pykeops.verbose)", PYKEOPS_VERBOSE="1") == "True"


def test_imports_without_torch():
    # sys.modules["torch"] = None makes `import torch` fail as if torch were not installed.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import pykeops, pykeops.numpy\n"
        "assert pykeops.torch_found is False\n"
        "try:\n    import pykeops.torch\nexcept ImportError:\n    print('ImportError')\n"
    )
    assert run_python(code) == "ImportError"


def test_numpy_exports():
    import pykeops.numpy

    assert sorted(pykeops.numpy.__all__) == [
        "Genred", "KernelSolve", "LazyTensor", "Pm", "Vi", "Vj",
        "generic_argkmin", "generic_argmin", "generic_logsumexp", "generic_sum",
    ]


@pytest.mark.engine
def test_numpy_bindings(capsys):
    pykeops.test_numpy_bindings()
    assert capsys.readouterr().out.strip() == "pyKeOps with numpy bindings is working!"


@pytest.mark.engine
def test_torch_bindings(capsys):
    pytest.importorskip("torch")
    pykeops.test_torch_bindings()
    assert capsys.readouterr().out.strip() == "pyKeOps with torch bindings is working!"


def test_bindings_check_reports_failures(capsys, monkeypatch):
    import pykeops.common.genred

    def broken():
        raise ImportError("engine missing")

    monkeypatch.setattr(pykeops.common.genred, "load_engine", broken)
    pykeops.test_numpy_bindings()
    assert capsys.readouterr().out.strip() == "[pyKeOps] pykeops.numpy is not working: ImportError: engine missing"


@pytest.mark.engine
def test_num_threads():
    before = pykeops.get_num_threads()
    try:
        pykeops.set_num_threads(1)
        assert pykeops.get_num_threads() == 1
    finally:
        pykeops.set_num_threads(before)
