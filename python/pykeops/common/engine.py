"""Lazy access to the native engine, so that formula building and validation work before it is built."""

import importlib
import importlib.util
import warnings

_NAME = "pykeops._engine"


def load_engine():
    """Return the pykeops._engine extension module; if it cannot be imported, an ImportError that says why."""
    try:
        return importlib.import_module(_NAME)
    except ModuleNotFoundError as e:
        if e.name != _NAME:
            raise
        raise ImportError(
            f"the pykeops C++ engine ({_NAME}) is not built: build and install it with "
            "`pip install --no-build-isolation .` from the repository root (README, Install)"
        ) from e
    except ImportError as e:
        # The file is there but the loader refused it (a missing shared library, a foreign ABI, ...): that cause
        # goes first, not a suggestion to build what is already built.
        raise ImportError(f"the pykeops C++ engine cannot be loaded: {e}") from e


def warn_if_unloadable():
    """Warn at `import pykeops` when the engine is installed but does not load, with the loader's own message."""
    if importlib.util.find_spec(_NAME) is None:
        return  # not built: formulas can still be built and checked; the first reduction raises
    try:
        load_engine()
    except ImportError as e:
        warnings.warn(str(e), RuntimeWarning, stacklevel=2)


def constant_when_traced(fn):
    """Mark fn, a pure function of plain values that asks the engine, as a constant for torch.compile: Dynamo then
    calls it while tracing instead of tracing into the engine (the marker torch._dynamo.assume_constant_result
    sets; no torch import here)."""
    fn._dynamo_marked_constant = True
    return fn
