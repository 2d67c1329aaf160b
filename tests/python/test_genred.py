"""Genred and LazyTensor reductions on the real engine: aliases, error paths, edge sizes, out=, caching."""

import pickle

import numpy as np
import pytest

import pykeops.common.genred

pytestmark = pytest.mark.engine

GAUSS = "Exp(-SqDist(x,y))*b"


def gaussian_data(M=6, N=5, E=2, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random(s).astype(dtype) for s in [(M, 3), (N, 3), (N, E)]]


def gaussian_reference(x, y, b):
    x, y, b = (np.asarray(a, dtype=np.float64) for a in (x, y, b))
    return np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b


def assert_matches(got, ref, rtol):
    """assert_allclose with equal shapes (assert_allclose alone would broadcast a (1, D) result)."""
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=rtol)


def run_gaussian(fw, x, y, b, **call_kwargs):
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", f"b = Vj({b.shape[1]})"], axis=1)
    return g(*(fw.array(a) for a in (x, y, b)), **call_kwargs)


# ----------------------------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    "aliases, order",
    [
        (["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], (0, 1, 2)),
        (["b = Vj(2)", "x = Vi(3)", "y = Vj(3)"], (2, 0, 1)),
        (["y = Vj(3)", "b = Vj(2)", "x = Vi(3)"], (1, 2, 0)),
        (["y = Vj(1,3)", "b = Vj(2,2)", "x = Vi(0,3)"], (0, 1, 2)),  # explicit positions
        (["x=Vi(0,3)", "y=Vj(1,3)", "b=Var(2,2,1)"], (0, 1, 2)),
        (["Vi(0,3)", "Vj(1,3)", "Vj(2,2)"], None),
    ],
)
def test_alias_orders(fw, aliases, order):
    data = gaussian_data()
    formula = GAUSS if order is not None else "Exp(-SqDist(Var(0,3,0),Var(1,3,1)))*Var(2,2,1)"
    args = [fw.array(data[k]) for k in (order or (0, 1, 2))]
    result = fw.module.Genred(formula, aliases, axis=1)(*args)
    assert_matches(fw.numpy(result), gaussian_reference(*data), rtol=1e-12)


def test_parameter_alias(fw):
    x, y, _ = gaussian_data()
    g = fw.module.Genred("Exp(-p * SqDist(x,y))", ["p = Pm(1)", "x = Vi(3)", "y = Vj(3)"], axis=0)
    result = g(fw.array(np.array([0.5])), fw.array(x), fw.array(y))
    ref = np.exp(-0.5 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)).sum(0)[:, None]
    assert_matches(fw.numpy(result), ref, rtol=1e-12)


# -------------------------------------------------------------------------------------------- error paths


def test_wrong_shape_names_the_argument(fw):
    x, y, b = gaussian_data()
    with pytest.raises(ValueError, match=r"argument 1 \(Vj variable of dim 3\) should have shape \(N, 3\), got \(5, 2\)"):
        run_gaussian(fw, x, y[:, :2], b)
    with pytest.raises(ValueError, match=r"argument 2 \(Vj variable of dim 2\) has 4 rows but argument 1 has 5"):
        run_gaussian(fw, x, y, b[:4])


def test_wrong_number_of_arguments(fw):
    x, y, b = gaussian_data()
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    with pytest.raises(ValueError, match="3 variables but 2 arguments"):
        g(fw.array(x), fw.array(y))
    with pytest.raises(ValueError, match="3 variables but 4 arguments"):
        g(fw.array(x), fw.array(y), fw.array(b), fw.array(b))


def test_mixed_dtypes(fw):
    x, y, b = gaussian_data()
    with pytest.raises(ValueError, match="argument 1 has dtype float32 but argument 0 has float64"):
        run_gaussian(fw, x, y.astype(np.float32), b)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16])
