"""The distribution's version: the single source that pyproject.toml (scikit-build-core's regex provider) reads."""

__version__ = "0.1.0"
