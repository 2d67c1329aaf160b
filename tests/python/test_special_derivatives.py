"""Derivatives at the special points of each operation, through torch autograd on LazyTensors, against the values
pykeops 2.3 gives there (measured with its Genred Grad; its convention Rsqrt(0) = 0 makes d Sqrt(x) = Rsqrt(x)/2
vanish at 0). One test per point; where pykeops gives NaN for a derivative that is finite, the note says so."""

import math

import pytest
import torch

from pykeops.torch import LazyTensor

pytestmark = pytest.mark.engine

inf, nan = math.inf, math.nan


def grad_at(build, *points):
    """d/d(first point) of sum_j build(x_i, ...) with one row i and one j, all inputs of float64."""
    leaves = [torch.tensor([p], dtype=torch.float64, requires_grad=True) for p in points]
    ones_j = LazyTensor(torch.ones(1, 1, dtype=torch.float64), axis=1)
    lazy = [LazyTensor(t, axis=0) for t in leaves]
    out = (build(*lazy) * ones_j).sum(1).sum()
    g, = torch.autograd.grad(out, leaves[0])
    return g.view(-1).tolist()


def same(got, want):
    assert len(got) == len(want), (got, want)
    for a, b in zip(got, want):
        assert (math.isnan(a) and math.isnan(b)) or a == b, (got, want)


# (name, builder, points, expected gradient w.r.t. the first point)
CASES = [
    ("sqrt at 0", lambda x: x.sqrt(), [[0.0]], [0.0]),  # pykeops: 0 (Rsqrt(0) = 0), was NaN/inf here
    ("rsqrt at 0", lambda x: x.rsqrt(), [[0.0]], [0.0]),
    ("abs at 0", lambda x: x.abs(), [[0.0]], [0.0]),
    ("sign at 0", lambda x: x.sign(), [[0.0]], [0.0]),
    ("log at 0", lambda x: x.log(), [[0.0]], [inf]),
    ("inv at 0", lambda x: x.inv(), [[0.0]], [-inf]),
    ("square at 0", lambda x: x ** 2, [[0.0]], [0.0]),
    ("pow 3 at 0", lambda x: x ** 3, [[0.0]], [0.0]),
    ("pow -1 at 0", lambda x: x ** -1, [[0.0]], [-inf]),
    ("pow -2 at 0", lambda x: x ** -2, [[0.0]], [-inf]),
    ("powf base 0 exponent 2", lambda x, y: x.power(y), [[0.0], [2.0]], [0.0]),
    ("powf base 0 exponent 1/2", lambda x, y: x.power(y), [[0.0], [0.5]], [inf]),
    ("powf base 0 exponent 1", lambda x, y: x.power(y), [[0.0], [1.0]], [1.0]),  # pykeops: 1 (pow(0, 0) = 1)
    ("powf base 0 exponent 0", lambda x, y: x.power(y), [[0.0], [0.0]], [nan]),  # 0 * pow(0, -1) = 0 * inf
    ("powf exponent at base 0", lambda y, x: x.power(y), [[2.0], [0.0]], [nan]),  # pykeops: log(0) * 0
    ("norm2 at 0", lambda x: x.norm2(), [[0.0, 0.0, 0.0]], [0.0, 0.0, 0.0]),
    ("normalize at 0", lambda x: x.normalize().sum(), [[0.0, 0.0, 0.0]], [0.0, 0.0, 0.0]),
    ("sqnorm2 at 0", lambda x: x.sqnorm2(), [[0.0, 0.0, 0.0]], [0.0, 0.0, 0.0]),
    ("distance to itself", lambda x, y: ((x - y) ** 2).sum().sqrt(), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
     [0.0, 0.0, 0.0]),
    ("norm2 of a difference at 0", lambda x, y: (x - y).norm2(), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
     [0.0, 0.0, 0.0]),
    ("exp(-distance) at 0", lambda x, y: (-((x - y) ** 2).sum().sqrt()).exp(), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
     [0.0, 0.0, 0.0]),
    ("atan2 at (0, 0), first argument", lambda y, x: y.atan2(x), [[0.0], [0.0]], [nan]),
    ("atan2 at (0, 0), second argument", lambda x, y: y.atan2(x), [[0.0], [0.0]], [nan]),
    ("acos at 1", lambda x: x.acos(), [[1.0]], [0.0]),  # -Rsqrt(1 - x^2) with Rsqrt(0) = 0
    ("acos at -1", lambda x: x.acos(), [[-1.0]], [0.0]),
    ("asin at 1", lambda x: x.asin(), [[1.0]], [0.0]),
    ("asin at -1", lambda x: x.asin(), [[-1.0]], [0.0]),
    ("xlogx at 0", lambda x: x.xlogx(), [[0.0]], [-inf]),
    ("sinxdivx at 0", lambda x: x.sinxdivx(), [[0.0]], [0.0]),  # pykeops: NaN (cos x / x - sin x / x^2); exact: 0
    ("clamp at its lower bound", lambda x, a, b: x.clamp(a, b), [[0.0], [0.0], [1.0]], [1.0]),  # as torch.clamp
    ("clamp at its upper bound", lambda x, a, b: x.clamp(a, b), [[1.0], [0.0], [1.0]], [1.0]),
    ("clamp's lower bound where it is reached", lambda a, x, b: x.clamp(a, b), [[0.0], [0.0], [1.0]], [0.0]),
    ("clamp's upper bound where it is reached", lambda b, x, a: x.clamp(a, b), [[1.0], [1.0], [0.0]], [0.0]),
    ("clamp's lower bound below it", lambda a, x, b: x.clamp(a, b), [[0.0], [-1.0], [1.0]], [1.0]),
    ("clampint at its lower bound", lambda x: x.clamp(0, 1), [[0.0]], [1.0]),
    ("clampint at its upper bound", lambda x: x.clamp(0, 1), [[1.0]], [1.0]),
    ("clampint above", lambda x: x.clamp(0, 1), [[1.5]], [0.0]),
    ("mod at a jump", lambda x, m: x.mod(m), [[1.0], [1.0]], [1.0]),
    ("ifelse condition at 0", lambda c, a, b: c.ifelse(a, b), [[0.0], [1.0], [2.0]], [0.0]),
    ("ifelse branch taken at 0", lambda a, c, b: c.ifelse(a, b), [[1.0], [0.0], [2.0]], [1.0]),
    ("relu at 0", lambda x: x.relu(), [[0.0]], [1.0]),
    ("step at 0", lambda x: x.step(), [[0.0]], [0.0]),
]


