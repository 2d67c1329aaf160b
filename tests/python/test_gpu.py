"""GPU backend.

Without a GPU (CI): the generated CUDA of every operation of the table, in every reduction, compiles under NVRTC for
sm_80 and sm_90 (libnvrtc from the nvidia-cuda-nvrtc wheel); ptxas's register and spill figures are checked for big
formulas; asking for a GPU backend fails with a message saying what is missing.

With a GPU (tests marked `gpu`, skipped otherwise): every reduction in float16/32/64, both schemes and both axes
against dense torch on the GPU (and the CPU backend where built), a sample of operations against NumPy, chunk mode,
block-sparse ranges, batch dimensions, host arrays, a non-default stream, a second device where present, autograd.
"""

import math
import sys
import os
import zlib

import numpy as np
import pytest

import pykeops
from pykeops.common import gpu

sys.path.insert(0, os.path.dirname(__file__))
from test_op_table import ARGS, CASES, broadcast, make_args  # noqa: E402

engine = gpu.engine()
ALIASES = [f"{n} = {('Vi', 'Vj', 'Pm')[c]}({d})" for n, (c, d, _) in ARGS.items()]
SUPPORTED = {op["name"] for op in engine.operations() if op["supported"]}
ARCHS = (80, 90)

# Every reduction of the engine around a scalar formula F (a weight G for log-sum-exp).
REDUCTIONS = [
    "Sum_Reduction({F},{t})", "Min_Reduction({F},{t})", "Max_Reduction({F},{t})", "ArgMin_Reduction({F},{t})",
    "ArgMax_Reduction({F},{t})", "Min_ArgMin_Reduction({F},{t})", "Max_ArgMax_Reduction({F},{t})",
    "KMin_Reduction({F},3,{t})", "ArgKMin_Reduction({F},3,{t})", "KMin_ArgKMin_Reduction({F},3,{t})",
    "Max_SumShiftExpWeight_Reduction({F},{t})", "Max_SumShiftExpWeight_Reduction({F},{t},Concat(IntCst(1),{G}))",
]


def _formula_dim(f):
    return engine.formula_dim(f, ALIASES)


def every_operation_scalar():
    """One scalar formula containing every case formula of the operation table (summed)."""
    parts = []
    for op, cases in CASES.items():
        if op not in SUPPORTED:
            continue
        for f, _ in cases:
            parts.append(f if _formula_dim(f) == 1 else f"Sum({f})")
    return " + ".join(parts)


def every_operation_vector():
    """Every case formula of the table side by side (Concat), so each keeps its own dimension."""
    out = None
    for op, cases in CASES.items():
        if op in SUPPORTED:
            for f, _ in cases:
                out = f if out is None else f"Concat({out},{f})"
    return out


def compile_check(formulas, dtype="float32", arch=80, **kw):
    try:
        return engine.gpu_compile_check(formulas, ALIASES, dtype, arch, **kw)
    except NotImplementedError as e:  # no libnvrtc: CI installs the nvidia-cuda-nvrtc wheel (Makefile `deps`)
        pytest.fail(f"NVRTC is needed to check the generated CUDA: {e}")


# -------------------------------------------------------------------------------- NVRTC compile checks (no GPU)


def test_the_op_table_cases_cover_every_supported_operation():
    assert SUPPORTED <= set(CASES), f"operations without a case formula: {sorted(SUPPORTED - set(CASES))}"


