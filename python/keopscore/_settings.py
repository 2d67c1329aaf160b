"""One-time notes for the KeOps settings that keops-jit accepts but that have no effect here, and the module class
that gives them when user code assigns such a setting (keopscore.debug_ops = True)."""

import types
import warnings

_noted = set()


def note(name, why):
    """Warn once per process that the setting `name` has no effect, and why."""
    if name not in _noted:
        _noted.add(name)
        warnings.warn(f"{name} has no effect in keops-jit: {why}", UserWarning, stacklevel=3)


class SettingsModule(types.ModuleType):
    """A module whose assignments to the names of its _NO_EFFECT dict ({name: (default, why)}) note, once, that a
    value other than the default changes nothing."""

    def __setattr__(self, name, value):
        no_effect = self.__dict__.get("_NO_EFFECT", {})
        if name in no_effect and value != no_effect[name][0]:
            note(f"{self.__name__}.{name}", no_effect[name][1])
        super().__setattr__(name, value)
