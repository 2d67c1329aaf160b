"""Existing pykeops code runs: KeOps's module paths and names, signatures, the LazyTensor extension API, keopscore."""

import importlib
import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import pykeops

rng = np.random.default_rng(7)


def dense_sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# ------------------------------------------------------------------------------------------- module paths


def test_module_paths_reexport_our_objects(fw):
    name = fw.name
    mod = fw.module
    generic = importlib.import_module(f"pykeops.{name}.generic")
    generic_red = importlib.import_module(f"pykeops.{name}.generic.generic_red")
    generic_ops = importlib.import_module(f"pykeops.{name}.generic.generic_ops")
    assert generic_red.Genred is mod.Genred is generic.Genred
    for helper in ("generic_sum", "generic_logsumexp", "generic_argmin", "generic_argkmin"):
        assert getattr(generic_ops, helper) is getattr(mod, helper) is getattr(generic, helper)
    lt_module = importlib.import_module(f"pykeops.{name}.lazytensor.LazyTensor")
    for attr in ("LazyTensor", "ComplexLazyTensor", "Vi", "Vj", "Pm"):
        assert getattr(lt_module, attr) is getattr(mod, attr)
    assert lt_module.Var.__module__ == mod.LazyTensor.__module__
    cluster = importlib.import_module(f"pykeops.{name}.cluster")
    for sub, attrs in (("grid_cluster", ["grid_cluster"]), ("matrix", ["from_matrix"]),
                       ("utils", ["sort_clusters", "cluster_ranges", "cluster_centroids", "cluster_ranges_centroids",
                                  "swap_axes"])):
        submodule = importlib.import_module(f"pykeops.{name}.cluster.{sub}")
        for attr in attrs:
            assert getattr(submodule, attr) is getattr(cluster, attr)
    assert callable(cluster.grid_cluster)  # the function, not the submodule of the same name
    utils = importlib.import_module(f"pykeops.{name}.utils")
    tools = utils.torchtools if name == "torch" else utils.numpytools
    assert tools.Genred is mod.Genred and tools.KernelSolve is mod.KernelSolve and tools.swap_axes is cluster.swap_axes


def test_numpy_paths_and_keopscore_import_without_torch():
    # sys.modules["torch"] = None makes `import torch` fail as if torch were not installed
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import keopscore, keopscore.config.chunks, pykeops.common.gpu_utils, pykeops.numpy.generic.generic_ops\n"
        "import pykeops.numpy.lazytensor.LazyTensor, pykeops.numpy.cluster.matrix, pykeops.numpy.test_install\n"
        "from pykeops.numpy.utils import numpytools\n"
        "print(keopscore.config.get_build_folder() == pykeops.config.get_build_folder())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_var_helper(fw):
    lt_module = importlib.import_module(f"pykeops.{fw.name}.lazytensor.LazyTensor")
    x = fw.array(rng.random((5, 3)))
    assert lt_module.Var(x, cat=1).formula == lt_module.Vj(x).formula == "Var(0,3,1)"
    assert lt_module.Var(0, 3, 2).formula == "Var(0,3,2)" and lt_module.Var(0, 3, 2).symbolic_variables == ((0, 3, 2),)


def test_test_install(fw, capsys):
    test_install = importlib.import_module(f"pykeops.{fw.name}.test_install")
    getattr(test_install, f"test_{fw.name}_bindings")()
    assert f"pyKeOps with {fw.name} bindings is working!" in capsys.readouterr().out


def test_gpu_utils_get_gpu_number():
    from pykeops.common import gpu
    from pykeops.common.gpu_utils import get_gpu_number

    n = get_gpu_number()
    assert isinstance(n, int) and n >= 0
    assert (n > 0) == gpu.available()


def test_config_build_folder_and_objects():
    import pykeops.config

    assert pykeops.config.get_build_folder() == pykeops.get_build_folder()
    assert pykeops.config.pykeops_cuda.get_use_cuda() == pykeops.config.gpu_available
    assert pykeops.config.pykeops_openmp.get_use_OpenMP() is True
    assert pykeops.config.pykeops_base.get_build_folder() == pykeops.get_build_folder()
    with pytest.raises(AttributeError):
        pykeops.config.no_such_flag


