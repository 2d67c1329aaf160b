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
}


def test_every_example_is_run():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example(name):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *RUNS[name]], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
