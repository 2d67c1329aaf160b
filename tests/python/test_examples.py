"""The examples run at small sizes and pass their own checks (each exits non-zero when its check fails)."""
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

RUNS = {
    "gaussian_kernel.py": ["--m", "2000", "--n", "3000"],
    "gaussian_mixture.py": ["--n", "3000", "--steps", "40"],
    "knn.py": ["--n", "5000", "--m", "500", "--check", "50"],
    "kmeans.py": ["--n", "5000", "--k", "10", "--iters", "3", "--check", "200"],
    "rbf_interpolation.py": ["--n", "2000", "--m", "500", "--check", "100"],
    "distributed_kernel_sum.py": ["--points", "3000", "--check", "50"],
    "jax_kernel_regression.py": ["--n", "2000", "--m", "500", "--steps", "20", "--check", "100"],
}
# Examples of an optional framework: skipped only where it is not installed.
NEEDS = {"jax_kernel_regression.py": "jax"}
# Examples started by a launcher rather than by python itself: torchrun, 2 CPU ranks on a free port.
LAUNCHERS = {"distributed_kernel_sum.py": ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]}


def test_every_example_is_run():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example(name):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    command = [sys.executable, *LAUNCHERS.get(name, []), str(EXAMPLES / name), *RUNS[name]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
