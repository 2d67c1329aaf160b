"""PyTorch autograd through pykeops reductions: any order, forward mode, torch.func, Min/Max/KMin through the
selected pairs; every differentiable operation checked with gradcheck in float64."""
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.autograd import gradcheck, gradgradcheck  # noqa: E402

from pykeops.torch import Genred, LazyTensor, Vi, Vj  # noqa: E402

from test_op_table import ARGS, CASES  # noqa: E402

# Operations whose derivative is zero almost everywhere, or that are not differentiable where the test samples.
PIECEWISE_CONSTANT = {"Sign", "Step", "Floor", "Round", "Equal", "NotEqual", "LessThan", "LessOrEqual", "ArgMax",
                      "ArgMin", "OneHot", "DiffClampInt"}


# Arguments that the engine documents as not differentiable (NotSupported naming them).
CONSTANT_ARGS = {"SoftDTW_SqDist": {"q"}, "GradSoftDTW_SqDist": {"x", "y", "q"}, "BSpline": {"K"}}


def tensors_for(names, M, N, seed, constant=()):
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        cat, dim, dom = ARGS[name]
        if name == "K":
            a = np.sort(rng.uniform(-2.5, 2.5, dim))
        else:
            a = rng.uniform(*dom, size=(((M, N, 1)[cat], dim) if cat < 2 else (dim,)))
        out.append(torch.tensor(a, dtype=torch.float64, requires_grad=name not in constant and name != "n"))
    return out


GRAD_CASES = [(op, f, ref) for op, cases in CASES.items() for f, ref in cases[:1]
              if op not in PIECEWISE_CONSTANT and op != "GradSoftDTW_SqDist"]  # its own derivative is not supported


@pytest.mark.parametrize("op,formula,ref", GRAD_CASES, ids=[f"{op}:{f}" for op, f, _ in GRAD_CASES])
def test_gradcheck_every_operation(op, formula, ref):
    names = list(ref.__code__.co_varnames[: ref.__code__.co_argcount])
    names += [n for n in ("s", "t") if n not in names]
    args = tensors_for(names, 4, 5, zlib.crc32(formula.encode()), CONSTANT_ARGS.get(op, ()))
    aliases = [f"{n} = {('Vi', 'Vj', 'Pm')[ARGS[n][0]]}({ARGS[n][1]})" for n in names]
    g = Genred(formula, aliases, reduction_op="Sum", axis=1)
    assert gradcheck(lambda *a: g(*a), args, eps=1e-6, atol=1e-5, rtol=1e-4)
    if op not in ("SoftDTW_SqDist", "BSpline", "Clamp", "ClampInt", "ReLU", "Abs", "Max", "Min", "Mod", "IfElse"):
        assert gradgradcheck(lambda *a: g(*a), args, eps=1e-6, atol=1e-5, rtol=1e-4)


def gaussian_dense(x, y, b):
    return (torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)) @ b)


def test_third_order_derivative_of_a_gaussian_sum():
    torch.manual_seed(0)
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(7, 2, dtype=torch.float64)
    b = torch.randn(7, 1, dtype=torch.float64)
    ours = lambda x: (LazyTensor(x[:, None, :]) - LazyTensor(y[None])).sqnorm2().__neg__().exp().__matmul__(b)  # noqa: E731
    results = []
    for f in (ours, lambda x: gaussian_dense(x, y, b)):
        v = f(x).sum()
        (g1,) = torch.autograd.grad(v, x, create_graph=True)
        (g2,) = torch.autograd.grad((g1 ** 2).sum(), x, create_graph=True)
        (g3,) = torch.autograd.grad(g2.sin().sum(), x)
        results.append((v.detach(), g1.detach(), g2.detach(), g3))
    for a, b_ in zip(*results):
        torch.testing.assert_close(a, b_, rtol=1e-10, atol=1e-12)


def test_parameters_batch_and_both_axes():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)   # batch 2
    y = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)   # broadcast batch
    s = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    g = Genred("Exp(-SqDist(x,y)*s)", ["x = Vi(3)", "y = Vj(3)", "s = Pm(1)"], axis=0)
    assert gradcheck(lambda *a: g(*a), (x, y, s))
    assert gradgradcheck(lambda *a: g(*a), (x, y, s))


