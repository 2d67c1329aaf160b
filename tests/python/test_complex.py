"""ComplexLazyTensor (numpy and torch): construction, each complex operation inside Sum reductions over i and over j
against dense NumPy complex128 arithmetic, emitted formulas, complex outputs and error paths."""

import re

import numpy as np
import pytest

from pykeops import _engine

pytestmark = pytest.mark.engine

M, N = 5, 9

# name -> (category, complex dim or None for real inputs of dim 2 or 1). Parts are exact in float32.
INPUTS = {
    "z": (0, 2),  # complex, indexed by i
    "w": (1, 2),  # complex, indexed by j
    "c": (1, 1),  # complex scalar, indexed by j
    "q": (2, 2),  # complex parameter
    "x": (0, "real2"),  # real, dim 2
    "r": (1, "real1"),  # real scalar
}


def make_inputs():
    rng = np.random.default_rng(11)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    data = {}
    for name, (cat, dim) in INPUTS.items():
        rows = (M, N, None)[cat]
        if dim == "real2":
            data[name] = f32(rng.uniform(0.5, 1.5, (rows, 2)))
        elif dim == "real1":
            data[name] = f32(rng.uniform(0.5, 1.5, (rows, 1)))
        else:
            shape = (dim,) if rows is None else (rows, dim)
            data[name] = f32(rng.uniform(-1.5, 1.5, shape)) + 1j * f32(rng.uniform(-1.5, 1.5, shape))
    return data


DATA = make_inputs()


def dense_input(name):
    a, cat = DATA[name], INPUTS[name][0]
    return a[:, None, :] if cat == 0 else a[None, :, :] if cat == 1 else a[None, None, :]


