"""LazyTensor construction, formula strings, shapes and errors: everything that runs without the engine."""

import numpy as np
import pytest

from pykeops.numpy import LazyTensor, Pm, Vi, Vj

M, N, D = 5, 4, 3


@pytest.fixture
def xyb():
    rng = np.random.default_rng(0)
    return rng.random((M, D)), rng.random((N, D)), rng.random((N, 1))


@pytest.fixture
def x_i(xyb):
    return Vi(xyb[0])


@pytest.fixture
def y_j(xyb):
    return Vj(xyb[1])


@pytest.fixture
def b_j(xyb):
    return Vj(xyb[2])


# ------------------------------------------------------------------------------------------------ construction


def test_variables_from_arrays(xyb):
    x, y, b = xyb
    assert LazyTensor(x[:, None, :]).formula == "Var(0,3,0)"
    assert LazyTensor(y[None, :, :]).formula == "Var(0,3,1)"
    assert LazyTensor(x, axis=0).formula == "Var(0,3,0)"
    assert LazyTensor(y, axis=1).formula == "Var(0,3,1)"
    assert LazyTensor(x[:1], axis=2).formula == "Var(0,3,2)"
    assert LazyTensor(x[None, None, 0]).formula == "Var(0,3,2)"
    assert LazyTensor(x[0]).formula == "Var(0,3,2)"
    assert LazyTensor(np.array(2.0)).formula == "Var(0,1,2)"
    assert Pm(x[0]).formula == "Var(0,3,2)"


def test_variable_attributes(xyb):
    x, y, b = xyb
    x_i = LazyTensor(x[:, None, :])
    assert (x_i.ni, x_i.nj, x_i.ndim, x_i.axis, x_i.dtype) == (M, None, D, 0, "float64")
    assert x_i.shape == (M, 1, D) and x_i._shape == (M, 1, D)
    b_j = Vj(b.astype(np.float32))
    assert (b_j.ni, b_j.nj, b_j.ndim, b_j.axis, b_j.dtype) == (None, N, 1, 1, "float32")
    assert b_j.shape == (1, N) and b_j._shape == (1, N, 1)
    assert np.shares_memory(x_i.variables[0], x)


def test_numbers_and_lists():
    two = LazyTensor(2)
    assert two.formula == "IntCst(2)" and two.ndim == 1 and two.variables == ()
    assert Vi(3).formula == "IntCst(3)"  # KeOps: a single int is always an integer constant
    assert LazyTensor(-4).formula == "IntCst(-4)"
    p = LazyTensor(2.5)
    assert p.formula == "Var(0,1,2)" and p.dtype is None
    assert p.variables[0].dtype == np.float64 and p.variables[0].tolist() == [2.5]
    q = Pm([1, 2.5, 3])
    assert q.formula == "Var(0,3,2)" and q.ndim == 3
    assert LazyTensor(np.float32(1.5)).formula == "Var(0,1,2)"


def test_symbolic_variables():
    v = Vi(0, 3)
    assert v.formula == "Var(0,3,0)" and v.symbolic_variables == ((0, 3, 0),) and v.ndim == 3
    assert Vj(1, 2).formula == "Var(1,2,1)"
    assert Pm(2, 1).formula == "Var(2,1,2)"
    assert LazyTensor((1, 4, 1)).formula == "Var(1,4,1)"


def test_data_variables_numbered_after_symbolic(x_i):
    f = Vj(1, 3) - x_i + Vi(0, 3)
    assert f.formula == "((Var(1,3,1) - Var(2,3,0)) + Var(0,3,0))"
    assert f.symbolic_variables == ((0, 3, 0), (1, 3, 1))
    assert f._aliases() == ["Var(0,3,0)", "Var(1,3,1)", "Var(2,3,0)"]


