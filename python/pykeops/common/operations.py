"""KernelSolve: solves (alpha * Id + K) a = b by conjugate gradient, K a Sum reduction linear in one variable."""

import math
import re
import time
import warnings

from . import log
from .tools import as_real, type_name

# One alias: "x = Vi(3)", "x = Vi(0,3)", "x = Var(0,3,0)", "Vi(0,3)", "Var(0,3,0)" (Vx/Vy: legacy Vi/Vj).
_ALIAS = re.compile(r"^\s*(?:(\w+)\s*=\s*)?(Vi|Vj|Pm|Vx|Vy|Var)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)\s*$")


def _explicit_position(match):
    """Position written in a variable expression ("Vi(2,3)", "Var(2,3,0)"), or None for "Vi(3)"."""
    kind, first, second = match.group(2), match.group(3), match.group(4)
    if kind == "Var" or second is not None:
        return int(first)
    return None


def alias_position(aliases, varinvalias):
    """Argument position of the variable named varinvalias: an alias name, or a "Var(pos,dim,cat)" / "Vi(pos,dim)"."""
    if not isinstance(varinvalias, str):
        raise TypeError(f"varinvalias must be a string (an alias name or 'Var(pos,dim,cat)'), got {type_name(varinvalias)}")
    name = varinvalias.strip()
    for k, alias in enumerate(aliases):
        m = _ALIAS.match(alias)
        if m is not None and m.group(1) == name:
            pos = _explicit_position(m)
            return k if pos is None else pos
    m = _ALIAS.match(name)
    if m is not None and m.group(1) is None and _explicit_position(m) is not None:
        return _explicit_position(m)
    raise ValueError(
        f"varinvalias {varinvalias!r} names no variable of the aliases {aliases}: give an alias name or "
        "'Var(pos,dim,cat)'"
    )


# The user-facing docstring of KernelSolve, filled in per framework (pykeops.numpy and pykeops.torch).
KERNEL_SOLVE_DOC = """Solves (alpha * Id + K) a = b for a by conjugate gradient, K the map a -> Sum_j F(x_i, y_j, a_j).

    Typical use: kernel ridge regression or RBF interpolation, where K is a symmetric positive (semi-)definite kernel
    matrix such as exp(-|x_i - x_j|^2 / s^2) on one point cloud; alpha > 0 makes the system well conditioned. K
    is never stored: every conjugate-gradient step runs one reduction. No symmetry check is made.

    Args:
        formula (str): a KeOps formula linear in the variable varinvalias, e.g. ``"Exp(-g * SqDist(x,y)) * b"``.
        aliases (list of str): the argument declarations, as for Genred (``"x = Vi(3)"``, ``"b = Vj(1)"``, ...).
        varinvalias (str): the alias name (or ``"Var(pos,dim,cat)"``) of the unknown; the argument given at its
            position is the right-hand side b.
        axis (int): the reduction axis, as for Genred (0 or 1; the system must be square).
        dtype_acc, use_double_acc, sum_scheme, enable_chunks, use_fast_math: as for Genred.

    Calling the object, ``solver(*args, alpha=1e-10, eps=1e-6, backend="auto", device_id=-1, ranges=None)``,
    solves with the right-hand side at the position of varinvalias, to a residual below eps (alpha >= 0 and
    eps > 0 are numbers).{grad}

    Returns:
        {returns} of b's shape: the solution a.

    Example:
        >>> formula, aliases = "Exp(-SqDist(x,y)) * b", ["x = Vi(2)", "y = Vj(2)", "b = Vj(1)"]
        >>> solver = KernelSolve(formula, aliases, "b", axis=1)
        >>> {example}
        >>> a = solver(x, x, b, alpha=0.1)
        >>> K = Genred(formula, aliases, axis=1)
        >>> bool(abs(K(x, x, a) + 0.1 * a - b).max() < 1e-4)
        True
    """


def conjugate_gradient(linop, b, eps, maxiter=None, linop_b=None, total=None):
    """Solve linop(a) = b for a symmetric positive definite linop; stop when ||r||^2 < numel(b) * eps^2.

    linop maps an array shaped like b to one; only out-of-place arithmetic is used, so it works for NumPy
    arrays and torch tensors alike. Starts from a = 0. Warns if maxiter (default max(100, 2 numel(b))) steps
    do not reach the tolerance and returns the last iterate. linop_b: linop(b) when already known.
    total(x): the sum of a float over every shard of a sharded system (dot products, sizes); default: one shard.
    """
    total = total or float
    n = int(total(math.prod(b.shape)))
    a = 0 * b
    if n == 0:
        return a
    tol = n * eps**2
    r = b
    nr2 = total(float((r * r).sum()))
    if nr2 < tol:
        return a
    p = r
    maxiter = max(100, 2 * n) if maxiter is None else maxiter
    start = time.perf_counter()
    with log.progress("KernelSolve") as progress:
        for it in range(maxiter):
            Kp = linop_b if it == 0 and linop_b is not None else linop(p)
            pKp = total(float((p * Kp).sum()))
            if not pKp > 0:
                raise ValueError(
                    f"conjugate gradient broke down (p^T (alpha Id + K) p = {pKp}): the system must be symmetric "
                    "positive definite; a larger alpha may help"
                )
            step = nr2 / pKp
            a = a + step * p
            r = r - step * Kp
            nr2_new = total(float((r * r).sum()))
            if nr2_new < tol:
                _log_solve(it + 1, nr2_new, tol, start)
                return a
            p = r + (nr2_new / nr2) * p
            nr2 = nr2_new
            progress.step(f": iteration {it + 1}, ||r||^2 = {nr2:.2e} (stops below {tol:.2e})")
    _log_solve(maxiter, nr2, tol, start)
    warnings.warn(
        f"conjugate gradient stopped after {maxiter} iterations with ||r||^2 = {nr2:.3e} > numel(b) * eps^2 = "
        f"{tol:.3e}: eps may be too small for the dtype, or the system ill-conditioned",
        RuntimeWarning, stacklevel=3,
    )
    return a