def test_unsupported_dtypes(fw, dtype):
    x, y, b = gaussian_data()
    with pytest.raises(TypeError, match=f"argument 0 has dtype {np.dtype(dtype).name}"):
        run_gaussian(fw, x.astype(dtype), y.astype(dtype), b.astype(dtype))


def test_mixed_frameworks(fw):
    torch = pytest.importorskip("torch")
    x, y, b = gaussian_data()
    other = np.asarray if fw.name == "torch" else torch.from_numpy
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    with pytest.raises(TypeError, match="argument 2 is a"):
        g(fw.array(x), fw.array(y), other(b))


def test_gpu_backend_request(fw):
    with pytest.raises(RuntimeError, match="no GPU backend"):
        run_gaussian(fw, *gaussian_data(), backend="GPU_1D")


def test_malformed_formula_reports_a_column(fw):
    g = fw.module.Genred("Exp(-SqDist(x,y)*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    with pytest.raises(ValueError, match="column"):
        g(*(fw.array(a) for a in gaussian_data()))


def test_unknown_variable(fw):
    g = fw.module.Genred("Exp(-SqDist(x,z))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    with pytest.raises(ValueError, match="z"):
        g(*(fw.array(a) for a in gaussian_data()))


def test_formula_dimension_error(fw):
    g = fw.module.Genred("x + y", ["x = Vi(3)", "y = Vj(2)"], axis=1)
    with pytest.raises(ValueError, match="3 and 2"):
        g(fw.array(np.ones((2, 3))), fw.array(np.ones((2, 2))))


def test_unknown_reduction(fw):
    with pytest.raises(ValueError, match="unknown reduction_op 'KMax'"):
        fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="KMax", opt_arg=3)


def test_requires_grad_builds_a_graph_only_when_asked():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    x, y, b = (torch.from_numpy(a) for a in gaussian_data())
    x.requires_grad_(True)
    g = pykeops.torch.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    assert g(x, y, b).requires_grad
    with torch.no_grad():
        result = g(x, y, b)
    assert not result.requires_grad
    assert_matches(result.numpy(), gaussian_reference(x.detach(), y, b), rtol=1e-12)


# ------------------------------------------------------------------------------------------- edge inputs


def test_non_contiguous_inputs(fw):
    x, y, b = gaussian_data()
    wide_x = np.repeat(x, 2, axis=1)[:, ::2]  # strided columns
    y_t = np.ascontiguousarray(y.T).T  # Fortran order
    b_rows = np.repeat(b, 3, axis=0)[::3]  # strided rows
    assert not (wide_x.flags.c_contiguous or y_t.flags.c_contiguous or b_rows.flags.c_contiguous)
    args = (fw.array(wide_x), fw.array(y_t), fw.array(b_rows))
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    assert_matches(fw.numpy(g(*args)), gaussian_reference(x, y, b), rtol=1e-12)
    lt = fw.module
    via_lazy = ((-lt.Vi(args[0]).sqdist(lt.Vj(args[1]))).exp() * lt.Vj(args[2])).sum(dim=1)
    assert_matches(fw.numpy(via_lazy), gaussian_reference(x, y, b), rtol=1e-12)


@pytest.mark.parametrize("M, N", [(0, 5), (6, 0), (0, 0)])
@pytest.mark.parametrize("axis", [0, 1])
def test_empty_sizes(fw, M, N, axis):
    x, y, _ = gaussian_data(M, N)
    g = fw.module.Genred("Exp(-SqDist(x,y))*x", ["x = Vi(3)", "y = Vj(3)"], axis=axis)
    result = fw.numpy(g(fw.array(x), fw.array(y)))
    assert result.shape == ((M if axis == 1 else N), 3)
    np.testing.assert_array_equal(result, 0.0)  # a sum over an empty set is 0


def test_empty_sizes_through_lazytensor(fw):
    x, y, _ = gaussian_data(4, 0)
    K = (-fw.module.Vi(fw.array(x)).sqdist(fw.module.Vj(fw.array(y)))).exp()
    assert fw.numpy(K.sum(dim=1)).tolist() == [[0.0]] * 4
    assert fw.numpy(K.sum(dim=0)).shape == (0, 1)


def test_nan_propagates(fw):
    x, y, b = gaussian_data()
    x[2, 1] = np.nan
    result = fw.numpy(run_gaussian(fw, x, y, b))
    assert np.isnan(result[2]).all()
    assert_matches(np.delete(result, 2, 0), np.delete(gaussian_reference(x, y, b), 2, 0), rtol=1e-12)


def test_no_i_variable_gives_one_row(fw):
    _, y, b = gaussian_data()
    result = fw.module.Genred("b", ["b = Vj(2)"], axis=1)(fw.array(b))
    assert_matches(fw.numpy(result), b.sum(0, keepdims=True), rtol=1e-12)


def test_no_argument_at_all(fw):
    result = fw.module.Genred("IntCst(3)", [], axis=1)()
    assert fw.numpy(result).tolist() == [[3.0]]


# -------------------------------------------------------------------------------------------------- out=


def test_out_is_filled_and_returned(fw):
    x, y, b = gaussian_data()
    out = fw.array(np.full((6, 2), 7.0))
    result = run_gaussian(fw, x, y, b, out=out)
    assert result is out
    assert_matches(fw.numpy(out), gaussian_reference(x, y, b), rtol=1e-12)


def test_out_via_lazytensor(fw):
    x, y, b = gaussian_data()
    lt = fw.module
    out = fw.array(np.zeros((6, 2)))
    K = (-lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(y)))).exp() * lt.Vj(fw.array(b))
    assert K.sum(dim=1, out=out) is out
    assert_matches(fw.numpy(out), gaussian_reference(x, y, b), rtol=1e-12)


