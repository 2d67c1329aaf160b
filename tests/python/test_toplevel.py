"""Top-level pykeops helpers: build folder, cleaning, health report."""
import numpy as np

import pykeops
from pykeops.numpy import Genred


def test_build_folder_clean_and_health(tmp_path, capsys):
    old = pykeops.get_build_folder()
    try:
        pykeops.set_build_folder(tmp_path)
        assert pykeops.get_build_folder() == str(tmp_path)
        g = Genred("Exp(-SqDist(x,y)) * Cos(x)", ["x = Vi(2)", "y = Vj(2)"], axis=1)
        x = np.random.rand(5, 2)
        g(x, x)
        assert any(p.suffix == ".o" for p in tmp_path.iterdir())
        pykeops.clean_pykeops()
        assert not any(p.suffix == ".o" for p in tmp_path.iterdir())
        np.testing.assert_allclose(g(x, x), Genred("Exp(-SqDist(x,y)) * Cos(x)", ["x = Vi(2)", "y = Vj(2)"], axis=1)(x, x))
        pykeops.check_health()
        assert "CPU threads" in capsys.readouterr().out
    finally:
        pykeops.set_build_folder(old)