@pytest.mark.parametrize("arch,tag", [(80, 0), (90, 1)])
def test_every_operation_in_every_reduction_compiles(arch, tag):
    F = every_operation_scalar()
    formulas = [r.format(F=F, t=tag, G="t" if tag == 0 else "s") for r in REDUCTIONS]
    result = compile_check(formulas, arch=arch)
    assert result["cubin"] and result["binary_size"] > 0
    assert result["arch"] == f"sm_{arch}"
    names = {p["name"] for p in result["programs"]}
    assert len(names) == len(formulas)
    for name in names:
        for kernel in ("_reduce", "_combine"):
            res = result["kernels"][name + kernel]
            assert res["spill_stores"] == 0, (name + kernel, res)
    regs = max(result["kernels"][n + "_reduce"]["registers"] for n in names)
    print(f"\n[gpu] {len(formulas)} reductions of all {len(SUPPORTED)} operations, sm_{arch}: "
          f"{result['seconds']:.1f} s NVRTC, at most {regs} registers, no spills")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_every_operation_with_its_own_dimension_compiles(dtype):
    # Concat keeps every case's own output dimension: a vector state, split in output groups.
    red = f"Sum_Reduction({every_operation_vector()},0)"
    for arch in ARCHS if dtype == "float32" else ARCHS[:1]:
        result = compile_check([red], dtype=dtype, arch=arch)
        assert result["binary_size"] > 0
        assert result["programs"][0]["groups"] > 1


# Every reduction in every dtype, sum scheme and accumulator, and the big formulas' register budgets, are compiled
# once, by the C++ sweep (tests/cpp/test_gpu_codegen.cpp); here: every operation of the table.


def test_use_fast_math_reaches_nvrtc():
    f = "Sum_Reduction(Sin(x*y),0)"
    fast = compile_check([f], use_fast_math=True)
    precise = compile_check([f], use_fast_math=False)
    assert fast["binary_size"] != precise["binary_size"]  # __sinf versus the accurate sinf


def test_source_is_generated_without_a_gpu():
    src = engine.gpu_source("Sum_Reduction(Exp(-SqDist(x,y))*b,0)", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"])
    assert "__global__" in src and "_reduce(" in src and "_combine(" in src


# -------------------------------------------------------------------------------- without a GPU

requires_no_gpu = pytest.mark.skipif(pykeops.config.gpu_available, reason="a GPU is present")


@requires_no_gpu
@pytest.mark.parametrize("backend", ["GPU", "GPU_1D", "GPU_2D_host"])
def test_gpu_backend_without_gpu_says_what_is_missing(backend):
    from pykeops.numpy import Genred

    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    with pytest.raises(RuntimeError, match="no GPU backend is available: no (libcuda|device|libnvrtc)"):
        g(np.ones((2, 3)), np.ones((4, 3)), backend=backend)


@requires_no_gpu
def test_status_reports_a_reason():
    s = gpu.status()
    assert s["available"] is False and s["reason"]
    assert pykeops.config.gpu_available is False


# -------------------------------------------------------------------------------- on a GPU

try:
    import torch
except ImportError:
    torch = None
HAS_GPU = bool(pykeops.config.gpu_available and torch is not None and torch.cuda.is_available())
gpu_test = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="no GPU (pykeops.config.gpu_available is False)")]
CPU_BACKEND = engine.cpu_backend_available()


def _mark(f):
    for m in gpu_test:
        f = m(f)
    return f


def _tol(dtype):
    return {"float16": 2e-2, "float32": 1e-4, "float64": 1e-10}[dtype]


