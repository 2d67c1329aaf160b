"""python/pykeops/_engine.pyi describes the compiled module: the same functions, classes, members and parameter
names as the pybind11 signatures (a cheap check; mypy's stubtest would type-check the whole package, ~1 min)."""

import ast
import pathlib
import re
import tomllib

from pykeops import _engine

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "python" / "pykeops"
STUB = ast.parse((PACKAGE / "_engine.pyi").read_text())


def _runtime_params(obj):
    """Parameter names from the first line of a pybind11 docstring, "name(a: int, b: str = 'x') -> T" (methods
    start with "self: Class")."""
    head = obj.__doc__.splitlines()[0] if obj.__doc__.strip() else ""
    names = re.findall(r"[(,]\s*(\w+)\s*:", head.split("->")[0])
    return names


def _stub_params(node):
    return [a.arg for a in node.args.args]


def test_the_package_is_typed_and_the_stub_is_in_the_wheel_sources():
    assert (PACKAGE / "py.typed").exists()
    pyproject = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    assert "python/pykeops" in pyproject["tool"]["scikit-build"]["wheel"]["packages"]  # the whole folder, .pyi included


def test_every_function_and_class_of_the_engine_is_in_the_stub_with_its_parameters():
    stub = {n.name: n for n in STUB.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {name for name in dir(_engine) if not name.startswith("_")}
    if "jax_ffi_handler" not in public:  # (built only when jaxlib's FFI headers were found: CMakeLists.txt)
        stub = {k: v for k, v in stub.items() if not k.startswith("jax_")}
    assert public == set(stub), f"missing from the stub: {public - set(stub)}; stale: {set(stub) - public}"
    for name in public:
        obj, node = getattr(_engine, name), stub[name]
        if isinstance(node, ast.FunctionDef):
            assert _stub_params(node) == _runtime_params(obj), name
            continue
        members = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
        runtime = {m for m in vars(obj) if not m.startswith("_")}
        assert runtime == set(members), f"{name}: {runtime ^ set(members)}"
        for member, fn in members.items():
            attr = vars(obj)[member]
            if isinstance(attr, property):
                assert any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list), member
            else:
                assert _stub_params(fn) == _runtime_params(attr), f"{name}.{member}"
