"""keopscore.config.chunks: KeOps's GPU chunking constants, accepted; keops-jit's GPU backend decides its chunking
per kernel (Genred's enable_chunks=False turns it off for one reduction), so changing them notes once that it has no
effect."""

import sys

from .. import _settings

enable_chunk = True
enable_final_chunk = True
dimchunk = 64
dim_treshold_chunk = 146
specdims_use_chunk = [99, 100, 102, 120, 133, 138, 139, 140, 141, 142]
dimfinalchunk = 64

_WHY = "keops-jit's GPU backend chooses its chunking per kernel; pass enable_chunks=False to a Genred or reduction"
_NO_EFFECT = {name: (value, _WHY) for name, value in (
    ("enable_chunk", True), ("enable_final_chunk", True), ("dimchunk", 64), ("dim_treshold_chunk", 146),
    ("dimfinalchunk", 64),
)}


def get_enable_chunk():
    return enable_chunk


def set_enable_chunk(val):
    setattr(sys.modules[__name__], "enable_chunk", bool(val))


def set_enable_finalchunk(val):
    setattr(sys.modules[__name__], "enable_final_chunk", bool(val))


def get_dimfinalchunk():
    return dimfinalchunk


def set_dimfinalchunk(val):
    setattr(sys.modules[__name__], "dimfinalchunk", val)


sys.modules[__name__].__class__ = _settings.SettingsModule