def _rand(*shape, dtype="float32", device="cuda", lo=-1.0, hi=1.0, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    t = torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
    return t.to(getattr(torch, dtype)).to(device)


def dense(op, F, K=None):
    """op over dim 1 of F (M, N, D) in float64 torch; returns values and/or indices like Genred."""
    F = F.double()
    if op == "Sum":
        return F.sum(1)
    if op in ("Min", "ArgMin", "Min_ArgMin"):
        v, i = F.min(1)
        return {"Min": v, "ArgMin": i, "Min_ArgMin": (v, i)}[op]
    if op in ("Max", "ArgMax", "Max_ArgMax"):
        v, i = F.max(1)
        return {"Max": v, "ArgMax": i, "Max_ArgMax": (v, i)}[op]
    if op in ("KMin", "ArgKMin", "KMin_ArgKMin"):
        v, i = torch.sort(F, dim=1, stable=True)
        v, i = v[:, :K], i[:, :K]
        if F.shape[2] == 1:
            v, i = v[..., 0], i[..., 0]
        return {"KMin": v, "ArgKMin": i, "KMin_ArgKMin": (v, i)}[op]
    if op == "LogSumExp":
        return torch.logsumexp(F, 1)
    raise AssertionError(op)


def assert_close(got, ref, dtype, F=None):
    if got.dtype == torch.int64:
        if not torch.equal(got.cpu(), ref.cpu()) and F is not None:
            # near ties in the data type: the values at the returned indices must be as good
            vg = torch.gather(F.double(), 1, got.reshape(F.shape[0], -1, F.shape[2]).clamp(min=0))
            vr = torch.gather(F.double(), 1, ref.reshape(F.shape[0], -1, F.shape[2]))
            torch.testing.assert_close(vg, vr, rtol=_tol(dtype), atol=_tol(dtype))
            return
        assert torch.equal(got.cpu(), ref.cpu())
        return
    scale = ref.abs().max().item() if ref.numel() else 1.0
    torch.testing.assert_close(got.double().cpu(), ref.double().cpu(), rtol=_tol(dtype), atol=_tol(dtype) * max(scale, 1e-3))


OPS = ["Sum", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin", "LogSumExp"]


@_mark
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("backend", ["GPU_1D", "GPU_2D", "GPU"])
@pytest.mark.parametrize("axis", [0, 1])
def test_every_reduction_against_dense_torch(dtype, backend, axis):
    from pykeops.torch import Genred

    M, N = (37, 1500) if axis == 1 else (1500, 37)
    x, y = _rand(M, 3, dtype=dtype, seed=1), _rand(N, 3, dtype=dtype, seed=2)
    F = -((x[:, None, :].double() - y[None, :, :].double()) ** 2).sum(-1, keepdim=True)  # (M, N, 1)
    F = F if axis == 1 else F.transpose(0, 1)
    for op in OPS:
        K = 3 if op.startswith("KMin") or op == "ArgKMin" else None
        g = Genred("-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op=op, axis=axis, opt_arg=K)
        got = g(x, y, backend=backend)
        ref = dense(op, F, K)
        for a, b in zip(got if isinstance(got, tuple) else (got,), ref if isinstance(ref, tuple) else (ref,)):
            assert a.device == x.device
            assert_close(a, b, dtype, F)
        assert gpu.last_launch["scheme"] == {"GPU_1D": "1D", "GPU_2D": "2D"}.get(backend, gpu.last_launch["scheme"])


@_mark
def test_automatic_scheme():
    from pykeops.torch import Genred

    g = Genred("Exp(-SqDist(x,y))", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    x, y = _rand(8, 3), _rand(200000, 3)
    out = g(x, y)
    assert gpu.last_launch["scheme"] == "2D" and gpu.last_launch["splits"] > 1
    ref = torch.exp(-((x[:, None].double() - y[None].double()) ** 2).sum(-1)).sum(1, keepdim=True)
    assert_close(out, ref, "float32")
    g(_rand(200000, 3), _rand(100, 3))
    assert gpu.last_launch["scheme"] == "1D"


@_mark
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sample_of_operations_against_numpy(dtype):
    from pykeops.torch import Genred

    cases = [(op, f, ref) for op, cs in CASES.items() if op in SUPPORTED for f, ref in cs][::3]
    for op, formula, ref in cases:
        names = list(ref.__code__.co_varnames[: ref.__code__.co_argcount])
        names += [n for n in ("s", "t") if n not in names]
        rng = np.random.default_rng(zlib.crc32(formula.encode()))
        M, N = 7, 300
        data = make_args(names, M, N, rng)
        values = {n: a.astype(dtype).astype(np.float64) for n, a in data.items()}
        with np.errstate(all="ignore"):
            d = ref(**{n: broadcast(n, values[n]) for n in ref.__code__.co_varnames[: ref.__code__.co_argcount]})
        d = np.broadcast_to(d, (M, N, d.shape[-1]))
        aliases = [f"{n} = {('Vi', 'Vj', 'Pm')[ARGS[n][0]]}({ARGS[n][1]})" for n in names]
        args = [torch.from_numpy(data[n].astype(dtype)).cuda() for n in names]
        rtol = 1e-4 if dtype == "float32" else 1e-9
        for axis in (0, 1):
            out = Genred(formula, aliases, axis=axis, use_fast_math=False)(*args).cpu().numpy()
            scale = np.abs(d).max() * d.shape[axis]
            np.testing.assert_allclose(out, d.sum(axis=axis), rtol=rtol, atol=rtol * scale + 1e-30, err_msg=formula)


@_mark
def test_against_the_cpu_backend():
    if not CPU_BACKEND:
        pytest.skip("this build has no CPU backend")
    from pykeops.torch import Genred

    x, y, b = _rand(300, 3, dtype="float64"), _rand(400, 3, dtype="float64"), _rand(400, 2, dtype="float64")
    for op in OPS:
        K = 4 if "KMin" in op else None
        lse = op == "LogSumExp"  # a scalar formula
        g = Genred("-SqDist(x,y)" if lse else "Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"],
                   reduction_op=op, axis=1, opt_arg=K)
        on_gpu, on_cpu = g(x, y, b), g(x.cpu(), y.cpu(), b.cpu())
        for a, c in zip(on_gpu if isinstance(on_gpu, tuple) else (on_gpu,), on_cpu if isinstance(on_cpu, tuple) else (on_cpu,)):
            if a.dtype == torch.int64:
                assert torch.equal(a.cpu(), c)
            else:
                torch.testing.assert_close(a.cpu(), c, rtol=1e-12, atol=1e-12)


@_mark
def test_float16_accumulates_in_float32():
    from pykeops.torch import Genred

    x, y, b = _rand(2000, 3, dtype="float16"), _rand(3000, 3, dtype="float16"), _rand(3000, 1, dtype="float16")
    g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1)
    out = g(x, y, b)
    assert out.dtype == torch.float16
    ref = (torch.exp(-((x[:, None].double() - y[None].double()) ** 2).sum(-1)) * b[None, :, 0].double()).sum(1, keepdim=True)
    torch.testing.assert_close(out.double(), ref, rtol=2e-3, atol=1e-2)  # a float16 accumulator would be off by far more
    g16 = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], axis=1, dtype_acc="float16")
    assert g16(x, y, b).dtype == torch.float16


