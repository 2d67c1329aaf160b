"""KernelSolve: solves (alpha * Id + K) a = b by conjugate gradient, K a Sum reduction linear in one variable."""

import math
import re
import warnings

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


def conjugate_gradient(linop, b, eps, maxiter=None, linop_b=None):
    """Solve linop(a) = b for a symmetric positive definite linop; stop when ||r||^2 < numel(b) * eps^2.

    linop maps an array shaped like b to one; only out-of-place arithmetic is used, so it works for NumPy
    arrays and torch tensors alike. Starts from a = 0. Warns if maxiter (default max(100, 2 numel(b))) steps
    do not reach the tolerance and returns the last iterate. linop_b: linop(b) when already known.
    """
    n = math.prod(b.shape)
    a = 0 * b
    if n == 0:
        return a
    tol = n * eps**2
    r = b
    nr2 = float((r * r).sum())
    if nr2 < tol:
        return a
    p = r
    maxiter = max(100, 2 * n) if maxiter is None else maxiter
    for it in range(maxiter):
        Kp = linop_b if it == 0 and linop_b is not None else linop(p)
        pKp = float((p * Kp).sum())
        if not pKp > 0:
            raise ValueError(
                f"conjugate gradient broke down (p^T (alpha Id + K) p = {pKp}): the system must be symmetric "
                "positive definite; a larger alpha may help"
            )
        step = nr2 / pKp
        a = a + step * p
        r = r - step * Kp
        nr2_new = float((r * r).sum())
        if nr2_new < tol:
            return a
        p = r + (nr2_new / nr2) * p
        nr2 = nr2_new
    warnings.warn(
        f"conjugate gradient stopped after {maxiter} iterations with ||r||^2 = {nr2:.3e} > numel(b) * eps^2 = "
        f"{tol:.3e}: eps may be too small for the dtype, or the system ill-conditioned",
        RuntimeWarning, stacklevel=3,
    )
    return a


class GenericKernelSolve:
    """Solver of (alpha * Id + K) a = b, K(a) = Sum_Reduction(formula) linear in the variable varinvalias.

    Subclasses set `Genred` (the framework's Genred class). The argument given at the position of varinvalias
    is the right-hand side b; the result has b's shape. No symmetry check is made: K should be symmetric
    positive (semi-)definite, e.g. a Gaussian kernel matrix evaluated on one point cloud for both i and j.
    """

    Genred = None

    def __init__(
        self, formula, aliases, varinvalias, axis=0, dtype_acc="auto", use_double_acc=False, sum_scheme="auto",
        enable_chunks=True, rec_multVar_highdim=None, dtype=None, cuda_type=None, use_fast_math=True, opt_arg=None,
    ):
        if opt_arg is not None:
            raise ValueError("KernelSolve takes no opt_arg: its reduction is a Sum")
        self.genred = self.Genred(
            formula, aliases, reduction_op="Sum", axis=axis, dtype=dtype, cuda_type=cuda_type, dtype_acc=dtype_acc,
            use_double_acc=use_double_acc, sum_scheme=sum_scheme, enable_chunks=enable_chunks,
            rec_multVar_highdim=bool(rec_multVar_highdim), use_fast_math=use_fast_math,
        )
        self.varinvpos = alias_position(self.genred.aliases, varinvalias)
        self.formula, self.aliases, self.axis = formula, self.genred.aliases, self.genred.axis

    def __call__(self, *args, backend="auto", device_id=-1, alpha=1e-10, eps=1e-6, ranges=None):
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
