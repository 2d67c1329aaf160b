"""Genred option checks (the engine's reduction table decides) and argument validation against a stub signature."""

import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from pykeops.common.genred import bind_arguments, check_arrays, check_backend, check_out

# Signature of Sum_Reduction(Exp(-SqDist(x,y))*b, 0) with x = Vi(3), y = Vj(3), b = Vj(1), p = Pm(2).
SPEC = SimpleNamespace(nargs=4, arg_dims=[3, 3, 1, 2], arg_cats=[0, 1, 1, 2])


def make_args(fw, M=5, N=4, dtype=np.float64):
    rng = np.random.default_rng(1)
    shapes = [(M, 3), (N, 3), (N, 1), (2,)]
    return [fw.array(rng.random(s).astype(dtype)) for s in shapes]


# --------------------------------------------------------------------------------------- Genred options


def test_reduction_string(fw):
    g = fw.module.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)
    assert g.formula == "Sum_Reduction(Exp(-SqDist(x,y))*b,0)"
    assert fw.module.Genred("x", ["x = Vi(3)"]).formula == "Sum_Reduction(x,1)"  # default axis=0
    assert g.aliases == ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"reduction_op": "Avg"}, ValueError, "unknown reduction_op 'Avg'"),
        ({"reduction_op": "ArgKMin"}, ValueError, "needs opt_arg = K"),
        ({"reduction_op": "KMin", "opt_arg": 0}, ValueError, "needs opt_arg = K"),
        ({"reduction_op": "KMin", "opt_arg": 2.0}, TypeError, "needs opt_arg = K"),
        ({"reduction_op": "SumSoftMaxWeight"}, ValueError, "needs formula2"),
        ({"reduction_op": "LogSumExpWeight"}, ValueError, "needs formula2"),
        ({"reduction_op": "Min", "formula2": "x"}, ValueError, "takes no formula2"),
        ({"reduction_op": "Min", "use_double_acc": True}, ValueError, "only applies to sum-type reductions"),
        ({"reduction_op": "ArgMin", "dtype_acc": "float64"}, ValueError, "only applies to sum-type"),
        ({"reduction_op": "KMin", "opt_arg": 2, "sum_scheme": "kahan_scheme"}, ValueError, "only applies to sum-type"),
        ({"axis": 2}, ValueError, "axis must be 0"),
        ({"axis": -1}, ValueError, "axis must be 0"),
        ({"axis": True}, TypeError, "axis must be 0"),
        ({"opt_arg": 3}, ValueError, "opt_arg"),
        ({"formula2": "x"}, ValueError, "formula2"),
        ({"dtype_acc": "int32"}, ValueError, "dtype_acc"),
        ({"use_double_acc": True, "dtype_acc": "float64"}, ValueError, "mutually exclusive"),
        ({"sum_scheme": "block_red"}, ValueError, "sum_scheme"),
    ],
)
def test_option_errors(fw, kwargs, error, match):
    with pytest.raises(error, match=match):
        fw.module.Genred("x", ["x = Vi(3)"], **kwargs)