@pytest.mark.parametrize("build,points,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_derivative_at_special_point(build, points, want):
    same(grad_at(build, *points), want)


def test_complex_abs_at_0():
    # |z| at z = 0: pykeops gives 0 (its gradient uses Rsqrt(|z|^2), 0 at 0); was NaN (e / |z|) here.
    from pykeops.torch import Genred

    f = Genred("Grad(ComplexAbs(z), z, e)", ["z=Vi(0,2)", "e=Vi(1,1)", "o=Vj(2,1)"], reduction_op="Sum", axis=1)
    out = f(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64),
            torch.ones(1, 1, dtype=torch.float64))
    same(out.view(-1).tolist(), [0.0, 0.0])


def test_energy_distance_gradient_has_no_nan():
    # geomloss's energy / laplacian losses: every x_i = x_i self-term is a distance of 0.
    torch.manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    D = ((LazyTensor(x[:, None, :]) - LazyTensor(x[None, :, :])) ** 2).sum(-1)
    g, = torch.autograd.grad(D.sqrt().sum(1).sum(), x)
    dense = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    off = ~torch.eye(4, dtype=torch.bool)  # torch's own sqrt gives NaN on the diagonal: leave it out
    ref, = torch.autograd.grad(dense[off].sqrt().sum(), x)
    torch.testing.assert_close(g, ref)


def test_powf_with_exponent_0_is_1():
    # pykeops's Powf is C's pow: pow(f, 0) = 1 for every f (torch.pow too); exp(0 * log 0) was NaN here.
    x = LazyTensor(torch.tensor([[0.0], [2.0], [-3.0]], dtype=torch.float64), axis=0)
    y = LazyTensor(torch.zeros(1, 1, dtype=torch.float64), axis=1)
    out = (x ** y).sum(1).view(-1)
    assert out.tolist() == [1.0, 1.0, 1.0]
