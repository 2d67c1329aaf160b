"""Lazy access to the native engine, so that formula building and validation work before it is built."""

import importlib


def load_engine():
    """Return the pykeops._engine extension module, with an actionable message if it is missing."""
    try:
        return importlib.import_module("pykeops._engine")
    except ImportError as e:
        raise ImportError(
            "the pykeops C++ engine (pykeops._engine) could not be imported: build and install it with "
            "`pip install --no-build-isolation -e .` from the repository root"
        ) from e


def constant_when_traced(fn):
    """Mark fn, a pure function of plain values that asks the engine, as a constant for torch.compile: Dynamo then
    calls it while tracing instead of tracing into the engine (the marker torch._dynamo.assume_constant_result
    sets; no torch import here)."""
    fn._dynamo_marked_constant = True
    return fn