def test_sum_scheme_is_checked_at_construction_naming_the_reduction_op(fw):
    # (it used to construct, then fail at the call naming Max_SumShiftExpWeight_Reduction)
    with pytest.raises(ValueError, match="sum_scheme='kahan_scheme' is not available for the LogSumExp reduction"):
        fw.module.Genred("SqNorm2(x-y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="LogSumExp", sum_scheme="kahan_scheme")


def test_formula_and_aliases_types(fw):
    with pytest.raises(TypeError, match="formula"):
        fw.module.Genred(3, ["x = Vi(3)"])
    with pytest.raises(TypeError, match="aliases"):
        fw.module.Genred("x", "x = Vi(3)")


@pytest.mark.parametrize("name", ["dtype", "cuda_type"])
def test_deprecated_dtype_arguments_are_ignored_silently(fw, name):
    # pykeops's own examples pass dtype=: accepted without a warning, the dtype is the arguments'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = fw.module.Genred("x", ["x = Vi(3)"], **{name: "float32"})
    x = np.arange(12.0).reshape(4, 3)
    out = fw.numpy(g(fw.array(x)))
    assert out.dtype == np.float64 and np.array_equal(out, x.sum(0, keepdims=True))


def test_gpu_only_flags_are_accepted(fw):
    fw.module.Genred("x", ["x = Vi(3)"], enable_chunks=False, rec_multVar_highdim=True, use_fast_math=False)


def test_pickle_roundtrip(fw):
    g = fw.module.Genred("SqNorm2(x-y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    h = pickle.loads(pickle.dumps(g))
    assert type(h) is type(g) and h.formula == g.formula and h.aliases == g.aliases and h._kernels == {}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"backend": "GPU"}, RuntimeError, "no GPU backend"),
        ({"backend": "GPU_2D_device"}, RuntimeError, "no GPU backend"),
        ({"backend": "TPU"}, ValueError, "unknown backend 'TPU'"),
        ({"ranges": ()}, ValueError, "ranges must be a 6-tuple"),
    ],
)
def test_call_option_errors(fw, kwargs, error, match):
    g = fw.module.Genred("x", ["x = Vi(3)"])
    with pytest.raises(error, match=match):
        g(fw.array(np.ones((2, 3))), **kwargs)


@pytest.mark.parametrize("dtype_acc, match", [("float32", "less precise than the float64"), ("float16", "float16")])
def test_accumulator_dtype_narrower_than_data(fw, dtype_acc, match):
    g = fw.module.Genred("x", ["x = Vi(3)"], dtype_acc=dtype_acc)
    with pytest.raises(ValueError, match=match):
        g(fw.array(np.ones((2, 3))))


def test_reduction_strings_of_every_kind(fw):
    G = fw.module.Genred
    aliases = ["x = Vi(1)", "y = Vj(1)", "b = Vj(2)"]
    assert G("x-y", aliases, reduction_op="KMin", opt_arg=3, axis=1).formula == "KMin_Reduction(x-y,3,0)"
    assert G("x-y", aliases, reduction_op="ArgKMin", opt_arg=2).formula == "ArgKMin_Reduction(x-y,2,1)"
    assert G("x-y", aliases, reduction_op="Min_ArgMin", axis=1).formula == "Min_ArgMin_Reduction(x-y,0)"
    lse = "Max_SumShiftExpWeight_Reduction"
    assert G("x-y", aliases, reduction_op="LogSumExp", axis=1).formula == f"{lse}(x-y,0)"
    assert G("x-y", aliases, reduction_op="LogSumExp", formula2="b", axis=1).formula == f"{lse}(x-y,0,b)"
    assert G("x-y", aliases, reduction_op="LogSumExpWeight", formula2="b").formula == f"{lse}(x-y,1,b)"
    assert G("x-y", aliases, reduction_op="Max_SumShiftExp").formula == f"{lse}(x-y,1)"
    softmax = f"{lse}(x-y,0,Concat(IntCst(1),b))"
    assert G("x-y", aliases, reduction_op="SumSoftMaxWeight", formula2="b", axis=1).formula == softmax
    assert G("x-y", aliases, reduction_op="SoftMax", formula2="b", axis=1).formula == softmax


def test_lazytensor_call_errors_name_the_option(fw):
    x_i = fw.module.Vi(fw.array(np.ones((2, 3))))
    with pytest.raises(RuntimeError, match="no GPU backend"):
        x_i.sum(dim=1, backend="GPU")
    with pytest.raises(ValueError, match="ranges must be a 6-tuple"):
        x_i.sum(dim=0, ranges=((),))


# -------------------------------------------------------------------------------------- argument checks


def test_check_backend_accepts_cpu():
    check_backend("auto")
    check_backend("CPU")


def test_check_arrays(fw):
    tools = fw.module.Genred.tools
    assert check_arrays(make_args(fw), tools) == ("float64", "cpu")
    assert check_arrays(make_args(fw, dtype=np.float32), tools) == ("float32", "cpu")
    assert check_arrays((), tools)[0] in ("float32", "float64")