@_mark
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("D", [100, 300, 784])
@pytest.mark.parametrize("enable_chunks", [True, False])
def test_chunk_mode_large_dimensions(dtype, D, enable_chunks):
    from pykeops.torch import Genred

    x, y = _rand(500, D, dtype=dtype, lo=0, hi=1 / math.sqrt(D)), _rand(700, D, dtype=dtype, lo=0, hi=1 / math.sqrt(D), seed=3)
    b = _rand(700, 5, dtype=dtype, seed=4)
    g = Genred("Exp(-SqDist(x,y))*b", [f"x = Vi({D})", f"y = Vj({D})", "b = Vj(5)"], axis=1, enable_chunks=enable_chunks)
    ref = torch.exp(-torch.cdist(x.double(), y.double()) ** 2) @ b.double()
    for backend in ("GPU_1D", "GPU_2D"):
        assert_close(g(x, y, b, backend=backend), ref, dtype)
    gk = Genred("SqDist(x,y)", [f"x = Vi({D})", f"y = Vj({D})"], reduction_op="ArgKMin", opt_arg=5, axis=1)
    idx = gk(x, y)
    assert_close(idx, torch.cdist(x.double(), y.double()).topk(5, largest=False).indices, dtype,
                 (torch.cdist(x.double(), y.double()) ** 2)[..., None])