@pytest.mark.parametrize(
    "out, error, match",
    [
        (np.zeros((5, 2)), ValueError, "shape"),
        (np.zeros((6, 2), dtype=np.float32), ValueError, "dtype float32"),
        (np.zeros((2, 6)).T, ValueError, "C-contiguous"),
    ],
)
def test_bad_out(fw, out, error, match):
    with pytest.raises(error, match=match):
        run_gaussian(fw, *gaussian_data(), out=fw.array(out))


def test_out_of_the_other_framework(fw):
    torch = pytest.importorskip("torch")
    out = np.zeros((6, 2)) if fw.name == "torch" else torch.zeros(6, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="out is a"):
        run_gaussian(fw, *gaussian_data(), out=out)


# ------------------------------------------------------------------------------------- caching, pickling


def test_kernel_is_cached_on_the_object(fw, monkeypatch):
    x, y, b = (fw.array(a) for a in gaussian_data())
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    first = g(x, y, b)
    kernel = g._kernels["float64"]
    assert kernel.nargs == 3 and kernel.arg_dims == [3, 3, 2] and kernel.arg_cats == [0, 1, 1]

    def no_engine():
        raise AssertionError("the engine was asked again")

    monkeypatch.setattr(pykeops.common.genred, "load_engine", no_engine)
    np.testing.assert_array_equal(fw.numpy(g(x, y, b)), fw.numpy(first))


def test_pickled_genred_runs(fw):
    x, y, b = gaussian_data()
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    g(*(fw.array(a) for a in (x, y, b)))
    h = pickle.loads(pickle.dumps(g))
    assert_matches(fw.numpy(h(*(fw.array(a) for a in (x, y, b)))), gaussian_reference(x, y, b), rtol=1e-12)


def test_same_genred_both_dtypes(fw):
    x, y, b = gaussian_data()
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    r64 = g(*(fw.array(a) for a in (x, y, b)))
    r32 = g(*(fw.array(a.astype(np.float32)) for a in (x, y, b)))
    assert fw.numpy(r32).dtype == np.float32 and sorted(g._kernels) == ["float32", "float64"]
    assert_matches(fw.numpy(r32), fw.numpy(r64), rtol=1e-5)


