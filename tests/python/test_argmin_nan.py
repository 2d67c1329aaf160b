"""Min/Max/Arg*/KMin reductions over NaN: values skip NaN as pykeops does (+-inf when no number is left), indices
rank NaN after every number, so an all-NaN row gives its first index as torch.argmin does, never -1."""

import numpy as np
import pytest
import torch

from pykeops.numpy import Genred
from pykeops.torch import LazyTensor

pytestmark = pytest.mark.engine

nan, inf = np.nan, np.inf
ROWS = [[nan, nan, nan], [1.0, nan, 0.5], [nan, 2.0, 0.5], [3.0, 1.0, 1.0], [1.0, nan, nan], [nan, nan, 2.0]]


def reduce_row(row, red, opt=None, dtype=np.float64):
    f = Genred("X", ["X=Vj(0,1)", "Y=Vi(1,1)"], reduction_op=red, axis=1, opt_arg=opt)
    out = f(np.array(row, dtype=dtype).reshape(-1, 1), np.zeros((1, 1), dtype=dtype))
    return [np.asarray(o).ravel().tolist() for o in (out if isinstance(out, tuple) else (out,))]


# Expected outputs, written out: values as pykeops 2.3 gives them (checked), indices with NaN ranked last.
EXPECTED = {
    ("Min_ArgMin", None): [[[inf], [0]], [[0.5], [2]], [[0.5], [2]], [[1.0], [1]], [[1.0], [0]], [[2.0], [2]]],
    ("Max_ArgMax", None): [[[-inf], [0]], [[1.0], [0]], [[2.0], [1]], [[3.0], [0]], [[1.0], [0]], [[2.0], [2]]],
    ("KMin_ArgKMin", 2): [[[inf, inf], [0, 1]], [[0.5, 1.0], [2, 0]], [[0.5, 2.0], [2, 1]], [[1.0, 1.0], [1, 2]],
                          [[1.0, inf], [0, 1]], [[2.0, inf], [2, 0]]],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("red,opt", list(EXPECTED))
def test_value_and_index_reductions(red, opt, dtype):
    for row, want in zip(ROWS, EXPECTED[(red, opt)]):
        got = reduce_row(row, red, opt, dtype)
        assert got == want, (row, got, want)
        # the index-only and value-only reductions agree with their pair
        arg = red.split("_")[1]
        assert reduce_row(row, arg, opt, dtype) == [want[1]]
        assert reduce_row(row, red.split("_")[0], opt, dtype) == [want[0]]


def test_all_nan_rows_like_torch_argmin():
    x = torch.randn(7, 3, dtype=torch.float64)
    y = torch.randn(50, 3, dtype=torch.float64)
    y[:, 0] = float("nan")  # every distance is NaN
    D = ((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1)
    dense = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    assert torch.equal(D.argmin(dim=1).view(-1), dense.argmin(dim=1))
    assert torch.equal(D.argmax(dim=1).view(-1), dense.argmax(dim=1))
    assert torch.equal(D.argmin(dim=0).view(-1), dense.argmin(dim=0))
    # ArgKMin: the first K indices, as a stable torch.sort lists NaN entries (after every number)
    assert torch.equal(D.argKmin(4, dim=1), dense.sort(dim=1, stable=True).indices[:, :4])
    assert torch.equal(D.argKmin(4, dim=1), torch.arange(4).expand(7, 4))


def test_blocks_of_nan_in_long_rows():
    # Rows long enough for the vector loop, the thread split and several chunks: NaN everywhere but a few places.
    n = 5000
    y = np.full((n, 1), nan)
    y[[3000, 4500], 0] = [2.0, -1.0]
    x = np.zeros((3, 1))
    x[1, 0] = nan  # row 1: all NaN
    f = Genred("X+Y", ["X=Vj(0,1)", "Y=Vi(1,1)"], reduction_op="KMin_ArgKMin", axis=1, opt_arg=3)
    vals, idx = f(y, x)
    np.testing.assert_array_equal(idx, [[4500, 3000, 0], [0, 1, 2], [4500, 3000, 0]])
    np.testing.assert_array_equal(vals, [[-1.0, 2.0, inf], [inf, inf, inf], [-1.0, 2.0, inf]])
    g = Genred("X+Y", ["X=Vj(0,1)", "Y=Vi(1,1)"], reduction_op="ArgMax", axis=1)
    np.testing.assert_array_equal(g(y, x), [[3000], [0], [3000]])


def test_empty_range_still_reads_minus_one():
    # With ranges, a row whose reduced set is empty has no index to give: -1 stays the documented answer there.
    x = np.zeros((2, 1))
    y = np.array([[nan], [nan], [1.0]])
    ranges_i = np.array([[0, 1], [1, 2]], dtype=np.int32)
    slices_i = np.array([1, 2], dtype=np.int32)
    redranges_j = np.array([[0, 2], [2, 2]], dtype=np.int32)  # row 0: all-NaN j in [0, 2); row 1: empty
    ranges_j = np.array([[0, 2], [2, 3]], dtype=np.int32)
    slices_j = np.array([1, 2], dtype=np.int32)
    redranges_i = np.array([[0, 1], [1, 1]], dtype=np.int32)
    ranges = (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i)
    f = Genred("X+Y", ["X=Vj(0,1)", "Y=Vi(1,1)"], reduction_op="ArgMin", axis=1)
    np.testing.assert_array_equal(f(y, x, ranges=ranges), [[0], [-1]])