@_mark
def test_large_output_dimension_groups():
    from pykeops.torch import Genred

    x, y, v = _rand(400, 3, dtype="float64"), _rand(500, 3, dtype="float64"), _rand(500, 300, dtype="float64")
    g = Genred("Exp(-SqDist(x,y))*v", ["x = Vi(3)", "y = Vj(3)", "v = Vj(300)"], axis=1)
    ref = torch.exp(-torch.cdist(x, y) ** 2) @ v
    assert_close(g(x, y, v), ref, "float64")


@_mark
@pytest.mark.parametrize("backend", ["GPU_1D", "GPU_2D"])
def test_block_sparse_ranges(backend):
    from pykeops.torch import Genred

    M, N = 50, 60
    x, y, b = _rand(M, 2, dtype="float64"), _rand(N, 2, dtype="float64", seed=5), _rand(N, 1, dtype="float64", seed=6)
    ranges_i = torch.tensor([[0, 20], [30, 50]])
    slices_i = torch.tensor([2, 3])
    redranges_j = torch.tensor([[0, 10], [40, 60], [5, 25]])
    ranges_j = torch.tensor([[0, 60]])
    slices_j = torch.tensor([1])
    redranges_i = torch.tensor([[0, 50]])
    rng = tuple(r.cuda() for r in (ranges_i, slices_i, redranges_j, ranges_j, slices_j, redranges_i))
    mask = torch.zeros(M, N, dtype=torch.bool)
    mask[0:20, 0:10] = mask[0:20, 40:60] = mask[30:50, 5:25] = True
    K = torch.exp(-torch.cdist(x, y) ** 2).cpu() * mask
    for op in ("Sum", "ArgMin"):
        g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], reduction_op=op, axis=1)
        out = g(x, y, b, backend=backend, ranges=rng).cpu()
        if op == "Sum":
            torch.testing.assert_close(out, K @ b.cpu(), rtol=1e-10, atol=1e-12)
        else:
            F = torch.where(mask, (K * b.cpu()[None, :, 0]), torch.inf)
            ref = F.argmin(1, keepdim=True)
            ref[~mask.any(1)] = -1
            assert torch.equal(out, ref)


@_mark
@pytest.mark.parametrize("backend", ["GPU_1D", "GPU_2D"])
def test_batch_dimensions(backend):
    from pykeops.torch import Genred

    x, y, b = _rand(2, 1, 40, 3, dtype="float64"), _rand(1, 3, 50, 3, dtype="float64", seed=7), _rand(50, 2, dtype="float64", seed=8)
    g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    out = g(x, y, b, backend=backend)
    assert out.shape == (2, 3, 40, 2)
    ref = torch.exp(-((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)) @ b
    assert_close(out, ref, "float64")


@_mark
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_host_arrays_are_copied_to_the_gpu_and_back(framework):
    import importlib

    module = importlib.import_module(f"pykeops.{framework}")
    x, y, b = np.random.rand(30, 3), np.random.rand(40, 3), np.random.rand(40, 2)
    args = (x, y, b) if framework == "numpy" else tuple(torch.from_numpy(a) for a in (x, y, b))
    g = module.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    out = g(*args, backend="GPU", device_id=0)
    assert type(out) is type(args[0])
    ref = np.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) @ b
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-10)
    res = module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min_ArgMin", axis=1)(*args[:2], backend="GPU_2D")
    assert np.asarray(res[1]).dtype == np.int64