def test_logsumexp_and_softmax_gradients():
    torch.manual_seed(2)
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    lse = Genred("-SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op="LogSumExp", axis=1)
    assert gradcheck(lambda *a: lse(*a), (x, y))
    assert gradgradcheck(lambda *a: lse(*a), (x, y))
    sm = Genred("-SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)", "w = Vj(3)"], reduction_op="SumSoftMaxWeight",
                formula2="w", axis=1)
    assert gradcheck(lambda *a: sm(*a), (x, y, w))
    dense = torch.logsumexp(-((x[:, None] - y[None]) ** 2).sum(-1), dim=1, keepdim=True)
    (ga,) = torch.autograd.grad(lse(x, y).sum(), x)
    (gb,) = torch.autograd.grad(dense.sum(), x)
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("op", ["min", "max", "Kmin"])
def test_min_max_kmin_gradients_follow_the_selected_pairs(op):
    torch.manual_seed(3)
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    D = ((x[:, None] - y[None]) ** 2).sum(-1)
    D_ij = (Vi(x) - Vj(y)).sqnorm2()
    if op == "min":
        ours, dense = D_ij.min(dim=1), D.min(dim=1, keepdim=True).values
    elif op == "max":
        ours, dense = D_ij.max(dim=1), D.max(dim=1, keepdim=True).values
    else:
        ours, dense = D_ij.Kmin(3, dim=1), torch.topk(D, 3, dim=1, largest=False).values
    w = torch.randn_like(dense)
    ga = torch.autograd.grad((ours * w).sum(), (x, y))
    gb = torch.autograd.grad((dense * w).sum(), (x, y))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("op", ["Min", "Max", "KMin"])
@pytest.mark.parametrize("axis", [0, 1])
def test_min_max_kmin_gradients_with_batch_dimensions(op, axis):
    """Batch dims (one broadcast), a parameter and a 2-component formula: gradients and forward-mode derivatives
    through the pairs selected in each batch, against torch.min / max / topk on the dense batched matrix."""
    torch.manual_seed(5)
    x = torch.randn(3, 6, 2, dtype=torch.float64, requires_grad=True)    # Vi, batch 3
    y = torch.randn(1, 8, 2, dtype=torch.float64, requires_grad=True)    # Vj, broadcast over the batch
    p = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)       # Pm, one per batch
    kw = {"opt_arg": 3} if op == "KMin" else {}
    g = Genred("(x-y)*(x-y)*p", ["x = Vi(2)", "y = Vj(2)", "p = Pm(2)"], reduction_op=op, axis=axis, **kw)
    F = (x[:, :, None] - y[:, None]) ** 2 * p[:, None, None]             # (3, 6, 8, 2)
    red = 2 if axis == 1 else 1

    def dense(F):
        if op == "Min":
            return F.min(dim=red).values
        if op == "Max":
            return F.max(dim=red).values
        v = torch.topk(F, 3, dim=red, largest=False).values              # (3, rows, 3, 2): rank-major like KeOps
        return v.movedim(red, -2) if red == 1 else v
    ours, ref = g(x, y, p), dense(F)
    ref = ref.reshape(ours.shape)
    torch.testing.assert_close(ours, ref)
    w = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad((ours * w).sum(), (x, y, p)), torch.autograd.grad((ref * w).sum(), (x, y, p))):
        torch.testing.assert_close(a, b)
    tangents = tuple(torch.randn_like(t) for t in (x, y, p))
    _, jo = torch.func.jvp(lambda *a: g(*a), (x.detach(), y.detach(), p.detach()), tangents)
    _, jd = torch.func.jvp(lambda x, y, p: dense((x[:, :, None] - y[:, None]) ** 2 * p[:, None, None]).reshape(ours.shape),
                           (x.detach(), y.detach(), p.detach()), tangents)
    torch.testing.assert_close(jo, jd)


@pytest.mark.parametrize("op", ["Min", "Max"])
def test_min_max_over_an_empty_set_have_zero_derivatives(op):
    """As without grad: +-inf values (nothing is selected); their gradient and tangent are zero, not an error."""
    g = Genred("SqDist(x,y)", ["x = Vi(2)", "y = Vj(2)"], reduction_op=op, axis=1)
    x, y = torch.randn(3, 2, dtype=torch.float64, requires_grad=True), torch.zeros(0, 2, dtype=torch.float64)
    out = g(x, y)
    assert torch.equal(out, torch.full((3, 1), float("inf") if op == "Min" else -float("inf"), dtype=torch.float64))
    (gx,) = torch.autograd.grad(out.clamp(-1, 1).sum(), x)
    assert torch.equal(gx, torch.zeros_like(x))
    _, t = torch.func.jvp(lambda x: g(x, y), (x.detach(),), (torch.ones_like(x),))
    assert torch.equal(t, torch.zeros(3, 1, dtype=torch.float64))