def test_torchtools_helpers():
    torch = pytest.importorskip("torch")
    from pykeops.torch.utils import torchtools

    x = torch.arange(6.0).reshape(2, 3)
    assert torchtools.dtypename(torch.float32) == "float32" and torchtools.size(x) == 6
    assert torch.equal(torchtools.arraysum(x, 0), x.sum(0)) and torchtools.arraysum(x).item() == 15
    assert torch.equal(torchtools.tile(x, 2, 1), x.repeat(2, 1))
    assert torchtools.array([1, 2], "int64", "cpu").dtype == torch.int64
    assert torchtools.detect_complex([1, 2j]) and not torchtools.detect_complex(x)
    z = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64)
    assert torch.equal(torchtools.view_as_complex(torchtools.view_as_real(z)), z)
    with pytest.raises(ValueError, match="float16, float32 or float64"):
        torchtools.dtypename(torch.int8)


def test_numpytools_helpers():
    from pykeops.numpy.utils import numpytools

    x = np.arange(6.0).reshape(2, 3)
    assert numpytools.dtypename(x.dtype) == "float64" and numpytools.size(x) == 6
    assert np.array_equal(numpytools.arraysum(x, 0), x.sum(0)) and numpytools.device(x) == "cpu"
    z = np.array([1 + 2j, 3 - 1j])
    assert np.array_equal(numpytools.view_as_complex(numpytools.view_as_real(z)), z)
    assert numpytools.zeros((2, 2), "float32").dtype == np.float32


# ------------------------------------------------------------------------------ generic_* under the old path


