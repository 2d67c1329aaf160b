"""docs/operations.md is what docs/generate_operations.py makes from the engine's operation table, and the
generator refuses operations it cannot describe."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from pykeops import _engine

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "generate_operations.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("generate_operations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_operations_doc_is_up_to_date(gen):
    assert (ROOT / "docs" / "operations.md").read_text() == gen.render(), (
        "docs/operations.md is stale: run `python docs/generate_operations.py`"
    )


def test_check_flag_from_the_command_line():
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_check_flag_detects_stale_and_missing_files(gen, monkeypatch, tmp_path, capsys):
    out = tmp_path / "operations.md"
    monkeypatch.setattr(gen, "OUTPUT", out)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1  # missing
    out.write_text(gen.render() + "edited by hand\n")
    assert gen.main(["--check"]) == 1
    assert "operations.md is stale" in capsys.readouterr().err
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_every_operation_is_listed_with_its_signature(gen):
    text = gen.render()
    for op in _engine.operations():
        assert f"| `{gen.signature(op)}` |" in text.replace("\\|", "|")


@pytest.mark.parametrize("name, expected", [
    ("Var", "Var(pos: int, dim: int, cat: int)"),
    ("Pow", "Pow(f, m: int)"),
    ("Rsqrt", "Rsqrt(f)"),
    ("Add", "Add(f, g)"),
    ("Clamp", "Clamp(f, a, b)"),
    ("Extract", "Extract(f, start: int, d: int)"),
    ("TensorDot", "TensorDot(f, g, dims_f: list, dims_g: list, contract_f: list, contract_g: list[, permutation: list])"),
    ("Kron", "Kron(f, g, dims_f: list, dims_g: list)"),
    ("Grad", "Grad(f, v[, e])"),
    ("SumLinOperator", "SumLinOperator(f, v[, wl, wr])"),
    ("IntCst", "IntCst(n: int)"),
])
def test_readable_signatures(gen, name, expected):
    op = next(op for op in _engine.operations() if op["name"] == name)
    assert gen.signature(op) == expected


def test_every_operation_states_its_output_dim_and_the_page_shows_it(gen):
    ops = _engine.operations()
    assert all(op["out_dim"].strip() for op in ops), [op["name"] for op in ops if not op["out_dim"].strip()]
    text = gen.render(ops)
    for op in ops:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{gen.signature(op)}`"))
        assert f"| {op['out_dim'].replace('|', chr(92) + '|')} |" in row


def test_a_new_engine_operation_appears_with_its_own_output_dim(gen):
    new = {"name": "Frobnicate", "signature": "F", "doc": "A new operation.", "supported": True, "accuracy": "",
           "out_dim": "dim of f, twice", "on_complex": False, "infix": ""}
    assert "| `Frobnicate(f)` | dim of f, twice | A new operation. |" in gen.render(_engine.operations() + [new])


def test_vec_math_links_and_accuracy_section(gen):
    text = gen.render()
    anchor = gen.VEC_MATH_ANCHOR
    heading = next(line for line in text.splitlines() if line.startswith("## Accuracy"))
    assert heading[3:].lower().replace(" ", "-") == anchor
    linked = [op["name"] for op in _engine.operations() if op["accuracy"] == "see vec_math"]
    assert set(linked) == {"Exp", "Log", "Sin", "Cos", "Atan", "Asin", "Acos", "Atan2"}
    for name in linked:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}("))
        assert f"(#{anchor})" in row
    bounds = gen.tested_bounds()
    assert set(bounds) == {"exp", "log", "sin", "cos", "atan", "atan2", "asin", "acos"}
    assert all(set(b) == {"f32", "f64"} for b in bounds.values())
    header = gen.VEC_MATH.read_text().split("\n\n")[0]
    assert "accuracy (measured by" in header and "accuracy (measured by" in text


def test_vec_math_table_is_copied_when_recorded(gen, monkeypatch, tmp_path):
    fake = tmp_path / "vec_math.cpp"
    fake.write_text(
        "// Emits things.\n//\n// accuracy (measured):\n//   fn     f32     f64\n//   exp    0.9     0.6\n//\n"
        "// sin/cos argument range: fine.\n\n#include <x>\n"
    )
    monkeypatch.setattr(gen, "VEC_MATH", fake)
    text = gen.render()
    assert "```\nfn     f32     f64\nexp    0.9     0.6\n```" in text
    assert "not recorded" not in text and "> sin/cos argument range: fine." in text


# ------------------------------------------------------------------------------------------------ docstrings

import doctest  # noqa: E402
import inspect  # noqa: E402

import numpy as np  # noqa: E402

import pykeops  # noqa: E402
import pykeops.numpy  # noqa: E402
import pykeops.numpy.cluster  # noqa: E402

FRAMEWORKS = [pykeops.numpy]
try:
    import torch  # noqa: E402

    import pykeops.torch  # noqa: E402
    import pykeops.torch.cluster  # noqa: E402

    FRAMEWORKS.append(pykeops.torch)
except ImportError:  # the NumPy half is still checked
    torch = None


def _public_members(cls):
    """Public methods and properties of a class (dunder operators excluded), with their docstrings."""
    for name, _ in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, (property, staticmethod, classmethod)) or inspect.isfunction(static) or callable(static):
            yield name, inspect.getdoc(getattr(cls, name)) or ""


@pytest.mark.parametrize("fw", FRAMEWORKS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("cls_name", ["LazyTensor", "ComplexLazyTensor"])
def test_every_public_lazy_tensor_member_has_a_real_docstring(fw, cls_name):
    cls = getattr(fw, cls_name)
    members = dict(_public_members(cls))
    assert {"exp", "sum", "logsumexp", "Kmin", "argKmin", "solve", "shape", "T"} <= set(members)
    short = {name: doc for name, doc in members.items() if len(doc) < 25 and name not in ("tools",)}
    assert not short, f"{cls_name} members without a real docstring: {sorted(short)}"


def _public_api():
    for fw in FRAMEWORKS:
        for name in ("Genred", "KernelSolve", "LazyTensor", "ComplexLazyTensor", "Vi", "Vj", "Pm", "generic_sum",
                     "generic_logsumexp", "generic_argmin", "generic_argkmin"):
            yield f"{fw.__name__}.{name}", getattr(fw, name)
        for name in fw.cluster.__all__:
            yield f"{fw.__name__}.cluster.{name}", getattr(fw.cluster, name)
    for name in ("set_num_threads", "get_num_threads", "set_verbose", "get_build_folder", "set_build_folder",
                 "clean_pykeops", "check_health", "test_numpy_bindings", "test_torch_bindings"):
        yield f"pykeops.{name}", getattr(pykeops, name)


@pytest.mark.parametrize("name, obj", list(_public_api()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_api_has_a_real_docstring(name, obj):
    assert len(inspect.getdoc(obj) or "") >= 40, f"{name} has no real docstring"


@pytest.mark.parametrize("fw", FRAMEWORKS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("cls_name", ["Genred", "KernelSolve", "LazyTensor"])
def test_main_classes_document_their_use_and_their_example_runs(fw, cls_name):
    """help(Genred) was 94 characters: the main classes say what they take and return, and their example runs."""
    obj = getattr(fw, cls_name)
    doc = inspect.getdoc(obj)
    assert len(doc) > 800 and "Example:" in doc and ">>>" in doc
    if cls_name != "LazyTensor":
        assert "Args:" in doc and "Returns:" in doc
    env = {"np": np, "torch": torch, "Genred": fw.Genred, "KernelSolve": fw.KernelSolve, "LazyTensor": fw.LazyTensor}
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(obj, name=cls_name, globs=env)
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"the example of {fw.__name__}.{cls_name} fails"