def test_same_array_is_one_variable_per_category(xyb):
    x = xyb[0]
    a, b = Vi(x), Vi(x)
    assert (a * b).formula == "(Var(0,3,0) * Var(0,3,0))"
    assert len((a * b).variables) == 1
    diff = Vi(x) - Vj(x)  # a Vj view of the same array is another variable
    assert diff.formula == "(Var(0,3,0) - Var(1,3,1))"
    assert (diff.ni, diff.nj) == (M, M)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda x: LazyTensor(x), ValueError, "axis"),
        (lambda x: LazyTensor(x, axis=3), ValueError, "axis"),
        (lambda x: LazyTensor(x, axis=2), ValueError, r"\(1, D\)"),
        (lambda x: LazyTensor(x[0], axis=0), ValueError, "parameter"),
        (lambda x: LazyTensor(2.0, axis=1), ValueError, "parameter"),
        (lambda x: LazyTensor(x[:, None, :], axis=0), ValueError, "axis must be None"),
        (lambda x: LazyTensor(np.zeros((2, 3, 4))), ValueError, r"\(M, 1, D\)"),
        (lambda x: LazyTensor(np.zeros((2, 2, 3, 4))), ValueError, "batch dims"),
        (lambda x: LazyTensor(np.zeros((2, 1, 3, 4)), axis=0), ValueError, "axis must be None"),
        (lambda x: LazyTensor(np.zeros((3, 0)), axis=0), ValueError, "at least 1"),
        (lambda x: LazyTensor(x.astype(np.int64), axis=0), TypeError, "int64"),
        (lambda x: LazyTensor(x.astype(np.float16), axis=0), TypeError, "float16"),
        (lambda x: LazyTensor([]), ValueError, "non-empty"),
        (lambda x: LazyTensor(["a"]), ValueError, "numbers"),
        (lambda x: LazyTensor("x"), TypeError, "str"),
        (lambda x: LazyTensor((0, 3)), ValueError, "3 ints"),
        (lambda x: LazyTensor((0, 0, 1)), ValueError, "dim >= 1"),
        (lambda x: LazyTensor((0, 3, 4)), ValueError, "cat"),
        (lambda x: LazyTensor((0, 3, 1), axis=0), ValueError, "no axis"),
    ],
)
def test_constructor_errors(xyb, make, error, match):
    with pytest.raises(error, match=match):
        make(xyb[0])


def test_numpy_lazytensor_rejects_torch_tensors():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="torch.Tensor"):
        LazyTensor(torch.ones(3, 2), axis=0)


def test_zero_row_arrays_are_variables():
    x = np.zeros((0, 3))
    x_i = Vi(x)
    assert x_i.ni == 0 and x_i.shape == (0, 1, 3)


# ----------------------------------------------------------------------------------------------- formulas


def test_gaussian_kernel_formula(x_i, y_j, b_j):
    K = (-((x_i - y_j) ** 2).sum(-1)).exp()
    assert K.formula == "Exp(Minus(Sum(Square((Var(0,3,0) - Var(1,3,1))))))"
    assert (K * b_j).formula == "(Exp(Minus(Sum(Square((Var(0,3,0) - Var(1,3,1)))))) * Var(2,1,1))"
    assert (K * b_j).shape == (M, N) and (K * b_j).ndim == 1