def test_generic_helpers_old_path_numeric(fw):
    ops = importlib.import_module(f"pykeops.{fw.name}.generic.generic_ops")
    x, y, b = rng.random((30, 3)), rng.random((20, 3)), rng.random((20, 2))
    d2 = dense_sqdist(x, y)
    gsum = ops.generic_sum("Exp(-SqDist(x,y)) * b", "a = Vi(2)", "x = Vi(3)", "y = Vj(3)", "b = Vj(2)")
    np.testing.assert_allclose(fw.numpy(gsum(*map(fw.array, (x, y, b)))), np.exp(-d2) @ b, rtol=1e-12)
    glse = ops.generic_logsumexp("-SqDist(x,y)", "a = Vj(1)", "x = Vi(3)", "y = Vj(3)")
    ref = np.log(np.exp(-d2).sum(0))[:, None]
    np.testing.assert_allclose(fw.numpy(glse(fw.array(x), fw.array(y))), ref, rtol=1e-12)
    gargmin = ops.generic_argmin("SqDist(x,y)", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    assert np.array_equal(fw.numpy(gargmin(fw.array(x), fw.array(y)))[:, 0], d2.argmin(1))
    gargkmin = ops.generic_argkmin("SqDist(x,y)", "a = Vi(3)", "x = Vi(3)", "y = Vj(3)")
    assert np.array_equal(fw.numpy(gargkmin(fw.array(x), fw.array(y))), np.argsort(d2, 1, kind="stable")[:, :3])


def test_generic_sum_old_path_gradient():
    torch = pytest.importorskip("torch")
    from pykeops.torch.generic.generic_ops import generic_sum

    x = torch.rand(15, 2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(10, 2, dtype=torch.float64)
    g = generic_sum("Exp(-SqDist(x,y))", "a = Vi(1)", "x = Vi(2)", "y = Vj(2)")
    (grad,) = torch.autograd.grad(g(x, y).sum(), x)
    xr = x.detach().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(torch.exp(-((xr[:, None] - y[None]) ** 2).sum(-1)).sum(), xr)
    torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-14)


def test_genred_dtype_argument_silent(fw):
    # (as in pykeops's generic-syntax examples)
    x, y = rng.random((6, 3)), rng.random((5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = fw.module.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="Sum", axis=1, dtype="float32")
        out = fw.numpy(g(fw.array(x), fw.array(y)))
    assert out.dtype == np.float64  # the arguments' dtype, not the ignored dtype=
    np.testing.assert_allclose(out[:, 0], dense_sqdist(x, y).sum(1), rtol=1e-12)


# ------------------------------------------------------------------------------------------- signatures


def _params(obj):
    return [(p.name, p.default) for p in inspect.signature(obj).parameters.values()]


def test_kernelsolve_signatures():
    from pykeops.numpy import KernelSolve as NumpyKernelSolve

    E = inspect.Parameter.empty
    assert _params(NumpyKernelSolve) == [
        ("formula", E), ("aliases", E), ("varinvalias", E), ("axis", 0), ("dtype", None), ("opt_arg", None),
        ("dtype_acc", "auto"), ("use_double_acc", False), ("sum_scheme", "auto"), ("enable_chunks", True),
        ("rec_multVar_highdim", None), ("use_fast_math", True),
    ]
    torch_ops = pytest.importorskip("pykeops.torch")
    assert _params(torch_ops.KernelSolve) == [
        ("formula", E), ("aliases", E), ("varinvalias", E), ("axis", 0), ("dtype_acc", "auto"),
        ("use_double_acc", False), ("sum_scheme", "auto"), ("enable_chunks", True), ("rec_multVar_highdim", None),
        ("dtype", None), ("cuda_type", None), ("use_fast_math", True),
    ]
    with pytest.raises(ValueError, match="no opt_arg"):
        NumpyKernelSolve("x", ["x = Vi(1)"], "x", 0, None, 3)


def test_numpy_kernelsolve_positional_order():
    from pykeops.numpy import KernelSolve

    x, b = rng.random((40, 2)), rng.random((40, 1))
    # axis, dtype (ignored), opt_arg, dtype_acc, use_double_acc, sum_scheme, given positionally as in pykeops.numpy
    solver = KernelSolve("Exp(-SqDist(x,y)*10)*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], "b", 1, "float64", None,
                         "auto", False, "kahan_scheme")
    assert solver.genred.sum_scheme == "kahan_scheme"
    a = solver(x, x, b, alpha=0.5, eps=1e-12)
    K = np.exp(-10 * dense_sqdist(x, x))
    np.testing.assert_allclose(a, np.linalg.solve(K + 0.5 * np.eye(40), b), rtol=1e-8, atol=1e-10)


def test_cluster_signatures(fw):
    cluster = importlib.import_module(f"pykeops.{fw.name}.cluster")
    E = inspect.Parameter.empty
    assert _params(cluster.grid_cluster) == [("x", E), ("size", E)]
    assert _params(cluster.sort_clusters) == [("x", E), ("lab", E)]
    assert _params(cluster.cluster_ranges) == [("lab", E), ("Nlab", None)]
    assert _params(cluster.cluster_centroids) == [("x", E), ("lab", E), ("Nlab", None), ("weights", None),
                                                  ("weights_c", None)]
    assert _params(cluster.cluster_ranges_centroids) == [("x", E), ("lab", E), ("weights", None),
                                                         ("min_weight", 1e-9)]
    assert _params(cluster.from_matrix) == [("ranges_i", E), ("ranges_j", E), ("keep", E)]
    assert _params(cluster.swap_axes) == [("ranges", E)]


def test_lazy_tensor_signatures(fw):
    E = inspect.Parameter.empty
    assert _params(fw.module.ComplexLazyTensor) == [("x", None), ("axis", None)]
    assert _params(fw.module.LazyTensor) == [("x", None), ("axis", None), ("is_complex", False)]
    LT = fw.module.LazyTensor
    assert _params(LT.unary) == [("self", E), ("operation", E), ("dimres", None), ("opt_arg", None),
                                 ("opt_arg2", None), ("is_complex", None)]
    assert _params(LT.binary) == [("self", E), ("other", E), ("operation", E), ("is_operator", False),
                                  ("dimres", None), ("dimcheck", "sameor1"), ("opt_arg", None), ("opt_pos", "last"),
                                  ("rversion", False), ("is_complex", None)]
    assert _params(LT.ternary) == [("self", E), ("other1", E), ("other2", E), ("operation", E), ("dimres", None),
                                   ("dimcheck", "sameor1"), ("opt_arg", None)]
    assert _params(LT.reduction)[:8] == [("self", E), ("reduction_op", E), ("other", None), ("opt_arg", None),
                                         ("axis", None), ("dim", None), ("call", True), ("is_complex", None)]


# ------------------------------------------------------------------------------- LazyTensor: dim, callfun


def test_dim(fw):
    x = fw.array(rng.random((5, 3)))
    assert fw.module.Vi(x).dim() == 3
    batched = fw.module.LazyTensor(fw.array(rng.random((2, 4, 5, 1, 3))))
    assert batched.dim() == 5 == len(batched._shape)
    assert (batched.sqnorm2()).dim() == 5


def test_callfun_of_reduction_and_solve(fw):
    x, b = rng.random((25, 2)), rng.random((25, 1))
    xi, xj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(x))
    K = (-xi.sqdist(xj) * 4).exp()
    red = (K * fw.module.Vj(fw.array(b))).sum(dim=1, call=False)
    assert isinstance(red.callfun, fw.module.Genred)
    np.testing.assert_allclose(fw.numpy(red.callfun(*red.variables)), np.exp(-4 * dense_sqdist(x, x)) @ b,
                               rtol=1e-12)
    solve = K.solve(fw.module.Vi(fw.array(b)), alpha=0.1, eps=1e-12, call=False)
    assert isinstance(solve.callfun, fw.module.KernelSolve)
    np.testing.assert_allclose(fw.numpy(solve()),
                               np.linalg.solve(np.exp(-4 * dense_sqdist(x, x)) + 0.1 * np.eye(25), b), rtol=1e-8)
    with pytest.raises(AttributeError, match="only reduced LazyTensors"):
        K.callfun
    assert not hasattr(K, "callfun")


# ------------------------------------------------------------------------ LazyTensor: unary / binary / ...


def test_unary_binary_ternary_numeric(fw):
    x, y, b = rng.random((12, 3)), rng.random((9, 3)), rng.random((9, 1))
    xi, yj, bj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y)), fw.module.Vj(fw.array(b))
    d2 = xi.binary(yj, "SqDist", dimcheck="same")
    assert d2.ndim == 1 and d2.formula == "SqDist(Var(0,3,0),Var(1,3,1))"
    K = (-d2).unary("Exp")
    out = K.binary(bj, "*", is_operator=True).sum(dim=1)
    np.testing.assert_allclose(fw.numpy(out), np.exp(-dense_sqdist(x, y)) @ b, rtol=1e-12)
    cube = (xi.unary("Pow", opt_arg=3) * bj).sum(dim=1)  # sum over j of x_i^3 b_j
    np.testing.assert_allclose(fw.numpy(cube), x**3 * b.sum(), rtol=1e-12)
    part = xi.unary("Extract", opt_arg=1, opt_arg2=2, dimres=2)
    assert part.ndim == 2
    np.testing.assert_allclose(fw.numpy((part * bj).sum(dim=1)), x[:, 1:3] * b.sum(), rtol=1e-12)
    clamped = (xi - yj).ternary(-0.2, 0.3, "Clamp").sum(dim=1)
    np.testing.assert_allclose(fw.numpy(clamped), np.clip(x[:, None] - y[None], -0.2, 0.3).sum(1), rtol=1e-12)
    # rversion swaps the operands, opt_pos="middle" puts opt_arg between them
    diff = xi.binary(yj, "-", is_operator=True, rversion=True).sum(dim=1)
    np.testing.assert_allclose(fw.numpy(diff), (y[None] - x[:, None]).sum(1), rtol=1e-12)
    elem = (xi.unary("Elem", opt_arg=2) * bj).sum(dim=1)
    np.testing.assert_allclose(fw.numpy(elem)[:, 0], x[:, 2] * b.sum(), rtol=1e-12)


