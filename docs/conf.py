"""Sphinx configuration of the documentation site (`make docs` builds it into build/docs, warnings as errors)."""

import os
import re

# autodoc imports the installed pykeops (PYTHONPATH=python to document a source tree); plots need no display.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "keops-jit"
author = "keops-jit developers"
copyright = "keops-jit developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "gallery/README.txt", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_heading_anchors = 3  # operations.md links to its own "## Accuracy ..." heading

autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1e9,  # no per-example timing lines (they differ from run to run)
}

html_theme = "furo"
html_title = "keops-jit"
html_static_path = []

# Docstrings are written as plain text (|x|, x ** 2, a_j), with ``literals`` and the Google sections that napoleon
# reads: escape the characters that reStructuredText would take for markup, outside literals and examples.
_LITERAL = re.compile(r"(``.*?``)")
_MARKUP = re.compile(r"([|*`])|(?<=\w)_(?=\W|$)")


def _escape(line):
    if line.lstrip().startswith((">>>", "...")):
        return line
    return "".join(part if part.startswith("``") else _MARKUP.sub(lambda m: "\\" + m.group(0), part)
                   for part in _LITERAL.split(line))


def _escape_docstring(app, what, name, obj, options, lines):
    in_example = False
    for k, line in enumerate(lines):
        in_example = line.lstrip().startswith(">>>") or (in_example and line.strip() != "")
        if not in_example:
            lines[k] = _escape(line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_docstring, priority=100)  # before napoleon (500)