@pytest.mark.parametrize(
    "dtype, error, match",
    [
        (np.int64, TypeError, "argument 2 has dtype int64"),
        (np.int32, TypeError, "argument 2 has dtype int32"),
        (np.float16, TypeError, "argument 2 has dtype float16"),
        (np.float32, ValueError, "argument 2 has dtype float32 but argument 0 has float64"),
    ],
)
def test_check_arrays_dtype_errors(fw, dtype, error, match):
    args = make_args(fw)
    args[2] = fw.array(np.ones((4, 1), dtype=dtype))
    with pytest.raises(error, match=match):
        check_arrays(args, fw.module.Genred.tools)


def test_check_arrays_rejects_other_types(fw):
    args = make_args(fw)
    args[1] = [[1.0, 2.0, 3.0]]
    with pytest.raises(TypeError, match=f"argument 1 is a list: pykeops.{fw.name} expects"):
        check_arrays(args, fw.module.Genred.tools)


def test_check_arrays_rejects_the_other_framework(fw):
    torch = pytest.importorskip("torch")
    args = make_args(fw)
    args[3] = np.ones(2) if fw.name == "torch" else torch.ones(2, dtype=torch.float64)
    other = "numpy.ndarray" if fw.name == "torch" else "torch.Tensor"
    with pytest.raises(TypeError, match=f"argument 3 is a {other}"):
        check_arrays(args, fw.module.Genred.tools)


def test_check_arrays_rejects_non_cpu_tensors():
    torch = pytest.importorskip("torch")
    from pykeops.torch.tools import TorchTools

    meta = torch.empty(3, 3, device="meta", dtype=torch.float64)
    with pytest.raises(ValueError, match="on device meta: only CPU"):
        check_arrays((meta,), TorchTools)
    with pytest.raises(ValueError, match="argument 1 is on device meta but argument 0 is on cpu"):
        check_arrays((torch.ones(3, 3, dtype=torch.float64), meta), TorchTools)


def test_bind_arguments(fw):
    args = make_args(fw, M=5, N=4)
    arrays, nx, ny, batch, arg_batch = bind_arguments(args, SPEC, fw.module.Genred.tools)
    assert (nx, ny, batch, arg_batch) == (5, 4, (), [(), (), (), ()])
    assert all(a is b or fw.name == "torch" for a, b in zip(arrays, args))  # no copy of contiguous numpy input


def test_bind_arguments_without_i_or_j_variables(fw):
    spec = SimpleNamespace(nargs=2, arg_dims=[3, 2], arg_cats=[1, 2])
    bound = bind_arguments([fw.array(np.ones((7, 3))), fw.array(np.ones(2))], spec, fw.module.Genred.tools)
    assert (bound.nx, bound.ny) == (1, 7)
    spec = SimpleNamespace(nargs=1, arg_dims=[3], arg_cats=[0])
    assert bind_arguments([fw.array(np.ones((6, 3)))], spec, fw.module.Genred.tools)[1:3] == (6, 1)


def test_bind_arguments_broadcasts_batch_dimensions(fw):
    args = make_args(fw)
    args[0] = fw.array(np.ones((2, 1, 5, 3)))  # batch (2, 1)
    args[1] = fw.array(np.ones((3, 4, 3)))  # batch (3,)
    args[3] = fw.array(np.ones((1, 1, 2)))  # batch (1, 1)
    bound = bind_arguments(args, SPEC, fw.module.Genred.tools)
    assert bound.batch == (2, 3) and (bound.nx, bound.ny) == (5, 4)
    assert bound.arg_batch == [(2, 1), (1, 3), (1, 1), (1, 1)]
    assert [tuple(a.shape) for a in bound.arrays] == [(2, 1, 5, 3), (1, 3, 4, 3), (1, 1, 4, 1), (1, 1, 2)]


def test_bind_arguments_batch_mismatch(fw):
    args = make_args(fw)
    args[0] = fw.array(np.ones((2, 5, 3)))
    args[3] = fw.array(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"argument 3 \(Pm variable of dim 2\) has batch dimensions \(3,\) that do not broadcast"):
        bind_arguments(args, SPEC, fw.module.Genred.tools)


