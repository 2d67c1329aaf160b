"""KernelSolve and LazyTensor.solve: conjugate gradient on (alpha Id + K) a = b against numpy.linalg.solve."""

import numpy as np
import pytest

from pykeops.common.operations import alias_position, conjugate_gradient

pytestmark = pytest.mark.engine

M, D, E = 40, 2, 3
ALPHA, SCALE = 0.5, 4.0


def problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (M, D)).astype(dtype)
    b = rng.standard_normal((M, E)).astype(dtype)
    K = np.exp(-SCALE * ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    return x, b, K


def dense_solution(K, b, alpha=ALPHA):
    return np.linalg.solve(alpha * np.eye(len(K)) + K, b.astype(np.float64))


def assert_solves(K, a, b, eps, alpha=ALPHA):
    """The CG stopping rule: ||r||^2 < numel(b) * eps^2 (r evaluated densely in float64, with some slack)."""
    a = np.asarray(a, dtype=np.float64)
    r = b - (alpha * a + K @ a)
    assert (r**2).sum() < 4 * b.size * eps**2
    np.testing.assert_allclose(a, dense_solution(K, b, alpha), atol=20 * eps)


GAUSS = "Exp(-g * SqDist(x, y)) * b"
ALIASES = ["x = Vi(2)", "y = Vj(2)", "b = Vj(3)", "g = Pm(1)"]


@pytest.mark.parametrize("eps", [1e-6, 1e-10])
def test_kernel_solve(fw, eps):
    x, b, K = problem()
    solver = fw.module.KernelSolve(GAUSS, ALIASES, "b", axis=1)
    a = solver(fw.array(x), fw.array(x), fw.array(b), fw.array(np.array([SCALE])), alpha=ALPHA, eps=eps)
    assert tuple(a.shape) == b.shape
    assert_solves(K, fw.numpy(a), b, eps)


def test_kernel_solve_float32(fw):
    x, b, K = problem(np.float32)
    solver = fw.module.KernelSolve(GAUSS, ALIASES, "b", axis=1)
    a = solver(*(fw.array(v) for v in (x, x, b, np.array([SCALE], dtype=np.float32))), alpha=ALPHA, eps=1e-4)
    assert fw.numpy(a).dtype == np.float32
    assert_solves(K, fw.numpy(a), b.astype(np.float64), 1e-4)


@pytest.mark.parametrize(
    "aliases, formula, varinvalias, order",
    [
        (["g = Pm(1)", "b = Vj(3)", "y = Vj(2)", "x = Vi(2)"], GAUSS, "b", (3, 2, 1, 0)),
        (["x = Vi(0,2)", "y = Vj(1,2)", "b = Vj(2,3)", "g = Pm(3,1)"], GAUSS, "b", (0, 1, 2, 3)),
        (["Vi(0,2)", "Vj(1,2)", "Vj(2,3)", "Pm(3,1)"], "Exp(-Var(3,1,2) * SqDist(Var(0,2,0), Var(1,2,1))) * Var(2,3,1)",
         "Var(2,3,1)", (0, 1, 2, 3)),
    ],
)
def test_kernel_solve_alias_forms(fw, aliases, formula, varinvalias, order):
    x, b, K = problem()
    values = [x, x, b, np.array([SCALE])]
    solver = fw.module.KernelSolve(formula, aliases, varinvalias, axis=1)
    a = solver(*(fw.array(values[k]) for k in order), alpha=ALPHA, eps=1e-10)
    assert_solves(K, fw.numpy(a), b, 1e-10)


def test_alias_position():
    aliases = ["x = Vi(2)", "y=Vj(3, 2)", "b = Var(1,3,1)", "Vj(4,1)"]
    assert alias_position(aliases, "x") == 0 and alias_position(aliases, "y") == 3
    assert alias_position(aliases, " b ") == 1 and alias_position(aliases, "Var(4,1,1)") == 4
    with pytest.raises(ValueError, match="names no variable"):
        alias_position(aliases, "z")
    with pytest.raises(TypeError, match="string"):
        alias_position(aliases, 2)


def test_conjugate_gradient_on_a_dense_system():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 30))
    A = A @ A.T + 30 * np.eye(30)
    b = rng.standard_normal((30, 2))
    a = conjugate_gradient(lambda v: A @ v, b, 1e-12)
    np.testing.assert_allclose(a, np.linalg.solve(A, b), atol=1e-10)
    assert (conjugate_gradient(lambda v: A @ v, np.zeros((30, 2)), 1e-6) == 0).all()
    with pytest.warns(RuntimeWarning, match="stopped after 2 iterations"):
        conjugate_gradient(lambda v: A @ v, b, 1e-12, maxiter=2)
    with pytest.raises(ValueError, match="positive definite"):
        conjugate_gradient(lambda v: -v, b, 1e-6)