@pytest.mark.parametrize(
    "build, formula, ndim",
    [
        (lambda x, y: x + y, "(Var(0,3,0) + Var(1,3,1))", 3),
        (lambda x, y: x - y, "(Var(0,3,0) - Var(1,3,1))", 3),
        (lambda x, y: x * y, "(Var(0,3,0) * Var(1,3,1))", 3),
        (lambda x, y: x / y, "(Var(0,3,0) / Var(1,3,1))", 3),
        (lambda x, y: x | y, "(Var(0,3,0) | Var(1,3,1))", 1),
        (lambda x, y: -x, "Minus(Var(0,3,0))", 3),
        (lambda x, y: abs(x), "Abs(Var(0,3,0))", 3),
        (lambda x, y: x.abs(), "Abs(Var(0,3,0))", 3),
        (lambda x, y: x.exp(), "Exp(Var(0,3,0))", 3),
        (lambda x, y: x.log(), "Log(Var(0,3,0))", 3),
        (lambda x, y: x.sqrt(), "Sqrt(Var(0,3,0))", 3),
        (lambda x, y: x.rsqrt(), "Rsqrt(Var(0,3,0))", 3),
        (lambda x, y: x.sin(), "Sin(Var(0,3,0))", 3),
        (lambda x, y: x.cos(), "Cos(Var(0,3,0))", 3),
        (lambda x, y: x.square(), "Square(Var(0,3,0))", 3),
        (lambda x, y: x.inv(), "Inv(Var(0,3,0))", 3),
        (lambda x, y: x.sqnorm2(), "SqNorm2(Var(0,3,0))", 1),
        (lambda x, y: x.sqdist(y), "SqDist(Var(0,3,0),Var(1,3,1))", 1),
        (lambda x, y: x.sum(), "Sum(Var(0,3,0))", 1),
        (lambda x, y: x.sum(-1), "Sum(Var(0,3,0))", 1),
        (lambda x, y: x.sum(dim=2, keepdim=True), "Sum(Var(0,3,0))", 1),
        (lambda x, y: x**2, "Square(Var(0,3,0))", 3),
        (lambda x, y: x**2.0, "Square(Var(0,3,0))", 3),
        (lambda x, y: x**3, "Pow(Var(0,3,0),3)", 3),
        (lambda x, y: x**-2, "Pow(Var(0,3,0),-2)", 3),
        (lambda x, y: x**0.5, "Sqrt(Var(0,3,0))", 3),
        (lambda x, y: x**-0.5, "Rsqrt(Var(0,3,0))", 3),
        (lambda x, y: x**1.5, "Powf(Var(0,3,0),Var(1,1,2))", 3),
        (lambda x, y: x**y, "Powf(Var(0,3,0),Var(1,3,1))", 3),
        (lambda x, y: x.power(3), "Pow(Var(0,3,0),3)", 3),
        (lambda x, y: LazyTensor.exp(x), "Exp(Var(0,3,0))", 3),
        (lambda x, y: LazyTensor.sqdist(x, y), "SqDist(Var(0,3,0),Var(1,3,1))", 1),
    ],
)
def test_operation_formulas(x_i, y_j, build, formula, ndim):
    res = build(x_i, y_j)
    assert res.formula == formula
    assert res.ndim == ndim


@pytest.mark.parametrize(
    "build, formula",
    [
        (lambda x: x + 0, "Var(0,3,0)"),
        (lambda x: 0 + x, "Var(0,3,0)"),
        (lambda x: x - 0, "Var(0,3,0)"),
        (lambda x: 0 - x, "Minus(Var(0,3,0))"),
        (lambda x: x * 1, "Var(0,3,0)"),
        (lambda x: 1 * x, "Var(0,3,0)"),
        (lambda x: x * -1, "Minus(Var(0,3,0))"),
        (lambda x: -1 * x, "Minus(Var(0,3,0))"),
        (lambda x: x * 0, "Zero(3)"),
        (lambda x: 0 * x, "Zero(3)"),
        (lambda x: x * 0.0, "Zero(3)"),
        (lambda x: 0 / x, "Zero(3)"),
        (lambda x: x / 1, "Var(0,3,0)"),
        (lambda x: 1 / x, "Inv(Var(0,3,0))"),
        (lambda x: x + 2, "(Var(0,3,0) + IntCst(2))"),
        (lambda x: 2 + x, "(IntCst(2) + Var(0,3,0))"),
        (lambda x: x - 2, "(Var(0,3,0) - IntCst(2))"),
        (lambda x: 2 - x, "(IntCst(2) - Var(0,3,0))"),
        (lambda x: 3 * x, "(IntCst(3) * Var(0,3,0))"),
        (lambda x: x * 3, "(Var(0,3,0) * IntCst(3))"),
        (lambda x: x / 2, "(Var(0,3,0) / IntCst(2))"),
        (lambda x: 2 / x, "(IntCst(2) / Var(0,3,0))"),
        (lambda x: x * np.int64(3), "(Var(0,3,0) * IntCst(3))"),
        (lambda x: x * 2.5, "(Var(0,3,0) * Var(1,1,2))"),
        (lambda x: 2.5 - x, "(Var(0,1,2) - Var(1,3,0))"),
        (lambda x: x / 0.5, "(Var(0,3,0) / Var(1,1,2))"),
        (lambda x: x * [1.0, 2.0, 3.0], "(Var(0,3,0) * Var(1,3,2))"),
        (lambda x: x * np.ones(3), "(Var(0,3,0) * Var(1,3,2))"),
        (lambda x: np.ones(3) * x, "(Var(0,3,2) * Var(1,3,0))"),
        (lambda x: np.ones(3) - x, "(Var(0,3,2) - Var(1,3,0))"),
        (lambda x: np.ones(3) | x, "(Var(0,3,2) | Var(1,3,0))"),
    ],
)
def test_number_operands(x_i, build, formula):
    assert build(x_i).formula == formula