def test_accumulator_equal_to_data_dtype(fw):
    x, y, b = gaussian_data(dtype=np.float32)
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1, dtype_acc="float32")
    assert_matches(fw.numpy(g(*(fw.array(a) for a in (x, y, b)))), gaussian_reference(x, y, b), rtol=1e-5)
    x, y, b = gaussian_data()
    g = fw.module.Genred(GAUSS, ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1, use_double_acc=True)
    assert_matches(fw.numpy(g(*(fw.array(a) for a in (x, y, b)))), gaussian_reference(x, y, b), rtol=1e-12)


# --------------------------------------------------------------------------------- LazyTensor reductions


def test_callable_reduction_with_symbolic_variables(fw):
    x, y, b = gaussian_data()
    lt = fw.module
    K = (-lt.Vi(0, 3).sqdist(lt.Vj(1, 3))).exp() * lt.Vj(fw.array(b))
    reduction = K.sum(dim=1)
    assert callable(reduction)
    assert_matches(fw.numpy(reduction(fw.array(x), fw.array(y))), gaussian_reference(x, y, b), rtol=1e-12)


def test_call_false_defers_the_computation(fw):
    x, y, b = gaussian_data()
    lt = fw.module
    K = (-lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(y)))).exp() * lt.Vj(fw.array(b))
    reduction = K.sum(dim=1, call=False)
    assert_matches(fw.numpy(reduction()), gaussian_reference(x, y, b), rtol=1e-12)
    assert_matches(fw.numpy(reduction(backend="CPU")), gaussian_reference(x, y, b), rtol=1e-12)


def test_number_parameters_follow_the_data_dtype(fw):
    x, y, _ = gaussian_data(dtype=np.float32)
    lt = fw.module
    result = (lt.Vi(fw.array(x)) * 2.5 - lt.Vj(fw.array(y))).sum(dim=1)
    assert fw.numpy(result).dtype == np.float32
    assert_matches(fw.numpy(result), (2.5 * x[:, None, :] - y[None]).sum(1), rtol=1e-5)


def test_symbolic_parameters_only_take_the_dtype_of_the_arguments(fw):
    x, y, _ = gaussian_data(dtype=np.float32)
    lt = fw.module
    reduction = (lt.Vi(0, 3) * 0.5 + lt.Vj(1, 3)).sum(dim=0)
    result = reduction(fw.array(x), fw.array(y))
    assert fw.numpy(result).dtype == np.float32
    assert_matches(fw.numpy(result), (0.5 * x[:, None, :] + y[None]).sum(0), rtol=1e-5)


def test_constant_only_lazytensor(fw):
    result = fw.module.LazyTensor(2.5).sum(dim=1)
    assert fw.numpy(result).tolist() == [[2.5]]


def test_lazytensor_shape_errors_at_call(fw):
    reduction = (fw.module.Vi(0, 3) - fw.module.Vj(1, 3)).sum(dim=1)
    with pytest.raises(ValueError, match=r"argument 1 \(Vj variable of dim 3\) should have shape \(N, 3\), got \(4, 2\)"):
        reduction(fw.array(np.ones((5, 3))), fw.array(np.ones((4, 2))))


def test_symbolic_differentiation_in_formulas(fw):
    # Divergence(x, x) is the trace of the identity's Jacobian: the dimension of x.
    g = fw.module.Genred("Divergence(x, x)", ["x = Vi(3)"], axis=1)
    assert fw.numpy(g(fw.array(np.ones((3, 3))))).tolist() == [[3.0]] * 3


def test_float_powers(fw):
    x = np.random.default_rng(3).uniform(0.5, 2.0, (4, 2))
    out = (fw.module.Vi(fw.array(x)) ** 1.5).sum(dim=1)
    np.testing.assert_allclose(fw.numpy(out), x**1.5, rtol=1e-12)