# (id, builder, dense reference, expected formula with input names or None); LT = the framework's LazyTensor.
CASES = [
    ("add", lambda z, w: z + w, lambda z, w: z + w, "ComplexAdd(z,w)"),
    ("subtract", lambda z, w: z - w, lambda z, w: z - w, "ComplexSubtract(z,w)"),
    ("mult", lambda z, w: z * w, lambda z, w: z * w, "ComplexMult(z,w)"),
    ("divide", lambda z, w: z / w, lambda z, w: z / w, "ComplexDivide(z,w)"),
    ("scalar-broadcast", lambda z, c: z * c - c, lambda z, c: z * c - c, "ComplexSubtract(ComplexMult(z,c),c)"),
    ("param", lambda z, w, q: (z - q) / w, lambda z, w, q: (z - q) / w, "ComplexDivide(ComplexSubtract(z,q),w)"),
    ("real-promoted", lambda z, w, x: (z + x) * w, lambda z, w, x: (z + x) * w,
     "ComplexMult(ComplexAdd(z,Real2Complex(x)),w)"),
    ("real-left", lambda w, x: x + w, lambda w, x: x + w, "ComplexAdd(Real2Complex(x),w)"),
    ("real-left-sub", lambda w, x: x - w, lambda w, x: x - w, "ComplexSubtract(Real2Complex(x),w)"),
    ("real-left-mult", lambda w, x: x * w, lambda w, x: x * w, "ComplexMult(Real2Complex(x),w)"),
    ("real-left-div", lambda w, x: x / w, lambda w, x: x / w, "ComplexDivide(Real2Complex(x),w)"),
    ("real-divisor", lambda z, w, x: z / x + w, lambda z, w, x: z / x + w, "ComplexAdd(ComplexDivide(z,Real2Complex(x)),w)"),
    ("realscal", lambda z, r: z * r, lambda z, r: z * r, "ComplexRealScal(z,r)"),
    ("realscal-left", lambda z, r: r * z, lambda z, r: r * z, "ComplexRealScal(r,z)"),
    ("realscal-div", lambda z, r: z / r, lambda z, r: z / r, "ComplexDivide(z,Real2Complex(r))"),
    ("float-scalar", lambda z, w: z * 2.5 + w, lambda z, w: z * 2.5 + w, "ComplexAdd(ComplexRealScal(z,[2.5]),w)"),
    ("int-scalar", lambda z, w: 2 * z - w, lambda z, w: 2 * z - w, "ComplexSubtract(ComplexRealScal(IntCst(2),z),w)"),
    ("float-add", lambda z, w: z * w + 1.5, lambda z, w: z * w + 1.5, "ComplexAdd(ComplexMult(z,w),Real2Complex([1.5]))"),
    ("complex-scalar", lambda z, w: z * (1 + 2j) + w, lambda z, w: z * (1 + 2j) + w,
     "ComplexAdd(ComplexMult(z,[1,2]),w)"),
    ("complex-scalar-left", lambda z, w: 1j * z - (0.5 - 1j) * w, lambda z, w: 1j * z - (0.5 - 1j) * w,
     "ComplexSubtract(ComplexMult([0,1],z),ComplexMult([0.5,-1],w))"),
    ("complex-on-real", lambda x, w: (x * 1j) * w, lambda x, w: (x * 1j) * w, "ComplexMult(ComplexMult(Real2Complex(x),[0,1]),w)"),
    ("complex-list", lambda z, w: (z + [1 + 1j, 2]) * w, lambda z, w: (z + np.array([1 + 1j, 2])) * w,
     "ComplexMult(ComplexAdd(z,[1,1,2,0]),w)"),
    ("inverse", lambda z, w: 1 / z + w, lambda z, w: 1 / z + w, "ComplexAdd(ComplexDivide(Real2Complex(IntCst(1)),z),w)"),
    ("times-0", lambda z, w: z * 0 + w, lambda z, w: 0 * z + w, "ComplexAdd(Zero(4),w)"),
    ("times-1-minus-1", lambda z, w: z * 1 + w * -1, lambda z, w: z - w, "ComplexAdd(z,Minus(w))"),
    ("zero-minus", lambda z, w: 0 - z * w + 0, lambda z, w: -(z * w), "Minus(ComplexMult(z,w))"),
    ("real", lambda z, w: z.real * w.imag, lambda z, w: z.real * w.imag, "(ComplexReal(z) * ComplexImag(w))"),
    ("abs", lambda z, w: abs(z - w), lambda z, w: np.abs(z - w), "ComplexAbs(ComplexSubtract(z,w))"),
    ("abs-method", lambda z, r: z.abs() * r, lambda z, r: np.abs(z) * r, "(ComplexAbs(z) * r)"),
    ("angle", lambda z, w: (z * w).angle(), lambda z, w: np.angle(z * w), "ComplexAngle(ComplexMult(z,w))"),
    ("conj", lambda z, w: z.conj() * w, lambda z, w: np.conj(z) * w, "ComplexMult(Conj(z),w)"),
    ("exp", lambda z, w: (z - w).exp(), lambda z, w: np.exp(z - w), "ComplexExp(ComplexSubtract(z,w))"),
    ("sum", lambda z, w: (z * w).sum(-1), lambda z, w: (z * w).sum(-1, keepdims=True), "ComplexSum(ComplexMult(z,w))"),
    ("sum-broadcast", lambda z, w: z * (z * w).sum(), lambda z, w: z * (z * w).sum(-1, keepdims=True),
     "ComplexMult(z,ComplexSum(ComplexMult(z,w)))"),
    ("real2complex", lambda x, w: x.real2complex() * w, lambda x, w: x * w, "ComplexMult(Real2Complex(x),w)"),
    ("imag2complex", lambda x, w: x.imag2complex() + w, lambda x, w: 1j * x + w, "ComplexAdd(Imag2Complex(x),w)"),
    ("exp1j", lambda x, w: x.exp1j() * w, lambda x, w: np.exp(1j * x) * w, "ComplexMult(ComplexExp1j(x),w)"),
    ("exp1j-real-result", lambda x, r: (x * r).exp1j().imag, lambda x, r: np.sin(x * r), "ComplexImag(ComplexExp1j((x * r)))"),
    ("concat", lambda z, c: z.concat(c), lambda z, c: np.concatenate([np.broadcast_to(z, (M, N, 2)),
                                                                        np.broadcast_to(c, (M, N, 1))], -1),
     "Concat(z,c)"),
    ("concat-real", lambda w, x: w.concat(x), lambda w, x: np.concatenate([np.broadcast_to(w, (M, N, 2)),
                                                                         np.broadcast_to(x + 0j, (M, N, 2))], -1),
     "Concat(w,Real2Complex(x))"),
    ("neg", lambda z, w: -(z * w), lambda z, w: -(z * w), "Minus(ComplexMult(z,w))"),
]
IDS = [c[0] for c in CASES]
assert len(set(IDS)) == len(IDS)