def test_number_parameters_take_the_dtype_of_the_data(xyb):
    x32 = Vi(xyb[0].astype(np.float32))
    f = x32 * 2.5 + 1.5
    values = f.variables
    assert [v.dtype for v in values] == [np.float32] * 3
    assert values[1].tolist() == [2.5] and values[2].tolist() == [1.5]


def test_zero_keeps_sizes_and_variables(x_i, y_j):
    z = x_i * 0 + y_j
    assert z.formula == "(Zero(3) + Var(1,3,1))"
    assert z.shape == (M, N, D)
    assert len(z.variables) == 2


def test_dim_one_broadcasting(x_i, b_j):
    assert (x_i * b_j).ndim == 3 and (b_j - x_i).ndim == 3
    assert (x_i * b_j).shape == (M, N, D)
    assert x_i.sqdist(b_j).ndim == 1


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "SqDist", "Powf"])
def test_incompatible_dims(x_i, op):
    z_j = Vj(np.ones((N, 2)))
    build = {
        "+": lambda: x_i + z_j, "-": lambda: x_i - z_j, "*": lambda: x_i * z_j, "/": lambda: x_i / z_j,
        "SqDist": lambda: x_i.sqdist(z_j), "Powf": lambda: x_i**z_j,
    }[op]
    with pytest.raises(ValueError, match=rf"operation {op}.*3 and 2"):
        build()


def test_scalprod_needs_equal_dims(x_i, b_j):
    with pytest.raises(ValueError, match=r"operation \|.*3 and 1.*equal\)"):
        x_i | b_j


def test_mismatched_sizes(xyb):
    x = xyb[0]
    with pytest.raises(ValueError, match="i-rows.*5 and 2"):
        Vi(x) + Vi(x[:2])
    with pytest.raises(ValueError, match="j-rows"):
        Vj(x) + Vj(x[:2])


def test_mixed_dtypes(xyb):
    x = xyb[0]
    with pytest.raises(ValueError, match="dtypes: float64 and float32"):
        Vi(x) + Vj(x.astype(np.float32))


def test_two_dimensional_array_operand_needs_axis(x_i):
    with pytest.raises(ValueError, match="axis"):
        x_i + np.ones((M, D))


def test_conflicting_symbolic_variables():
    with pytest.raises(ValueError, match=r"Var\(0,3,1\).*Var\(0,3,0\)"):
        Vi(0, 3) + Vj(0, 3)


def test_mixing_frameworks():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    a = Vi(np.ones((3, 2)))
    t = pykeops.torch.Vj(torch.ones(4, 2))
    with pytest.raises(TypeError, match="pykeops.numpy LazyTensor with a pykeops.torch"):
        a + t
    with pytest.raises(TypeError, match="pykeops.torch LazyTensor with a pykeops.numpy"):
        t - a
    with pytest.raises(TypeError, match="cannot wrap a numpy.ndarray"):
        t * np.ones((4, 2))


def test_torch_operands_are_reflected():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    t = pykeops.torch.Vi(torch.ones(4, 2, dtype=torch.float64))
    assert (torch.ones(2, dtype=torch.float64) * t).formula == "(Var(0,2,2) * Var(1,2,0))"
    assert (torch.ones(2, dtype=torch.float64) + t).formula == "(Var(0,2,2) + Var(1,2,0))"
    with pytest.raises(ValueError, match="dtypes"):
        torch.ones(2, dtype=torch.float32) * t
    p = (t * 2.5).variables[1]
    assert isinstance(p, torch.Tensor) and p.dtype == torch.float64