def test_binary_opt_arg_lazy_tensor_and_middle(fw):
    x, y = rng.random((7, 2)), rng.random((6, 2))
    xi, yj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y))
    s = fw.module.Pm(fw.array(np.array([0.5])))
    # IfElse(cond, a, b) written as binary(cond, b, opt_arg=a, opt_pos="middle")
    cond = (xi - yj).sum()
    res = cond.binary(yj.sum(), "IfElse", opt_arg=s, opt_pos="middle").sum(dim=1)
    c = (x[:, None] - y[None]).sum(-1)
    ref = np.where(c >= 0, 0.5, y.sum(-1)[None, :]).sum(1)
    np.testing.assert_allclose(fw.numpy(res)[:, 0], ref, rtol=1e-12)


def test_reduction_method(fw):
    x, y, b = rng.random((10, 2)), rng.random((8, 2)), rng.random((8, 3))
    xi, yj, bj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y)), fw.module.Vj(fw.array(b))
    d2 = dense_sqdist(x, y)
    D = xi.sqdist(yj)
    assert np.array_equal(fw.numpy(D.reduction("ArgKMin", opt_arg=2, axis=1)), np.argsort(d2, 1, kind="stable")[:, :2])
    lse = (-D).reduction("LogSumExp", other=bj, dim=1)
    np.testing.assert_allclose(fw.numpy(lse), np.log(np.exp(-d2) @ b), rtol=1e-12)
    np.testing.assert_allclose(fw.numpy(D.reduction("Min", axis=0)), d2.min(0)[:, None], rtol=1e-12)
    callable_red = D.reduction("Sum", axis=1, call=False)
    np.testing.assert_allclose(fw.numpy(callable_red()), d2.sum(1, keepdims=True), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown reduction_op"):
        D.reduction("Median", axis=1)
    with pytest.raises(ValueError, match="axis"):
        D.reduction("Sum")
    with pytest.raises(ValueError, match="is_complex"):
        D.reduction("Sum", axis=1, is_complex=True)


def test_extension_errors(fw):
    x, y = rng.random((5, 3)), rng.random((4, 2))
    xi, yj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y))
    with pytest.raises(ValueError, match=r"unary\('Foo'\): unknown operation"):
        xi.unary("Foo")
    with pytest.raises(ValueError, match=r"unknown operation"):
        xi.unary("Var")
    with pytest.raises(TypeError, match="a name"):
        xi.unary(len)
    with pytest.raises(ValueError, match="too few arguments"):
        xi.unary("Pow")
    with pytest.raises(ValueError, match="dimres=2 but the operation gives dimension 3"):
        xi.unary("Exp", dimres=2)
    with pytest.raises(TypeError, match="an integer or a list of integers"):
        xi.unary("Pow", opt_arg=0.5)
    with pytest.raises(ValueError, match="opt_arg2 is given without opt_arg"):
        xi.unary("Extract", opt_arg2=1)
    with pytest.raises(ValueError, match="same dimension or of dimension 1, got 3 and 2"):
        xi.binary(yj, "SqDist")
    with pytest.raises(ValueError, match="same dimension, got 3 and 1"):
        xi.binary(yj.sqnorm2(), "Add", dimcheck="same")
    with pytest.raises(ValueError, match="a vector and a scalar"):
        xi.binary(yj, "Mult", dimcheck="vecand1")
    with pytest.raises(ValueError, match="dimcheck must be"):
        xi.binary(xi, "Add", dimcheck="maybe")
    with pytest.raises(ValueError, match="not an infix operator"):
        xi.binary(xi, "^", is_operator=True)
    with pytest.raises(ValueError, match="opt_pos"):
        xi.binary(xi, "Add", opt_arg=1, opt_pos="first")
    with pytest.raises(ValueError, match="SqDist"):  # the engine's own dimension rule, when dimcheck is off
        xi.binary(yj, "SqDist", dimcheck=None)
    with pytest.raises(ValueError, match="reduced LazyTensor"):
        xi.sqnorm2().sum(dim=1, call=False).unary("Exp")
    if fw.name == "torch":
        foreign = importlib.import_module("pykeops.numpy").Vj(rng.random((4, 3)))
        with pytest.raises(TypeError, match="cannot combine"):
            xi.binary(foreign, "Add")