def _log_solve(iterations, nr2, tol, start):
    if log.logger.isEnabledFor(log.logging.INFO):
        log.logger.info("KernelSolve: %d conjugate gradient iterations in %.1f ms, ||r||^2 = %.2e (%s %.2e)",
                        iterations, 1e3 * (time.perf_counter() - start), nr2, "<" if nr2 < tol else ">=", tol)


class GenericKernelSolve:
    """Solver of (alpha * Id + K) a = b, K(a) = Sum_Reduction(formula) linear in the variable varinvalias.

    Subclasses set `Genred` (the framework's Genred class). The argument given at the position of varinvalias
    is the right-hand side b; the result has b's shape. No symmetry check is made: K should be symmetric
    positive (semi-)definite, e.g. a Gaussian kernel matrix evaluated on one point cloud for both i and j.
    """

    Genred = None

    def __init__(
        self, formula, aliases, varinvalias, axis=0, dtype_acc="auto", use_double_acc=False, sum_scheme="auto",
        enable_chunks=True, rec_multVar_highdim=None, dtype=None, cuda_type=None, use_fast_math=True,
    ):
        # (the parameters in pykeops.torch.KernelSolve's order; pykeops.numpy.KernelSolve has its own)
        self.genred = self.Genred(
            formula, aliases, reduction_op="Sum", axis=axis, dtype=dtype, cuda_type=cuda_type, dtype_acc=dtype_acc,
            use_double_acc=use_double_acc, sum_scheme=sum_scheme, enable_chunks=enable_chunks,
            rec_multVar_highdim=bool(rec_multVar_highdim), use_fast_math=use_fast_math,
        )
        self.varinvpos = alias_position(self.genred.aliases, varinvalias)
        self.formula, self.aliases, self.axis = formula, self.genred.aliases, self.genred.axis

    def __call__(self, *args, backend="auto", device_id=-1, alpha=1e-10, eps=1e-6, ranges=None, group=None):
        tools = self.Genred.tools
        pos = self.varinvpos
        if pos >= len(args):
            raise ValueError(f"the variable to solve for is argument {pos} but only {len(args)} arguments were given")
        # alpha and eps are constants (as in KeOps: no gradient flows to alpha); one-element arrays are accepted.
        alpha_value, eps_value = as_real(alpha), as_real(eps)
        if alpha_value is None or not alpha_value >= 0:
            raise ValueError(f"alpha must be a real number >= 0, got {alpha!r}")
        if eps_value is None or not eps_value > 0:
            raise ValueError(f"eps must be a real number > 0, got {eps!r}")
        alpha, eps = alpha_value, eps_value
        if group is not None:  # each rank holds a shard of the points and of b (pykeops.torch.distributed)
            return tools.sharded_solve(self, args, group, backend, device_id, alpha, eps, ranges)
        if tools.compiled is not None and tools.compiled.tracing():  # torch.compile / export: one custom op
            return tools.compiled.solve(self, args, backend, device_id, alpha, eps, ranges)
        if tools.autograd is not None:  # torch: differentiable by implicit differentiation
            return tools.autograd.solve(self, args, backend, device_id, alpha, eps, ranges)
        return self._solve(args, backend, device_id, alpha, eps, ranges)

    def _solve(self, args, backend, device_id, alpha, eps, ranges):
        pos = self.varinvpos
        b = args[pos]
        args = list(args)

        def K(a):
            args[pos] = a
            return self.genred(*args, backend=backend, device_id=device_id, ranges=ranges)

        Kb = K(b)  # checks the arguments and that K maps b's space onto itself
        if tuple(Kb.shape) != tuple(b.shape):
            raise ValueError(
                f"KernelSolve needs a square system: the right-hand side (argument {pos}) has shape "
                f"{tuple(b.shape)} but the reduction maps it to shape {tuple(Kb.shape)}"
            )
        return conjugate_gradient(lambda a: K(a) + alpha * a, b, eps, linop_b=Kb + alpha * b)