def test_torch_func_hessian_jacfwd_and_vmap():
    torch.manual_seed(4)
    y = torch.randn(7, 2, dtype=torch.float64)
    b = torch.randn(7, 1, dtype=torch.float64)
    g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"], axis=1)
    x = torch.randn(3, 2, dtype=torch.float64)
    f_ours = lambda x: g(x, y, b).sum()  # noqa: E731
    f_dense = lambda x: gaussian_dense(x, y, b).sum()  # noqa: E731
    torch.testing.assert_close(torch.func.hessian(f_ours)(x), torch.func.hessian(f_dense)(x))
    torch.testing.assert_close(torch.func.jacfwd(lambda x: g(x, y, b))(x), torch.func.jacfwd(lambda x: gaussian_dense(x, y, b))(x))
    torch.testing.assert_close(torch.func.jacrev(lambda x: g(x, y, b))(x), torch.func.jacrev(lambda x: gaussian_dense(x, y, b))(x))
    clouds = torch.randn(4, 3, 2, dtype=torch.float64)
    batched = torch.func.vmap(lambda c: g(c, y, b))(clouds)
    loop = torch.stack([g(c, y, b) for c in clouds])
    torch.testing.assert_close(batched, loop)
    tangent = torch.randn_like(x)
    _, jvp_ours = torch.func.jvp(lambda x: g(x, y, b), (x,), (tangent,))
    _, jvp_dense = torch.func.jvp(lambda x: gaussian_dense(x, y, b), (x,), (tangent,))
    torch.testing.assert_close(jvp_ours, jvp_dense)


def test_inputs_without_grad_get_none_and_no_graph_without_grad():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64)
    out = (Vi(x) - Vj(y)).sqnorm2().sum(dim=1)
    out.sum().backward()
    assert x.grad is not None and y.grad is None
    with torch.no_grad():
        assert (Vi(x) - Vj(y)).sqnorm2().sum(dim=1).grad_fn is None


def test_argmin_indices_are_not_differentiable():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64)
    idx = (Vi(x) - Vj(y)).sqnorm2().argmin(dim=1)
    assert idx.dtype == torch.int64 and not idx.requires_grad


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_symbolic_derivative_methods(framework):
    import importlib
    mod = importlib.import_module(f"pykeops.{framework}")
    rng = np.random.default_rng(5)
    x, y, e = rng.normal(size=(4, 3)), rng.normal(size=(6, 3)), rng.normal(size=(4, 1))
    conv = (lambda a: a) if framework == "numpy" else torch.from_numpy
    x_i, y_j, e_i = mod.Vi(conv(x)), mod.Vj(conv(y)), mod.Vi(conv(e))
    k = (-((x_i - y_j) ** 2).sum()).exp()
    d = x[:, None, :] - y[None]
    ker = np.exp(-(d ** 2).sum(-1))
    as_np = (lambda a: a) if framework == "numpy" else (lambda a: a.numpy())
    np.testing.assert_allclose(as_np(k.grad(x_i, e_i).sum(dim=1)), (-2 * d * ker[..., None] * e[:, None]).sum(1), rtol=1e-10)
    np.testing.assert_allclose(as_np(k.diff(x_i, y_j).sum(dim=1)), (-2 * (d * y[None]).sum(-1) * ker).sum(1, keepdims=True),
                               rtol=1e-10)
    np.testing.assert_allclose(as_np(k.laplacian(x_i).sum(dim=1)), ((4 * (d ** 2).sum(-1) - 6) * ker).sum(1, keepdims=True),
                               rtol=1e-10)
    np.testing.assert_allclose(as_np((x_i * y_j).divergence(x_i).sum(dim=1)), np.tile(y.sum(), (4, 1)), rtol=1e-10)
    np.testing.assert_allclose(as_np((x_i * y_j).trace_operator(x_i).sum(dim=1)), np.tile(y.sum(), (4, 1)), rtol=1e-10)
    gm = as_np((x_i * y_j).grad_matrix(x_i).sum(dim=1))
    np.testing.assert_allclose(gm, np.tile(np.diag(y.sum(0)).ravel(), (4, 1)), rtol=1e-10)
    with pytest.raises(ValueError, match="grad: the gradient input has dim 3"):
        k.grad(x_i, x_i)
    # symbolic variables: a callable reduction
    sym = (mod.Vi(0, 3) - mod.Vj(1, 3)).sqnorm2().grad(mod.Vi(0, 3), mod.Vi(2, 1)).sum(dim=1)
    np.testing.assert_allclose(as_np(sym(conv(x), conv(y), conv(e))), (2 * d * e[:, None]).sum(1), rtol=1e-10)