def test_complex_extension(fw):
    z = rng.random((6, 2)) + 1j * rng.random((6, 2))
    zi = fw.module.ComplexLazyTensor(fw.array(z), axis=0)
    mod = zi.unary("ComplexAbs", is_complex=False)
    assert not mod.is_complex and mod.ndim == 2
    np.testing.assert_allclose(fw.numpy(mod.sum(dim=1)), np.abs(z), rtol=1e-12)  # one j: the sum is the term
    e = zi.unary("ComplexExp")
    assert e.is_complex
    np.testing.assert_allclose(fw.numpy(e.reduction("Sum", axis=1)), np.exp(z), rtol=1e-12)
    with pytest.raises(TypeError, match="not defined for complex"):
        zi.unary("Exp")


def test_factorize_and_min_max(fw):
    x, y = rng.random((6, 2)), rng.random((5, 2))
    xi, yj = fw.module.Vi(fw.array(x)), fw.module.Vj(fw.array(y))
    d = xi.sqdist(yj)
    f = (d.exp() + d).factorize(d)
    np.testing.assert_allclose(fw.numpy(f.sum(dim=1))[:, 0], (np.exp(dense_sqdist(x, y)) + dense_sqdist(x, y)).sum(1),
                               rtol=1e-12)
    np.testing.assert_allclose(fw.numpy((d * d).auto_factorize().sum(dim=1))[:, 0], (dense_sqdist(x, y) ** 2).sum(1),
                               rtol=1e-12)
    np.testing.assert_allclose(fw.numpy(d.__min__(dim=1))[:, 0], dense_sqdist(x, y).min(1), rtol=1e-12)
    assert (xi - yj).__max__().formula == "Max((Var(0,2,0) - Var(1,2,1)))"