def test_bind_arguments_copies_non_contiguous_input(fw):
    args = make_args(fw)
    wide = fw.array(np.arange(30.0).reshape(5, 6))
    args[0] = wide[:, ::2]
    arrays = bind_arguments(args, SPEC, fw.module.Genred.tools).arrays
    assert fw.numpy(arrays[0]).flags.c_contiguous
    np.testing.assert_array_equal(fw.numpy(arrays[0]), np.arange(30.0).reshape(5, 6)[:, ::2])


@pytest.mark.parametrize(
    "position, shape, error, match",
    [
        (0, (5, 2), ValueError, r"argument 0 \(Vi variable of dim 3\) should have shape \(M, 3\), got \(5, 2\)"),
        (0, (15,), ValueError, r"argument 0 \(Vi variable of dim 3\) should have shape \(M, 3\), got \(15,\)"),
        (1, (4, 1), ValueError, r"argument 1 \(Vj variable of dim 3\) should have shape \(N, 3\)"),
        (2, (4,), ValueError, r"argument 2 \(Vj variable of dim 1\) should have shape \(N, 1\), got \(4,\)"),
        (2, (3, 1), ValueError, r"argument 2 \(Vj variable of dim 1\) has 3 rows but argument 1 has 4"),
        (3, (3,), ValueError, r"argument 3 \(Pm variable of dim 2\) should have shape \(2,\), got \(3,\)"),
        (0, (2, 5, 2), ValueError, r"should have shape \(M, 3\), got \(2, 5, 2\) \(batch dimensions may precede"),
    ],
)
def test_bind_arguments_shape_errors(fw, position, shape, error, match):
    args = make_args(fw)
    args[position] = fw.array(np.ones(shape))
    with pytest.raises(error, match=match):
        bind_arguments(args, SPEC, fw.module.Genred.tools)


def test_bind_arguments_counts_arguments(fw):
    with pytest.raises(ValueError, match="the formula has 4 variables but 3 arguments were given"):
        bind_arguments(make_args(fw)[:3], SPEC, fw.module.Genred.tools)


def test_check_out(fw):
    tools = fw.module.Genred.tools
    good = fw.array(np.zeros((5, 2)))
    check_out(good, (5, 2), "float64", "cpu", tools)
    with pytest.raises(ValueError, match=r"out should have shape \(5, 2\), got \(2, 5\)"):
        check_out(fw.array(np.zeros((2, 5))), (5, 2), "float64", "cpu", tools)
    with pytest.raises(ValueError, match="out has dtype float32 but the arguments have float64"):
        check_out(fw.array(np.zeros((5, 2), dtype=np.float32)), (5, 2), "float64", "cpu", tools)
    with pytest.raises(ValueError, match="C-contiguous"):
        check_out(fw.array(np.zeros((2, 5))).T, (5, 2), "float64", "cpu", tools)
    with pytest.raises(TypeError, match="out is a list"):
        check_out([[0.0] * 2] * 5, (5, 2), "float64", "cpu", tools)


def test_check_out_rejects_read_only_numpy_arrays():
    from pykeops.numpy.tools import NumpyTools

    out = np.zeros((5, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        check_out(out, (5, 2), "float64", "cpu", NumpyTools)


def test_check_out_rejects_tensors_requiring_grad():
    torch = pytest.importorskip("torch")
    from pykeops.torch.tools import TorchTools

    out = torch.zeros(5, 2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="out requires grad"):
        check_out(out, (5, 2), "float64", "cpu", TorchTools)
    with torch.no_grad():
        check_out(out, (5, 2), "float64", "cpu", TorchTools)


def test_out_is_refused_with_requires_grad():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    x = torch.ones(3, 3, dtype=torch.float64, requires_grad=True)
    g = pykeops.torch.Genred("SqNorm2(x)", ["x = Vi(3)"], axis=1)
    with pytest.raises(ValueError, match="out= cannot be used when an argument requires grad"):
        g(x, out=torch.empty(3, 1, dtype=torch.float64))
