"""clear_memory_cache releases the compiled code of evicted kernels; kernels still referenced keep working."""
import gc
import json
import os
import subprocess
import sys

import numpy as np

from pykeops.common.engine import load_engine
from pykeops.numpy import Genred

ALIASES = ["x=Vi(3)", "y=Vj(3)"]


def reference(x, y, k):
    return np.exp(-k * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)).sum(1, keepdims=True)


def test_kernels_referenced_elsewhere_keep_working_across_a_clear():
    engine = load_engine()
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 3)), rng.random((30, 3))
    formula = "Exp(-SqDist(x,y)*IntCst(777))"
    gc.collect()
    engine.clear_memory_cache()
    base = engine.linked_objects()
    g = Genred(formula, ALIASES, axis=1)
    np.testing.assert_allclose(g(x, y), reference(x, y, 777), rtol=1e-12)
    assert engine.linked_objects() == base + 1
    engine.clear_memory_cache()
    assert engine.linked_objects() == base + 1  # g still holds its kernel
    np.testing.assert_allclose(g(x, y), reference(x, y, 777), rtol=1e-12)
    g2 = Genred(formula, ALIASES, axis=1)  # the same code again, from the disk: shared, not linked twice
    np.testing.assert_allclose(g2(x, y), reference(x, y, 777), rtol=1e-12)
    assert engine.linked_objects() == base + 1
    del g, g2
    gc.collect()
    engine.clear_memory_cache()
    assert engine.linked_objects() == base  # no user left: unlinked
    np.testing.assert_allclose(Genred(formula, ALIASES, axis=1)(x, y), reference(x, y, 777), rtol=1e-12)


# Compiles, runs and evicts distinct kernels in a fresh process: the resident memory after 20 and after 220.
CHILD = r"""
import json, sys
import numpy as np
from pykeops.common.engine import load_engine
from pykeops.numpy import Genred
engine = load_engine()
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
x = np.random.rand(10, 3)
sizes = {}
for k in range(1, 221):
    g = Genred(f"Exp(-SqDist(x,y)*IntCst({k})) * Cos(x|y) + Sin(SqNorm2(x-y))", ["x=Vi(3)", "y=Vj(3)"], axis=1)
    g(x, x)
    del g
    engine.clear_memory_cache()
    if k in (20, 220):
        sizes[k] = rss()
print(json.dumps({"rss": sizes, "linked": engine.linked_objects()}))
"""


def test_memory_stays_bounded_across_compile_and_clear_cycles(tmp_path):
    env = dict(os.environ, KEOPS_CACHE_FOLDER=str(tmp_path), PYKEOPS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["linked"] == 0
    growth = r["rss"]["220"] - r["rss"]["20"]
    # Each kernel's code and JIT bookkeeping stayed linked before (about 14 KiB each: +2.7 MiB over 200 kernels).
    assert growth < 1 << 20, f"resident memory grew by {growth / 2**20:.1f} MiB over 200 compiled and evicted kernels"
