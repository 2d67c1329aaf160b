"""Ctrl-C during a long CPU reduction raises KeyboardInterrupt promptly, and the engine keeps working after it."""
import os
import signal
import subprocess
import sys
import time

import pytest

# A Gaussian sum that runs for many seconds (about 20 s on 2 cores at M = N = 160000), then a small check.
CHILD = r"""
import sys, time
import numpy as np
from pykeops.numpy import Genred
n = int(sys.argv[1])
rng = np.random.default_rng(0)
x, y, b = (rng.random((n, d), dtype=np.float32) for d in (3, 3, 1))
g = Genred("Exp(-SqDist(x,y))*b", ["x=Vi(3)", "y=Vj(3)", "b=Vj(1)"], reduction_op="Sum", axis=1)
g(x[:10], y[:10], b[:10])  # compiled before the long run
print("started", flush=True)
try:
    g(x, y, b)
    print("finished", time.monotonic(), flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
xs, ys, bs = x[:50].astype(np.float64), y[:70].astype(np.float64), b[:70].astype(np.float64)
ref = (np.exp(-((xs[:, None] - ys[None]) ** 2).sum(-1)) @ bs)
print("after", bool(np.allclose(g(x[:50], y[:70], b[:70]), ref, rtol=1e-5)), flush=True)
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_ctrl_c_interrupts_a_long_reduction_promptly(tmp_path, threads):
    env = dict(os.environ, KEOPS_CACHE_FOLDER=str(tmp_path), PYKEOPS_NUM_THREADS=threads)
    n = "160000" if threads == "2" else "113000"  # the same time per thread
    p = subprocess.Popen([sys.executable, "-c", CHILD, n], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "started", p.stderr.read()
        time.sleep(1.0)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err[-2000:]
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert "finished" not in lines, "the reduction ended before the signal: make it longer"
    latency = float(lines["interrupted"]) - sent
    assert latency < 1.5, f"KeyboardInterrupt came {latency:.2f} s after the signal"
    assert lines["after"] == "True"  # the engine still computes correctly after an interrupted run