@_mark
def test_non_default_stream_is_respected():
    from pykeops.torch import Genred

    g = Genred("Exp(-SqDist(x,y))", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    x_new, y = _rand(1000, 3, seed=9), _rand(1000, 3, seed=10)
    ref = g(x_new, y)
    x = torch.zeros_like(x_new)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        torch.cuda._sleep(200_000_000)  # the copy below happens late on s: a kernel on another stream would miss it
        x.copy_(x_new)
        out = g(x, y)
    s.synchronize()
    torch.testing.assert_close(out, ref)


@_mark
def test_second_device_and_device_errors():
    from pykeops.torch import Genred

    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    x0, y0 = _rand(10, 3), _rand(12, 3)
    with pytest.raises(ValueError, match="device_id=5 but the arguments are on cuda:0"):
        g(x0, y0, device_id=5)
    with pytest.raises(ValueError, match="argument 1 is on device cpu but argument 0 is on cuda:0"):
        g(x0, y0.cpu())
    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU only")
    x1, y1 = x0.to("cuda:1"), y0.to("cuda:1")
    out = g(x1, y1)
    assert out.device == torch.device("cuda:1")
    torch.testing.assert_close(out.cpu(), g(x0, y0).cpu())
    with pytest.raises(ValueError, match="on device cuda:1 but argument 0 is on cuda:0"):
        g(x0, y1)
    out = g(x0.cpu(), y0.cpu(), backend="GPU", device_id=1)
    torch.testing.assert_close(out, g(x0, y0).cpu())


@_mark
def test_sum_schemes_and_double_accumulation():
    from pykeops.torch import Genred

    x, y = _rand(50, 1, seed=11), _rand(200000, 1, seed=12)
    ref = torch.exp(-(x.double() - y.double().T) ** 2).sum(1, keepdim=True)
    for kw in ({"sum_scheme": "direct_sum"}, {"sum_scheme": "block_sum"}, {"sum_scheme": "kahan_scheme"},
               {"dtype_acc": "float64"}):
        g = Genred("Exp(-SqDist(x,y))", ["x = Vi(1)", "y = Vj(1)"], axis=1, use_fast_math=False, **kw)
        for backend in ("GPU_1D", "GPU_2D"):
            # a direct sum of 2e5 float32 terms in one thread (1D) drifts by ~1e-4; blocks and Kahan do not
            rtol = 1e-3 if kw == {"sum_scheme": "direct_sum"} else 1e-5
            torch.testing.assert_close(g(x, y, backend=backend).double(), ref, rtol=rtol, atol=0)


@_mark
def test_lazytensor_on_cuda_tensors():
    from pykeops.torch import LazyTensor

    x, y = _rand(100, 3), _rand(150, 3, seed=13)
    D = ((LazyTensor(x[:, None, :]) - LazyTensor(y[None, :, :])) ** 2).sum(-1)
    idx = D.argmin(dim=1)
    assert idx.is_cuda
    assert torch.equal(idx.view(-1).cpu(), torch.cdist(x.double(), y.double()).argmin(1).cpu())


@_mark
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("reduction", ["Sum", "LogSumExp", "Min", "KMin"])
def test_autograd_on_the_gpu(dtype, reduction):
    # Built from the engine's parser, not a CPU kernel: works for float16 and in builds without the CPU backend.
    from pykeops.torch import Genred

    x = _rand(60, 3, dtype=dtype).requires_grad_()
    y = _rand(70, 3, dtype=dtype, seed=14).requires_grad_()
    b = _rand(70, 1, dtype=dtype, seed=15)
    kw = {"opt_arg": 2} if reduction == "KMin" else {}
    formula = "-SqDist(x,y)*b" if reduction != "Sum" else "Exp(-SqDist(x,y))*b"
    g = Genred(formula, ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], reduction_op=reduction, axis=1, **kw)
    out = g(x, y, b)
    w = _rand(*out.shape, dtype=dtype, seed=16)
    gx, gy = torch.autograd.grad((out * w).sum(), [x, y])
    xr, yr = (t.detach().double().requires_grad_() for t in (x, y))
    d2, bj = ((xr[:, None] - yr[None]) ** 2).sum(-1), b.double().view(1, -1)
    ref = {"Sum": lambda: (torch.exp(-d2) * bj).sum(1, keepdim=True),
           "LogSumExp": lambda: torch.logsumexp(-d2 * bj, 1, keepdim=True),
           "Min": lambda: (-d2 * bj).min(1, keepdim=True).values,
           "KMin": lambda: (-d2 * bj).topk(2, dim=1, largest=False).values}[reduction]()
    rx, ry = torch.autograd.grad((ref * w.double()).sum(), [xr, yr])
    assert gx.is_cuda and gx.dtype == x.dtype
    for got, want in ((gx, rx), (gy, ry)):
        scale = want.abs().max().item()
        torch.testing.assert_close(got.double(), want, rtol=_tol(dtype) * 5, atol=_tol(dtype) * 5 * scale)