def test_kernel_solve_errors(fw):
    x, b, _ = problem()
    args = [fw.array(v) for v in (x, x, b, np.array([SCALE]))]
    solver = fw.module.KernelSolve(GAUSS, ALIASES, "b", axis=1)
    with pytest.raises(ValueError, match="alpha"):
        solver(*args, alpha=-1.0)
    with pytest.raises(ValueError, match="eps"):
        solver(*args, eps=0)
    with pytest.raises(ValueError, match="square system"):
        solver(args[0][:10], *args[1:])
    with pytest.raises(ValueError, match="names no variable"):
        fw.module.KernelSolve(GAUSS, ALIASES, "c", axis=1)


def test_kernel_solve_gradient_with_respect_to_the_right_hand_side():
    torch = pytest.importorskip("torch")
    import pykeops.torch

    x, b, _ = problem()
    args = [torch.from_numpy(v) for v in (x, x, b, np.array([SCALE]))]
    args[2].requires_grad_(True)
    solver = pykeops.torch.KernelSolve(GAUSS, ALIASES, "b", axis=1)
    a = solver(*args, alpha=ALPHA)
    assert a.requires_grad
    # d <w, a> / d b = (alpha Id + K)^-1 w: the solve of w itself
    w = torch.ones_like(a)
    (g,) = torch.autograd.grad((a * w).sum(), args[2])
    with torch.no_grad():
        expected = solver(args[0], args[1], w, args[3], alpha=ALPHA)
    torch.testing.assert_close(g, expected)


# ------------------------------------------------------------------------------------- LazyTensor.solve


def gaussian_lazy(fw, x):
    lt = fw.module
    return (-SCALE * lt.Vi(fw.array(x)).sqdist(lt.Vj(fw.array(x)))).exp()


def test_lazytensor_solve(fw):
    x, b, K = problem()
    K_ij = gaussian_lazy(fw, x)
    a = K_ij.solve(fw.array(b), alpha=ALPHA, eps=1e-10)
    assert_solves(K, fw.numpy(a), b, 1e-10)
    a = K_ij.solve(fw.module.Vi(fw.array(b)), alpha=ALPHA, eps=1e-10)  # the right-hand side as a Vi variable
    assert_solves(K, fw.numpy(a), b, 1e-10)
    a = fw.module.LazyTensor.solve(K_ij, fw.module.Vj(fw.array(b)), alpha=ALPHA, eps=1e-10)  # a Vj one, unbound call
    assert_solves(K, fw.numpy(a), b, 1e-10)


def test_lazytensor_solve_call_false(fw):
    x, b, K = problem()
    solver = gaussian_lazy(fw, x).solve(fw.array(b), alpha=ALPHA, call=False)
    assert callable(solver) and solver.reduction_op == "Solve"
    assert_solves(K, fw.numpy(solver(eps=1e-10)), b, 1e-10)


def test_lazytensor_solve_with_symbolic_variables(fw):
    x, b, K = problem()
    lt = fw.module
    K_ij = (-SCALE * lt.Vi(0, D).sqdist(lt.Vj(1, D))).exp()
    a_j = lt.Vj(2, E)
    solver = (K_ij * a_j).solve(fw.array(b), var=a_j, alpha=ALPHA, eps=1e-10)  # var given: K linear in it
    assert callable(solver)
    assert_solves(K, fw.numpy(solver(fw.array(x), fw.array(x))), b, 1e-10)
    solver = K_ij.solve(fw.array(b), alpha=ALPHA, eps=1e-10)  # a new symbolic variable Var(2, E, 1)
    assert callable(solver)
    with pytest.raises(ValueError, match=r"one argument per symbolic variable \(Var\(0, 2, 0\), Var\(1, 2, 1\)\)"):
        solver(fw.array(x))
    assert_solves(K, fw.numpy(solver(fw.array(x), fw.array(x))), b, 1e-10)


def test_lazytensor_solve_with_batch_dimensions(fw):
    x, b, K = problem()
    x2, b2, K2 = problem(seed=1)
    xs, bs = np.stack([x, x2]), np.stack([b, b2])
    lt = fw.module
    K_ij = (-SCALE * lt.LazyTensor(fw.array(xs[:, :, None])).sqdist(lt.LazyTensor(fw.array(xs[:, None])))).exp()
    a = fw.numpy(K_ij.solve(fw.array(bs), alpha=ALPHA, eps=1e-10))
    assert a.shape == (2, M, E)
    assert_solves(K, a[0], b, 1e-10)
    assert_solves(K2, a[1], b2, 1e-10)


def test_lazytensor_solve_errors(fw):
    x, b, _ = problem()
    K_ij = gaussian_lazy(fw, x)
    lt = fw.module
    with pytest.raises(ValueError, match="right-hand side"):
        K_ij.solve(lt.Vi(fw.array(b)) * 2)
    with pytest.raises(ValueError, match="right-hand side"):
        K_ij.solve(fw.array(b[:, 0]))
    with pytest.raises(TypeError, match="right-hand side"):
        K_ij.solve([1.0, 2.0])
    with pytest.raises(ValueError, match="var must be a symbolic"):
        K_ij.solve(fw.array(b), var=lt.Vj(fw.array(b)))
    with pytest.raises(ValueError, match="does not contain var"):
        K_ij.solve(fw.array(b), var=lt.Vj(0, E))
    with pytest.raises(TypeError, match="unexpected keyword"):
        K_ij.solve(fw.array(b), out=None)