def arg_names(fn):
    return list(fn.__code__.co_varnames[: fn.__code__.co_argcount])


def fw_arrays(fw, dtype):
    cdtype = np.complex64 if dtype == np.float32 else np.complex128
    return {n: fw.array(np.ascontiguousarray(a.astype(cdtype if np.iscomplexobj(a) else dtype))) for n, a in DATA.items()}


def build(fw, builder, dtype):
    arrays = fw_arrays(fw, dtype)
    helpers = (fw.module.Vi, fw.module.Vj, fw.module.Pm)
    kwargs = {n: fw.module.LazyTensor if n == "LT" else helpers[INPUTS[n][0]](arrays[n]) for n in arg_names(builder)}
    return builder(**kwargs), arrays


def named_formula(lt, arrays):
    """The formula with the input names (complex inputs are held as real views of the same memory); parameters
    made from numbers print as [interleaved values]."""
    values = lt.variables

    def same_memory(a, b):
        return np.shares_memory(a, b) if lt.tools.name == "numpy" else a.data_ptr() == b.data_ptr()

    def name(match):
        value = values[int(match.group(1))]
        for n, a in arrays.items():
            if same_memory(value, a):
                return n
        return "[" + ",".join(f"{v:g}" for v in np.asarray(value, dtype=np.float64).tolist()) + "]"

    return re.sub(r"Var\((\d+),\d+,\d\)", name, lt.formula)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_numpy_complex(fw, case, dtype, axis):
    lt, arrays = build(fw, case[1], dtype)
    assert (lt.ni, lt.nj) == (M, N)
    ref = case[2]
    full = ref(**{n: dense_input(n) for n in arg_names(ref)})
    full = np.broadcast_to(full, (M, N, full.shape[-1]))
    result = lt.sum(dim=axis)
    got = fw.numpy(result)
    expect = full.sum(axis=axis)
    if np.iscomplexobj(full):
        assert lt.is_complex and lt.dtype == ("complex64" if dtype == np.float32 else "complex128")
        assert got.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
        assert lt.shape == (M, N, full.shape[-1]) if full.shape[-1] > 1 else lt.shape == (M, N)
    else:
        assert not lt.is_complex and got.dtype == dtype
    assert got.shape == expect.shape
    rtol = 3e-5 if dtype == np.float32 else 1e-12
    atol = rtol * np.abs(full).max() * full.shape[axis]
    np.testing.assert_allclose(got, expect, rtol=rtol, atol=atol, err_msg=lt.formula)


