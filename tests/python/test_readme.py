"""The README's Python snippets run as written: the CPU ones here, the GPU one where a GPU is usable; all of them
use only names they define or import."""

import ast
import builtins
import pathlib
import re

import pytest

import pykeops

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _needs_gpu(code):
    return "cuda" in code or 'backend="GPU' in code


def test_the_readme_has_cpu_and_gpu_snippets_and_links_the_docs():
    assert any(_needs_gpu(c) for c in SNIPPETS) and any(not _needs_gpu(c) for c in SNIPPETS)
    text = README.read_text()
    assert "## Documentation" in text and "make docs" in text and "build/docs/index.html" in text


@pytest.mark.parametrize("code", SNIPPETS, ids=lambda c: c.splitlines()[0])
def test_snippet_defines_every_name_it_uses(code):
    tree = ast.parse(code)
    defined = set(dir(builtins))
    for node in ast.walk(tree):  # statements run top to bottom: what a snippet binds anywhere is defined
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used <= defined, f"undefined names: {sorted(used - defined)}"


@pytest.mark.parametrize("code", SNIPPETS, ids=lambda c: c.splitlines()[0])
def test_snippet_runs(code):
    if _needs_gpu(code) and not pykeops.config.gpu_available:
        pytest.skip("needs a usable GPU (pykeops.config.gpu_available is False)")
    exec(compile(code, str(README), "exec"), {})
