"""Code generation that scales: long component sums become loops (code size flat in D), row tiles and masked j-tiles
give the same results as a float64 dense reference for every shape (rows and columns not multiples of the tiles)."""
import re

import numpy as np
import pytest

from pykeops import _engine
from pykeops.numpy import Genred

pytestmark = pytest.mark.engine


def ir_lines(formula, aliases):
    return len(_engine.kernel_ir(formula, aliases, "float32").splitlines())


def test_code_size_does_not_grow_with_the_dimension():
    small = ir_lines("ArgKMin_Reduction(SqDist(x,y),10,0)", ["x=Vi(64)", "y=Vj(64)"])
    large = ir_lines("ArgKMin_Reduction(SqDist(x,y),10,0)", ["x=Vi(10000)", "y=Vj(10000)"])
    assert large <= small * 1.1
    gauss = ir_lines("Sum_Reduction(Exp(-SqDist(x,y))*b,0)", ["x=Vi(2000)", "y=Vj(2000)", "b=Vj(3)"])
    assert gauss <= 2 * ir_lines("Sum_Reduction(Exp(-SqDist(x,y))*b,0)", ["x=Vi(16)", "y=Vj(16)", "b=Vj(3)"])


def flat_exp_sum(n):
    return "Sum_Reduction(" + "+".join(f"Exp(-(x-y)*{k + 1})" for k in range(n)) + ",0)", ["x=Vi(1)", "y=Vj(1)"]


def nested_sin(n):
    return "Sum_Reduction(" + "Sin(" * n + "x-y" + ")" * n + ",0)", ["x=Vi(1)", "y=Vj(1)"]


@pytest.mark.parametrize("family, per_node", [(flat_exp_sum, 4), (nested_sin, 2)])
def test_code_size_is_linear_in_the_formula(family, per_node):
    # Past the sizes where the row tile shrinks, each extra node costs a bounded number of IR lines (a term of the
    # flat sum: its product, the call and the add), and a math function used many times is defined once and called.
    ir_small, ir_large = (_engine.kernel_ir(*family(n), "float32") for n in (400, 1000))
    assert len(ir_large.splitlines()) - len(ir_small.splitlines()) <= per_node * 600
    assert len(ir_large.splitlines()) <= 3 * len(ir_small.splitlines())
    for ir in (ir_small, ir_large):
        assert len(re.findall(r"^define ", ir, re.M)) == 2  # the kernel and one outlined Exp or Sin


@pytest.mark.parametrize("formula, aliases", [
    ("Sum_Reduction(Exp(-SqDist(x,y))*b,0)", ["x=Vi(3)", "y=Vj(3)", "b=Vj(1)"]),
    ("ArgKMin_Reduction(SqDist(x,y),50,0)", ["x=Vi(3)", "y=Vj(3)"]),
])
def test_the_loop_over_j_is_not_copied(formula, aliases):
    # One vector loop over j per kind of rows (tiles of rows, single rows): LLVM unrolling the loops around it (over
    # intervals of j, rows) made 3 + 5 copies of a Gaussian sum's and doubled its compile time.
    ir = _engine.kernel_ir(formula, aliases, "float32")
    loops = [line for line in ir.splitlines() if re.match(r"vec[0-9]*(\.[0-9]+|\.epil)?:", line)]
    assert 1 <= len(loops) <= 2, loops


@pytest.mark.parametrize("m,n,d", [(1, 1, 300), (7, 33, 300), (29, 17, 1000), (64, 100, 9), (13, 250, 40)])
def test_knn_and_gaussian_sum_match_the_dense_reference(m, n, d):
    rng = np.random.default_rng(m * 1000 + n + d)
    x = rng.standard_normal((m, d)).astype(np.float32)
    y = rng.standard_normal((n, d)).astype(np.float32)
    b = rng.standard_normal((n, 1)).astype(np.float32)
    d2 = ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)
    k = min(5, n)
    idx = Genred("SqDist(x,y)", [f"x=Vi({d})", f"y=Vj({d})"], reduction_op="ArgKMin", axis=1, opt_arg=k)(x, y)
    ref = np.sort(d2, axis=1)[:, :k]
    got = np.take_along_axis(d2, idx.astype(np.int64), axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    g = Genred(f"Exp(-SqDist(x,y)*IntInv({d}))*b", [f"x=Vi({d})", f"y=Vj({d})", "b=Vj(1)"], reduction_op="Sum", axis=1)
    dense = np.exp(-d2 / d) @ b.astype(np.float64)
    np.testing.assert_allclose(g(x, y, b), dense, rtol=1e-4, atol=1e-6 * np.abs(dense).max())


@pytest.mark.parametrize("reduction", ["Min", "ArgMax", "LogSumExp", "Max_ArgMax", "KMin"])
def test_reductions_over_tiles_with_masked_lanes(reduction):
    rng = np.random.default_rng(3)
    m, n, d = 21, 37, 24  # 21 rows: two tiles of 8 and 5 single rows; 37 columns: two full j-tiles and a masked one
    x = rng.standard_normal((m, d))
    y = rng.standard_normal((n, d))
    f = (x[:, None, :] * y[None, :, :]).sum(-1)
    kw = {"opt_arg": 3} if reduction == "KMin" else {}
    got = Genred("(x|y)", [f"x=Vi({d})", f"y=Vj({d})"], reduction_op=reduction, axis=1, **kw)(x, y)
    ref = {
        "Min": f.min(1, keepdims=True),
        "ArgMax": f.argmax(1)[:, None].astype(float),
        "LogSumExp": np.log(np.exp(f - f.max(1, keepdims=True)).sum(1, keepdims=True)) + f.max(1, keepdims=True),
        "Max_ArgMax": None,
        "KMin": np.sort(f, 1)[:, :3],
    }[reduction]
    if reduction == "Max_ArgMax":
        np.testing.assert_allclose(got[0], f.max(1, keepdims=True), rtol=1e-12)
        np.testing.assert_array_equal(got[1][:, 0], f.argmax(1))
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-12)