@pytest.mark.parametrize("case", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_formula(fw, case):
    lt, arrays = build(fw, case[1], np.float64)
    assert named_formula(lt, arrays) == case[3]
    printed = _engine.parse(lt.formula)
    assert _engine.parse(printed) == printed
    assert _engine.formula_dim(lt.formula) == lt.ndim


# ---------------------------------------------------------------------------------------------- construction


def test_constructor_dispatch(fw):
    LT, C = fw.module.LazyTensor, fw.module.ComplexLazyTensor
    z = fw.array(DATA["z"].astype(np.complex64))
    zi = LT(z[:, None, :])
    assert type(zi) is C and zi.is_complex and not LT(fw.array(DATA["x"]), axis=0).is_complex
    assert zi.formula == "Var(0,4,0)" and zi.ndim == 4 and zi.axis == 0 and zi.ni == M
    assert zi.dtype == "complex64" and zi.shape == (M, 1, 2)
    assert type(LT(1 + 2j)) is C and LT(1 + 2j).formula == "Var(0,2,2)" and LT(1 + 2j).shape == (1, 1)
    assert type(LT([1.0, 2j])) is C and LT([1.0, 2j]).ndim == 4
    assert type(fw.module.Vj(fw.array(DATA["w"]))) is C
    assert type(fw.module.Pm(fw.array(DATA["q"]))) is C
    promoted = LT(fw.array(DATA["x"]), axis=0, is_complex=True)
    assert type(promoted) is C and promoted.ndim == 4 and promoted.dtype == "complex128"
    assert not isinstance(zi, LT) and C.__name__ == "ComplexLazyTensor"
    assert C.__module__ == f"pykeops.{fw.name}"


def test_data_is_viewed_not_copied():
    from pykeops.numpy import Vi

    z = DATA["z"].copy()
    zi = Vi(z)
    assert np.shares_memory(zi.variables[0], z) and zi.variables[0].shape == (M, 4)
    np.testing.assert_array_equal(zi.variables[0][:, 0::2], z.real)
    np.testing.assert_array_equal(zi.variables[0][:, 1::2], z.imag)


def test_non_contiguous_complex_input(fw):
    full = DATA["w"]
    big = fw.array(np.zeros((N, 4), dtype=np.complex128))
    big[:, ::2] = fw.array(full)
    w_j = fw.module.Vj(big[:, ::2])  # a strided view: copied on the way in
    z_i = fw.module.Vi(fw.array(DATA["z"]))
    got = fw.numpy((z_i * w_j).sum(dim=1))
    np.testing.assert_allclose(got, (DATA["z"][:, None, :] * full[None]).sum(1), rtol=1e-12)


def test_conjugate_torch_tensor():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    w = torch.from_numpy(DATA["w"])
    got = (pykeops.torch.Vi(torch.from_numpy(DATA["z"])) * pykeops.torch.Vj(w.conj())).sum(dim=1)
    np.testing.assert_allclose(got.numpy(), (DATA["z"][:, None, :] * np.conj(DATA["w"])[None]).sum(1), rtol=1e-12)


def test_symbolic_complex_variable_and_callable_reduction(fw):
    C = fw.module.ComplexLazyTensor
    w_j = fw.module.Vj(fw.array(DATA["w"]))
    z_sym = C((0, 2, 0))
    assert z_sym.formula == "Var(0,4,0)" and z_sym.shape == (1, 1, 2)
    red = (z_sym * w_j).sum(dim=1)
    assert callable(red)
    got = fw.numpy(red(fw.array(DATA["z"])))
    np.testing.assert_allclose(got, (DATA["z"][:, None, :] * DATA["w"][None]).sum(1), rtol=1e-12)
    later = (fw.module.Vi(fw.array(DATA["z"])) * w_j).sum(dim=0, call=False)
    np.testing.assert_allclose(fw.numpy(later()), (DATA["z"][:, None, :] * DATA["w"][None]).sum(0), rtol=1e-12)


def test_sum_reduction_and_out(fw):
    z_i, w_j = fw.module.Vi(fw.array(DATA["z"])), fw.module.Vj(fw.array(DATA["w"]))
    expect = (DATA["z"][:, None, :] * DATA["w"][None]).sum(1)
    got = (z_i * w_j).sum_reduction(axis=1)
    np.testing.assert_allclose(fw.numpy(got), expect, rtol=1e-12)
    out = fw.array(np.zeros((M, 2), dtype=np.complex128))
    res = (z_i * w_j).sum(dim=1, call=False)(out=out)
    assert res is out
    np.testing.assert_allclose(fw.numpy(out), expect, rtol=1e-12)


def test_printing(fw):
    z_i = fw.module.Vi(fw.array(DATA["z"]))
    assert "formula: Var(0,4,0)" in str(z_i) and "shape: (5, 1, 2)" in str(z_i)


# ------------------------------------------------------------------------------------------------ error paths


@pytest.mark.parametrize("name, call", [
    ("log", lambda z, w: z.log()), ("__pow__", lambda z, w: z**2), ("__or__", lambda z, w: z | w),
    ("__lt__", lambda z, w: z < w), ("__eq__", lambda z, w: z == w), ("sqrt", lambda z, w: z.sqrt()),
    ("sqnorm2", lambda z, w: z.sqnorm2()), ("__getitem__", lambda z, w: z[0]), ("min", lambda z, w: z.min()),
    ("real2complex", lambda z, w: z.real2complex()), ("exp1j", lambda z, w: z.exp1j()),
    ("keops_tensordot", lambda z, w: z.keops_tensordot(w, [4], [4], [0], [0])), ("clamp", lambda z, w: z.clamp(0, 1)),
])
def test_real_only_operations_raise(name, call):
    from pykeops.numpy import Vi, Vj

    with pytest.raises(TypeError, match=f"LazyTensor.{re.escape(name)} is not defined for complex LazyTensors"):
        call(Vi(DATA["z"]), Vj(DATA["w"]))


def test_complex_errors():
    from pykeops.numpy import ComplexLazyTensor, LazyTensor, Vi, Vj

    z_i, w_j, x_i = Vi(DATA["z"]), Vj(DATA["w"]), Vi(DATA["x"])
    with pytest.raises(ValueError, match="ComplexAdd: incompatible complex dimensions 2 and 3"):
        z_i + Vj(np.ones((N, 3), dtype=np.complex128))
    with pytest.raises(ValueError, match="ComplexMult: incompatible complex dimensions 2 and 3"):
        z_i * Vj(np.ones((N, 3)))  # a real vector of dim 3 is promoted, then fails
    with pytest.raises(ValueError, match="dtypes: float64 and float32"):
        z_i + Vj(DATA["w"].astype(np.complex64))
    with pytest.raises(TypeError, match="real operands only"):
        x_i.atan2(w_j)
    with pytest.raises(TypeError, match="real operands only"):
        x_i.concat(w_j)
    with pytest.raises(NotImplementedError, match="Min reduction is not defined for complex"):
        z_i._reduce("Min", 0)
    with pytest.raises(ValueError, match="non-empty list"):
        ComplexLazyTensor([])
    with pytest.raises(TypeError, match="int64"):
        LazyTensor(np.ones((3, 2), dtype=np.int64), axis=0, is_complex=True)
    with pytest.raises(TypeError, match="cannot combine a pykeops.numpy LazyTensor with a pykeops.torch"):
        torch = pytest.importorskip("torch")
        import pykeops.torch

        z_i * pykeops.torch.Vj(torch.from_numpy(DATA["w"]))


def test_mixed_complex_frameworks_from_real_side():
    torch = pytest.importorskip("torch")
    import pykeops.torch
    from pykeops.numpy import Vi

    with pytest.raises(TypeError, match="cannot combine"):
        Vi(DATA["x"]) + pykeops.torch.Vj(torch.from_numpy(DATA["w"]))


def test_batch_dimensions(fw):
    rng = np.random.default_rng(5)
    B = 3
    z = rng.standard_normal((B, M, 1, 2)) + 1j * rng.standard_normal((B, M, 1, 2))
    y = rng.standard_normal((1, 1, N, 2))
    z_i, y_j = fw.module.LazyTensor(fw.array(z)), fw.module.LazyTensor(fw.array(y))
    f = (z_i * y_j).exp() / (z_i - 2)
    assert f.shape == (B, M, N, 2) and f.dtype == "complex128"
    for axis in (1, 2):
        np.testing.assert_allclose(fw.numpy(f.sum(dim=axis)), (np.exp(z * y) / (z - 2)).sum(axis), rtol=1e-12)
    np.testing.assert_allclose(fw.numpy(f.sum(-1).sum(dim=2)), (np.exp(z * y) / (z - 2)).sum((2, 3))[..., None],
                               rtol=1e-12)


def test_a_new_real_method_is_refused_on_complex_by_the_operation_table(monkeypatch):
    """A method added to LazyTensor without a complex version must fail on complex LazyTensors, not be silently wrong:
    the check is the engine table's on_complex flag of the operation it builds, not a list of method names."""
    from pykeops import _engine
    from pykeops.common.lazy_tensor import GenericLazyTensor
    from pykeops.numpy import Vi

    flags = {op["name"]: op["on_complex"] for op in _engine.operations()}
    assert not flags["Log"] and not flags["Mult"] and not flags["Elem"] and not flags["Sum"]
    assert flags["Add"] and flags["ComplexMult"] and flags["Concat"] and flags["Conj"]
    def frobnicate(self):
        return self._unary("Log")

    def frobnicate2(self, other):
        return self._binary(other, "*", infix=True)

    monkeypatch.setattr(GenericLazyTensor, "frobnicate", frobnicate, raising=False)
    monkeypatch.setattr(GenericLazyTensor, "frobnicate2", frobnicate2, raising=False)
    z, x = Vi(DATA["z"]), Vi(DATA["x"])
    assert "Log(" in x.frobnicate().formula  # real LazyTensors are unaffected
    with pytest.raises(TypeError, match="LazyTensor.frobnicate is not defined for complex LazyTensors"):
        z.frobnicate()
    with pytest.raises(TypeError, match="LazyTensor.frobnicate2 is not defined for complex LazyTensors"):
        z.frobnicate2(z)