def test_str(x_i, y_j):
    f = (Vi(0, 3) - y_j).sqnorm2()
    assert str(f) == (
        "KeOps LazyTensor\n    formula: SqNorm2((Var(0,3,0) - Var(1,3,1)))\n"
        "    symbolic variables: Var(0, 3, 0)\n    shape: (1, 4)"
    )
    assert repr(x_i) == "KeOps LazyTensor\n    formula: Var(0,3,0)\n    shape: (5, 1, 3)"


# --------------------------------------------------------------------------------------------- reductions


def test_reduction_without_call_builds_genred(x_i, y_j, b_j):
    K = (-x_i.sqdist(y_j)).exp() * b_j
    r = K.sum(dim=1, call=False, backend="CPU")
    assert r._genred.formula == "Sum_Reduction((Exp(Minus(SqDist(Var(0,3,0),Var(1,3,1)))) * Var(2,1,1)),0)"
    assert r._genred.aliases == ["Var(0,3,0)", "Var(1,3,1)", "Var(2,1,1)"]
    assert r._call_options == {"backend": "CPU"}
    assert (r.reduction_op, r.axis) == ("Sum", 1)
    assert str(r).endswith("reduction: Sum (axis=1)")
    r0 = K.sum_reduction(axis=0, call=False)
    assert r0._genred.formula.endswith(",1)") and r0.axis == 0
    assert K.sum(axis=0, call=False)._genred.formula == r0._genred.formula


def test_symbolic_reduction_returns_a_callable(y_j):
    r = (Vi(0, 3) - y_j).sqnorm2().sum(dim=1)
    assert callable(r) and r.reduction_op == "Sum"
    assert r._genred.aliases == ["Var(0,3,0)", "Var(1,3,1)"]
    with pytest.raises(ValueError, match=r"one argument per symbolic variable \(Var\(0, 3, 0\)\), got 0"):
        r()


@pytest.mark.parametrize("kwargs, error", [({"dim": 3}, ValueError), ({"axis": -2}, ValueError), ({"axis": 0.0}, TypeError)])
def test_bad_reduction_axis(x_i, kwargs, error):
    with pytest.raises(error, match="axis"):
        x_i.sum(**kwargs)


def test_reduction_needs_an_axis(x_i):
    with pytest.raises(ValueError, match="axis"):
        x_i.sum_reduction()


def test_unknown_reduction_option(x_i):
    with pytest.raises(TypeError, match="backnd"):
        x_i.sum(dim=1, backnd="CPU")


def test_reduction_option_errors_surface_at_construction(x_i):
    with pytest.raises(ValueError, match="kahan_scheme"):
        x_i.sum(dim=1, sum_scheme="kahan")
    with pytest.raises(ValueError, match="sum_scheme='kahan_scheme' only applies to sum-type reductions"):
        x_i.min(dim=1, sum_scheme="kahan_scheme", call=False)


def test_reduced_lazytensors_are_not_operands(x_i, y_j):
    r = (x_i - y_j).sum(dim=1, call=False)
    with pytest.raises(ValueError, match="reduced"):
        r + 1
    with pytest.raises(ValueError, match="reduced"):
        x_i * r
    with pytest.raises(ValueError, match="reduced"):
        r.exp()


def test_only_reduced_lazytensors_are_callable(x_i):
    with pytest.raises(TypeError, match="reduced"):
        x_i()


def test_symbolic_indices_without_gaps(y_j):
    with pytest.raises(ValueError, match=r"without gaps, got indices \[1\]"):
        (Vi(1, 3) - y_j).sum(dim=1)


def test_helpers_metadata():
    assert Vi.__name__ == "Vi" and Vj.__name__ == "Vj" and Pm.__name__ == "Pm"
    assert Vi.__module__ == "pykeops.numpy.lazy_tensor"
    assert LazyTensor.__array_ufunc__ is None


def test_mixed_devices():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    cpu = pykeops.torch.Vi(torch.ones(3, 2, dtype=torch.float64))
    meta = pykeops.torch.Vj(torch.empty(4, 2, dtype=torch.float64, device="meta"))
    with pytest.raises(ValueError, match="devices: cpu and meta"):
        cpu - meta