# ------------------------------------------------------------------------------------------------- keopscore


@pytest.fixture
def fresh_notes(monkeypatch):
    from keopscore import _settings

    monkeypatch.setattr(_settings, "_noted", set())


def test_keopscore_auto_factorize_is_honoured(fw, monkeypatch):
    import keopscore

    x, y = rng.random((8, 2)), rng.random((7, 2))
    g = fw.module.Genred("Exp(-SqDist(x,y)) * SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], axis=1)
    before = fw.numpy(g(fw.array(x), fw.array(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(keopscore, "auto_factorize", True)
    after = fw.numpy(g(fw.array(x), fw.array(y)))
    d2 = dense_sqdist(x, y)
    np.testing.assert_allclose(after[:, 0], (np.exp(-d2) * d2).sum(1), rtol=1e-12)
    assert np.array_equal(before, after)


def test_keopscore_no_effect_settings_note_once(fresh_notes, monkeypatch):
    import keopscore
    import keopscore.config.chunks as chunks

    with pytest.warns(UserWarning, match="keopscore.debug_ops has no effect"):
        monkeypatch.setattr(keopscore, "debug_ops", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, and the default value is never noted
        monkeypatch.setattr(keopscore, "debug_ops", True)
        monkeypatch.setattr(keopscore, "debug_ops_at_exec", False)
        monkeypatch.setattr(keopscore, "cuda_block_size", 192)
    with pytest.warns(UserWarning, match="cuda_block_size has no effect"):
        keopscore.cuda_config.set_cuda_block_size(256)
    assert keopscore.cuda_config.get_cuda_block_size() == 256
    monkeypatch.setattr(keopscore, "cuda_block_size", 192)
    with pytest.warns(UserWarning, match="enable_chunk has no effect"):
        chunks.set_enable_chunk(0)
    assert chunks.get_enable_chunk() is False
    monkeypatch.setattr(chunks, "enable_chunk", True)
    assert keopscore.config.chunks is chunks


def test_keopscore_build_folder_and_tools(tmp_path, capsys):
    import keopscore

    old = pykeops.get_build_folder()
    try:
        keopscore.set_build_folder(str(tmp_path))
        assert pykeops.get_build_folder() == str(tmp_path) == keopscore.build_folder
        assert keopscore.config.get_build_folder() == str(tmp_path) == keopscore.get_build_folder()
        x = np.arange(6.0).reshape(3, 2)
        importlib.import_module("pykeops.numpy").Genred("SqNorm2(x)", ["x = Vi(2)"], axis=1)(x)  # a kernel lands in the new folder
        keopscore.clean_keops()
        assert not any(p.suffix == ".o" for p in tmp_path.iterdir())
    finally:
        pykeops.set_build_folder(old)
    keopscore.check_health()
    assert "[pyKeOps]" in capsys.readouterr().out
    assert keopscore.show_cuda_status == pykeops.config.gpu_available == keopscore.cuda_config.get_use_cuda()
    assert keopscore.openmp_config.get_use_OpenMP() is True
    with pytest.raises(AttributeError):
        keopscore.no_such_setting