# -------------------------------------------------------------------------------- the Python glue, without a GPU


class _SimulatedDevice:
    """The engine with a pretend GPU: device memory is host memory and GPU kernels run as the CPU kernels. It checks
    pykeops.common.gpu's host path (backend choice, dtype and device checks, binding, batch, ranges, outputs,
    post-processing) on a machine without a GPU."""

    def __init__(self, real):
        self.real, self.memory, self.runs = real, {}, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def gpu_status(self):
        return {"available": True, "reason": "", "devices": 1}

    def gpu_alloc(self, device, nbytes):
        buf = np.zeros(nbytes, dtype=np.uint8)
        self.memory[buf.ctypes.data] = buf
        return buf.ctypes.data

    def gpu_free(self, device, ptr):
        self.memory.pop(ptr)

    def gpu_upload(self, device, dst, src, nbytes):
        import ctypes

        ctypes.memmove(dst, src, nbytes)

    def gpu_download(self, device, dst, src, nbytes):
        import ctypes

        ctypes.memmove(dst, src, nbytes)

    def get_gpu_kernel(self, formula, aliases, dtype, dtype_acc, sum_scheme, use_fast_math=True, enable_chunks=True):
        self.real.get_gpu_kernel(formula, aliases, dtype, dtype_acc, sum_scheme, use_fast_math=use_fast_math,
                                 enable_chunks=enable_chunks)  # the GPU request itself must be valid
        sim = self

        class Kernel:
            cpu = self.real.get_kernel(formula, aliases, dtype, dtype_acc, sum_scheme)
            nargs, arg_dims, arg_cats, tag, outputs = cpu.nargs, cpu.arg_dims, cpu.arg_cats, cpu.tag, cpu.outputs

            def run(self, ptrs, nx, ny, outs, device=0, stream=0, scheme="auto", **extra):
                assert all(p in sim.memory for p in list(ptrs) + list(outs)), "a host pointer reached the device"
                sim.runs.append((device, stream, scheme, extra))
                self.cpu.run(ptrs, nx, ny, outs, **extra)
                return {"scheme": "1D" if scheme == "auto" else scheme, "blocks": 1, "splits": 1, "scratch_bytes": 0}

        return Kernel()


