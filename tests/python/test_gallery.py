"""The documentation's runnable parts: the gallery scripts at small sizes (each asserts its result against a dense
computation) and the getting-started page's examples, which must print what the page shows."""

import doctest
import os
import pathlib
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
GALLERY = sorted((DOCS / "gallery").glob("plot_*.py"))


def test_the_gallery_has_the_promised_examples():
    names = {p.stem for p in GALLERY}
    assert {"plot_knn_classification", "plot_kmeans", "plot_rbf_interpolation", "plot_gaussian_mixture",
            "plot_kernel_ridge_regression", "plot_benchmark"} <= names


@pytest.mark.parametrize("script", GALLERY, ids=lambda p: p.stem)
def test_gallery_script_runs_small_and_checks_itself(script, tmp_path):
    text = script.read_text()
    title = text.split('"""')[1].strip().splitlines()
    assert len(title) >= 3 and set(title[1]) == {"="} and len(title[1]) == len(title[0]), "sphinx-gallery header"
    assert "assert " in text and "plt.show()" in text  # checks its result, and makes a plot
    env = {**os.environ, "KEOPS_EXAMPLE_SMALL": "1", "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_getting_started_prints_what_it_shows():
    result = doctest.testfile(str(DOCS / "getting_started.rst"), module_relative=False, verbose=False)
    assert result.attempted >= 10 and result.failed == 0
