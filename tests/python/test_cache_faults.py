"""Disk-cache faults: damaged entries are rebuilt (with a warning), never loaded; failed writes leave nothing."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pykeops.common.engine import load_engine

# Runs one Genred per formula of argv[1] (JSON) in a fresh process and prints, per formula, the files it added to
# the cache folder, its RuntimeWarnings and whether the result matched NumPy; argv[2] (optional) is a file size
# limit (RLIMIT_FSIZE) standing for a full disk.
CHILD = r"""
import json, os, resource, signal, sys, warnings
import numpy as np
if len(sys.argv) > 2:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from pykeops.numpy import Genred
from pykeops.common.engine import load_engine
folder = os.environ["KEOPS_CACHE_FOLDER"]
rng = np.random.default_rng(0)
x, y = rng.random((30, 3)), rng.random((40, 3))
d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
report = []
for k in json.loads(sys.argv[1]):
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = Genred(f"Exp(-SqDist(x,y)*IntCst({k}))", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Sum", axis=1)(x, y)
    report.append({
        "files": sorted(set(os.listdir(folder)) - before),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "ok": bool(np.allclose(out, np.exp(-k * d2).sum(1, keepdims=True), rtol=1e-12, atol=0)),
    })
print(json.dumps({"report": report, "stats": load_engine().cache_stats()}))
"""


def run_child(folder, ks, limit=None):
    env = dict(os.environ, KEOPS_CACHE_FOLDER=str(folder))
    args = [sys.executable, "-c", CHILD, json.dumps(ks)] + ([str(limit)] if limit is not None else [])
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"the process died ({p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(offset):
    def damage(path):
        data = bytearray(path.read_bytes())
        data[offset(len(data))] ^= 0x10
        path.write_bytes(bytes(data))

    return damage


def empty(path):
    path.write_bytes(b"")


# (what is damaged, which file, how)
FAULTS = [
    ("truncated object", ".o", truncate),
    ("bit flipped in the object's code", ".o", flip(lambda n: n // 2)),
    ("bit flipped in the object's header", ".o", flip(lambda n: 20)),
    ("zero-length object", ".o", empty),
    ("zero-length key", ".key", empty),
    ("bit flipped in the key's checksum", ".key", flip(lambda n: 25)),
    ("bit flipped in the stored key", ".key", flip(lambda n: n - 3)),
]


def test_damaged_entries_are_rebuilt_with_a_warning_not_loaded(tmp_path):
    ks = list(range(1, len(FAULTS) + 1))
    first = run_child(tmp_path, ks)
    assert all(r["ok"] and not r["warnings"] for r in first["report"])
    assert first["stats"]["compiled"] == len(ks)
    entries = {}
    for (what, ext, damage), r in zip(FAULTS, first["report"]):
        assert sorted(os.path.splitext(f)[1] for f in r["files"]) == [".key", ".o"], r["files"]
        target = next(tmp_path / f for f in r["files"] if f.endswith(ext))
        damage(target)
        entries[what] = r["files"]

    second = run_child(tmp_path, ks)
    for (what, _, _), r in zip(FAULTS, second["report"]):
        assert r["ok"], what
        assert len(r["warnings"]) == 1 and "damaged" in r["warnings"][0] and "rebuilt" in r["warnings"][0], (what, r)
    assert second["stats"]["compiled"] == len(ks) and second["stats"]["disk_hits"] == 0
    assert sorted(os.listdir(tmp_path)) == sorted(f for files in entries.values() for f in files)  # no debris

    third = run_child(tmp_path, ks)  # the rebuilt entries are whole again
    assert all(r["ok"] and not r["warnings"] for r in third["report"])
    assert third["stats"]["disk_hits"] == len(ks) and third["stats"]["compiled"] == 0


@pytest.mark.parametrize("limit", [0, 1, 1500])
def test_failed_writes_leave_no_debris_and_the_kernel_still_runs(tmp_path, limit):
    r = run_child(tmp_path, [1, 2], limit)
    assert all(e["ok"] and not e["warnings"] for e in r["report"])
    assert os.listdir(tmp_path) == []  # neither temporaries nor an empty key nor an object without its key
    again = run_child(tmp_path, [1, 2])  # a later run without the limit caches as usual
    assert again["stats"]["compiled"] == 2 and all(e["ok"] for e in again["report"])
    assert sorted(os.path.splitext(f)[1] for f in os.listdir(tmp_path)) == [".key", ".key", ".o", ".o"]


def test_damaged_gpu_binary_is_rebuilt_with_a_warning(tmp_path):
    """The cubins of the GPU backend go through the same entries (NVRTC compiles them without a GPU)."""
    engine = load_engine()
    old = engine.cache_folder()
    engine.set_cache_folder(str(tmp_path))
    try:
        request = ("Sum_Reduction(Exp(-SqDist(x,y)),0)", ["x=Vi(3)", "y=Vj(3)"], "float32")
        try:
            size = engine.get_gpu_kernel(*request).compile("sm_80")
        except NotImplementedError as e:  # no libnvrtc: CI installs the nvidia-cuda-nvrtc wheel (Makefile `deps`)
            pytest.fail(f"NVRTC is needed to compile GPU binaries: {e}")
        (cubin,) = tmp_path.glob("*.cubin")
        truncate(cubin)
        engine.gpu_clear_memory_cache()
        with pytest.warns(RuntimeWarning, match="damaged"):
            assert engine.get_gpu_kernel(*request).compile("sm_80") == size
        assert cubin.stat().st_size == size
        engine.gpu_clear_memory_cache()
        before = engine.gpu_cache_stats()["disk_hits"]
        assert engine.get_gpu_kernel(*request).compile("sm_80") == size
        assert engine.gpu_cache_stats()["disk_hits"] == before + 1
    finally:
        engine.set_cache_folder(old)
        engine.gpu_clear_memory_cache()