@pytest.fixture
def simulated(monkeypatch):
    if not CPU_BACKEND:
        pytest.skip("the simulated device runs CPU kernels")
    sim = _SimulatedDevice(engine)
    monkeypatch.setattr(gpu, "engine", lambda: sim)
    monkeypatch.setattr(gpu, "status", lambda: sim.gpu_status())
    monkeypatch.setattr(gpu, "_torch_cuda", lambda: False)
    return sim


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_host_path_with_a_simulated_device(simulated, framework):
    import importlib

    if framework == "torch" and torch is None:
        pytest.skip("torch is not installed")
    module = importlib.import_module(f"pykeops.{framework}")
    wrap = (lambda a: a) if framework == "numpy" else torch.from_numpy
    rng = np.random.default_rng(0)
    x, y, b = rng.random((2, 7, 3)), rng.random((9, 3)), rng.random((9, 2))
    aliases = ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"]
    for op in ("Sum", "LogSumExp", "Min_ArgMin", "ArgKMin"):
        kw = {"opt_arg": 2} if op == "ArgKMin" else {}
        g = module.Genred("Exp(-SqDist(x,y))*b" if op != "LogSumExp" else "-SqDist(x,y)", aliases[:2] + (aliases[2:] if op != "LogSumExp" else []),
                          reduction_op=op, axis=1, **kw)
        args = (x, y, b) if op != "LogSumExp" else (x, y)
        args = tuple(wrap(a) for a in args)
        on_gpu, on_cpu = g(*args, backend="GPU_2D", device_id=0), g(*args, backend="CPU")
        for a, c in zip(on_gpu if isinstance(on_gpu, tuple) else (on_gpu,), on_cpu if isinstance(on_cpu, tuple) else (on_cpu,)):
            assert type(a) is type(c) and tuple(a.shape) == tuple(c.shape)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    device, stream, scheme, extra = simulated.runs[-1]
    assert (device, scheme) == (0, "2D") and extra["batch"] == [2]
    # ranges (host arrays) and out=
    ranges = tuple(wrap(np.array(r, dtype=np.int64)) for r in ([[0, 4], [4, 7]], [1, 2], [[0, 5], [3, 9]], [[0, 9]], [1], [[0, 7]]))
    g = module.Genred("Exp(-SqDist(x,y))*b", aliases, axis=1)
    out = wrap(np.zeros((7, 2)))
    res = g(*(wrap(a) for a in (x[0], y, b)), backend="GPU", ranges=ranges, out=out)
    assert res is out
    np.testing.assert_allclose(np.asarray(out), np.asarray(g(*(wrap(a) for a in (x[0], y, b)), backend="CPU", ranges=ranges)))
    # float16 host data go to the GPU path (the CPU backend has no float16)
    with pytest.raises(ValueError, match="argument 1 has dtype float32 but argument 0 has float16"):
        g(wrap(x[0].astype(np.float16)), wrap(y.astype(np.float32)), wrap(b.astype(np.float16)), backend="GPU")
    with pytest.raises(ValueError, match="GPU device 3 does not exist"):
        g(*(wrap(a) for a in (x[0], y, b)), backend="GPU", device_id=3)


def test_autograd_with_a_simulated_device_never_asks_for_a_cpu_kernel(simulated, monkeypatch):
    """Backward and forward mode on a GPU backend use only GPU kernels (the signature comes from the parser)."""
    if torch is None:
        pytest.skip("torch is not installed")
    from pykeops.common.genred import GenericGenred
    from pykeops.torch import Genred

    rng = np.random.default_rng(1)
    x, y, b = (torch.from_numpy(rng.random(s)).requires_grad_() for s in ((7, 3), (9, 3), (9, 2)))
    aliases = ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"]
    refs = {}
    for backend in ("CPU", "GPU"):
        if backend == "GPU":
            monkeypatch.setattr(GenericGenred, "_kernel", lambda self, dtype: pytest.fail("a CPU kernel was asked for"))
        for op in ("Sum", "LogSumExp", "KMin"):
            kw = {"opt_arg": 2} if op == "KMin" else {}
            g = Genred("Exp(-SqDist(x,y))*b" if op == "Sum" else "-SqDist(x,y)*Sum(b)", aliases, reduction_op=op, axis=1, **kw)
            out = g(x, y, b, backend=backend)
            grads = torch.autograd.grad(out.square().sum(), [x, y, b])
            with torch.autograd.forward_ad.dual_level():
                dual = torch.autograd.forward_ad.make_dual(x.detach(), torch.ones_like(x))
                tangent = torch.autograd.forward_ad.unpack_dual(g(dual, y.detach(), b.detach(), backend=backend)).tangent
            refs.setdefault(op, []).append((out, *grads, tangent))
    for op, (cpu, sim) in refs.items():
        for a, c in zip(sim, cpu):
            torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    assert len(simulated.runs) >= 9


def test_builds_without_the_cpu_backend_send_host_arrays_to_the_gpu(simulated, monkeypatch):
    from pykeops.numpy import Genred

    rng = np.random.default_rng(2)
    x, y = rng.random((5, 3)), rng.random((6, 3))
    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Min", axis=1)
    expected = g(x, y)
    assert simulated.runs == []  # backend="auto" with host arrays: the CPU
    monkeypatch.setattr(gpu, "cpu_backend", lambda: False)
    np.testing.assert_array_equal(g(x, y), expected)
    assert len(simulated.runs) == 1  # the only backend there is