def test_kernel_solve_gradients_by_implicit_differentiation():
    from pykeops.torch import KernelSolve

    torch.manual_seed(6)
    x = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, 1, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    solver = KernelSolve("Exp(-SqDist(x,y)*s)*a", ["x = Vi(2)", "y = Vj(2)", "a = Vj(1)", "s = Pm(1)"], "a", axis=1)
    f = lambda x, b, s: solver(x, x, b, s, alpha=0.5, eps=1e-12)  # noqa: E731
    dense = lambda x, b, s: torch.linalg.solve(  # noqa: E731
        0.5 * torch.eye(8, dtype=torch.float64) + torch.exp(-((x[:, None] - x[None]) ** 2).sum(-1) * s), b)
    torch.testing.assert_close(f(x, b, s), dense(x, b, s))
    w = torch.randn(8, 1, dtype=torch.float64)
    ga = torch.autograd.grad((f(x, b, s) * w).sum(), (x, b, s))
    gb = torch.autograd.grad((dense(x, b, s) * w).sum(), (x, b, s))
    for p, q in zip(ga, gb):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)
    # forward mode: da = (alpha Id + K)^-1 (db - dK a), and jacfwd built on it
    tangents = tuple(torch.randn_like(t) for t in (x, b, s))
    primals = tuple(t.detach() for t in (x, b, s))
    _, ja = torch.func.jvp(f, primals, tangents)
    _, jb = torch.func.jvp(dense, primals, tangents)
    torch.testing.assert_close(ja, jb, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(torch.func.jacfwd(f, argnums=2)(*primals), torch.func.jacfwd(dense, argnums=2)(*primals),
                               rtol=1e-7, atol=1e-9)
    bs = torch.randn(3, 8, 1, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(lambda b: f(primals[0], b, primals[2]))(bs),
                               torch.stack([dense(primals[0], b, primals[2]) for b in bs]), rtol=1e-7, atol=1e-9)


def test_gradients_through_block_sparse_ranges():
    from pykeops.torch.cluster import from_matrix

    torch.manual_seed(7)
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    ranges_i = torch.tensor([[0, 3], [3, 6]])
    ranges_j = torch.tensor([[0, 4], [4, 8]])
    keep = torch.tensor([[True, False], [True, True]])
    ranges = from_matrix(ranges_i, ranges_j, keep)
    mask = torch.zeros(6, 8, dtype=torch.float64)
    mask[0:3, 0:4] = 1
    mask[3:6, :] = 1
    for axis in (0, 1):
        g = Genred("Exp(-SqDist(x,y))", ["x = Vi(2)", "y = Vj(2)"], axis=axis)
        f = lambda x, y: g(x, y, ranges=ranges)  # noqa: E731
        dense = lambda x, y: (torch.exp(-((x[:, None] - y[None]) ** 2).sum(-1)) * mask).sum(axis)[:, None]  # noqa: E731
        torch.testing.assert_close(f(x, y), dense(x, y))
        assert gradcheck(f, (x, y))
        ga = torch.autograd.grad(f(x, y).sum(), (x, y))
        gb = torch.autograd.grad(dense(x, y).sum(), (x, y))
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b)


def test_forward_mode_through_min_and_logsumexp():
    torch.manual_seed(8)
    x = torch.randn(5, 2, dtype=torch.float64)
    y = torch.randn(7, 2, dtype=torch.float64)
    t = torch.randn_like(x)
    D = lambda x: ((x[:, None] - y[None]) ** 2).sum(-1)  # noqa: E731
    for ours, dense in [
        (lambda x: (Vi(x) - Vj(y)).sqnorm2().min(dim=1), lambda x: D(x).min(1, keepdim=True).values),
        (lambda x: (-(Vi(x) - Vj(y)).sqnorm2()).logsumexp(dim=1), lambda x: torch.logsumexp(-D(x), 1, keepdim=True)),
    ]:
        _, a = torch.func.jvp(ours, (x,), (t,))
        _, b = torch.func.jvp(dense, (x,), (t,))
        torch.testing.assert_close(a, b)
