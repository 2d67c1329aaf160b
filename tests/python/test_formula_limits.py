"""Hostile formulas: deep nesting, huge integers, out-of-range bounds and non-ASCII text give ValueError, never a crash."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pykeops.common.engine import load_engine
from pykeops.numpy import Genred

pytestmark = pytest.mark.engine

engine = load_engine()


def run_isolated(code, timeout=120):
    """Runs code in a fresh interpreter (a crash or a hang there fails the test instead of killing the run)."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ))
    assert r.returncode == 0, f"exit code {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    return r.stdout


def expect_value_error(code, match, timeout=120):
    """code raises ValueError matching `match` in a fresh interpreter (within timeout: no hang)."""
    out = run_isolated(
        f"""
        import re
        from pykeops.common.engine import load_engine
        from pykeops.numpy import Genred
        engine = load_engine()
        try:
{textwrap.indent(textwrap.dedent(code), ' ' * 12)}
        except ValueError as e:
            print("ValueError:", e)
        else:
            print("no error")
        """,
        timeout,
    )
    assert out.startswith("ValueError:") and __import__("re").search(match, out), out[:2000]


def sum_kernel(formula, aliases):
    return Genred(formula, aliases, reduction_op="Sum", axis=1)


# ------------------------------------------------------------------------------------------- nesting (item 1)


@pytest.mark.parametrize(
    "formula",
    ["'x' + '+x' * 30000", "'Exp(' * 5000 + 'x' + ')' * 5000", "'Concat(' * 5000 + 'x' + ',x)' * 5000",
     "'-' * 100000", "'[' * 100000", "'(' * 300000 + 'x' + ')' * 300000", "'Exp(' * 300000 + 'x' + ')' * 300000"],
)
def test_deep_text_never_crashes(formula):
    # Either parses (x + x + ... is flat) or raises a ValueError naming the nesting limit.
    out = run_isolated(
        f"""
        from pykeops.common.engine import load_engine
        e = load_engine()
        try:
            print("ok", len(e.parse({formula}, ["x = Vi(0, 1)"])))
        except ValueError as err:
            print("ValueError:", str(err)[:300])
        """
    )
    assert out.startswith("ok") or ("ValueError:" in out and ("nested more than" in out or "expected" in out)), out
    if formula.startswith("'(' * 300000") or formula.startswith("'Exp(' * 300000"):
        assert "nested more than 262144 levels" in out


def test_nesting_limit_message():
    with pytest.raises(ValueError, match="nested more than 262144 levels deep"):
        engine.parse("-" * 300000 + "x", ["x = Vi(0, 1)"])
    assert engine.parse("-" * 1001 + "x", ["x = Vi(0, 1)"]) == "Minus(Var(0,1,0))"


def test_deep_nested_calls_work():
    # 5000 nested calls parse and print; 500 also run (compiling a deep chain is slow: issue 13).
    aliases = ["x = Vi(0, 1)", "y = Vj(1, 1)"]
    assert engine.parse("Sin(" * 5000 + "x" + ")" * 5000, aliases).count("Sin(") == 5000
    n = 500
    f = "Sin(" * n + "x" + ")" * n
    x = np.random.default_rng(1).random((3, 1))
    out = sum_kernel(f, aliases)(x, np.zeros((2, 1)))
    ref = x.copy()
    for _ in range(n):
        ref = np.sin(ref)
    np.testing.assert_allclose(out, 2 * ref, rtol=1e-9)


def flat_sum(n, parenthesised):
    terms = [f"Elem(x,{k % 3})" if k % 2 else f"IntCst({k})" for k in range(n)]
    if not parenthesised:
        return "+".join(terms)
    # "((t0 + t1) + t2) ...": the left-deep string a LazyTensor sum builds
    return "(" * (n - 1) + terms[0] + "".join(f" + {t})" for t in terms[1:])


@pytest.mark.parametrize("parenthesised", [False, True])
def test_flat_sum_of_1e5_terms(parenthesised):
    # Genred construction of a 1e5-term sum: parse, dims, simplify and lowering (through the signature and the IR
    # of a 1e5-node DAG, 1e5 deep), then a kernel of a 1e4-term sum against NumPy.
    n = 100_000
    g = sum_kernel(flat_sum(n, parenthesised), ["x = Vi(0, 3)", "y = Vj(1, 1)"])
    sig = engine.reduction_signature(g.formula, g.aliases)
    assert sig["dim_out"] == 1 and sig["nargs"] == 2
    assert len(engine.parse(g.formula, g.aliases)) > n
    m = 10_000
    x, y = np.random.default_rng(0).random((4, 3)), np.zeros((2, 1))
    out = sum_kernel(flat_sum(m, parenthesised) + "+y", ["x = Vi(0, 3)", "y = Vj(1, 1)"])(x, y)
    ref = sum(k for k in range(0, m, 2)) + sum(x[:, k % 3] for k in range(1, m, 2))
    np.testing.assert_allclose(out[:, 0], 2 * ref, rtol=1e-10)


def test_gradient_of_deep_formula():
    # Differentiation of a 20000-deep chain of Sin (its adjoints form an equally deep chain) at construction,
    # then a kernel of a 1000-deep one against NumPy.
    aliases = ["x = Vi(0, 1)", "e = Vi(1, 1)", "y = Vj(2, 1)"]
    deep = "Sin(" * 20000 + "x" + ")" * 20000
    assert engine.reduction_signature(f"Sum_Reduction(Grad({deep}, x, e), 0)", aliases)["nargs"] == 3
    n = 1000
    g = Genred("Grad(" + "Sin(" * n + "x" + ")" * n + ", x, e)", aliases, reduction_op="Sum", axis=1)
    out = g(np.array([[0.3]]), np.ones((1, 1)), np.zeros((1, 1)))[0, 0]
    v, d = 0.3, 1.0
    for _ in range(n):
        d *= np.cos(v)
        v = np.sin(v)
    np.testing.assert_allclose(out, d, rtol=1e-9)


# -------------------------------------------------------------------------------------- integers (items 2, 5)


@pytest.mark.parametrize(
    "formula, match",
    [("IntCst(18446744073709551616)", "18446744073709551616 does not fit in 64 bits"),
     ("IntCst(2**64)", r"2 \*\* 64 does not fit"),
     ("IntCst(2**63)", r"2 \*\* 63 does not fit"),
     ("x * (9223372036854775807 + 1)", r"9223372036854775807 \+ 1 does not fit"),
     ("x * (-9223372036854775807 - 2)", "does not fit in 64 bits"),
     ("x * (4294967296 * 4294967296)", r"4294967296 \* 4294967296 does not fit"),
     ("Extract(x, 2**64+1, 2)", r"2 \*\* 64 does not fit"),
     ("Extract(x, 18446744073709551617, 2)", "does not fit in 64 bits")],
)
def test_integers_never_wrap(formula, match):
    with pytest.raises(ValueError, match=match):
        engine.parse(formula, ["x = Vi(0, 3)"])


def test_big_integers_in_range_stay_exact():
    assert engine.parse("IntCst(2**62)", []) == f"IntCst({2**62})"
    assert engine.parse("IntCst(-9223372036854775807 - 1)", []) == f"IntCst({-2**63})"
    # Folding constants that would overflow is skipped: the product stays symbolic.
    assert engine.parse("IntCst(4611686018427387904) * IntCst(4)", []) == f"(IntCst({2**62}) * IntCst(4))"
    assert engine.parse("-IntCst(-9223372036854775807 - 1)", []) == f"Minus(IntCst({-2**63}))"


@pytest.mark.parametrize("formula", ["IntCst(2**100000000000)", "IntCst(9**007199254740992)", "x * 3**(2**62)"])
def test_integer_power_is_instant(formula):
    expect_value_error(f"engine.parse({formula!r}, ['x = Vi(0, 1)'])", r"\*\* .* does not fit in 64 bits", timeout=60)


def test_integer_power_small_values():
    assert engine.parse("IntCst(3**39)", []) == f"IntCst({3**39})"
    assert engine.parse("IntCst((-1)**(2**62+1))", []) == "IntCst(-1)"
    assert engine.parse("IntCst(1**9223372036854775807)", []) == "IntCst(1)"
    assert engine.parse("x * 0**(2**62)", ["x = Vi(0, 1)"]) == "Zero(1)"


@pytest.mark.parametrize(
    "alias, match",
    [("x = Vi(4294967299)", "dimension 4294967299 exceeds the limit"),
     ("x = Vi(4294967296, 3)", "position 4294967296 exceeds the limit"),
     ("x = Vi(99999999999999999999)", "integer 99999999999999999999 does not fit in 64 bits"),
     ("x = Var(0, 3, 4294967296)", "category must be 0, 1 or 2"),
     ("x = Pm(2147483648, 1)", "position 2147483648 exceeds")],
)
def test_alias_integers_are_range_checked(alias, match):
    with pytest.raises(ValueError, match=match):
        engine.reduction_signature("Sum_Reduction(x, 0)", [alias])
    with pytest.raises(ValueError, match=match):
        sum_kernel("x", [alias])(np.ones((2, 1)))


@pytest.mark.parametrize(
    "formula, match",
    [("x * Vi(4294967296, 3)", "position 4294967296 exceeds"), ("x * Vi(0, 4294967299)", "dimension 4294967299 exceeds"),
     ("x * Var(0, 3, 4294967296)", "category must be"), ("Sum_Reduction(x, 4294967296)", "the tag must be 0"),
     ("Zero_Reduction(4294967297, 0)", "dimension must be in"), ("SumT(Sum(x), 4294967297)", "exceeds the limit")],
)
def test_formula_integers_are_range_checked(formula, match):
    with pytest.raises(ValueError, match=match):
        engine.parse(formula, ["x = Vi(0, 3)"])


# ------------------------------------------------------------------------------------- bound checks (item 3)


@pytest.mark.parametrize(
    "formula",
    ["Extract(x, 9223372036854775807, 2)", "Extract(x, 9223372036854775806, 3)", "Extract(x, 1, 9223372036854775807)",
     "ExtractT(x, 9223372036854775807, 4)", "ExtractT(x, 1, 9223372036854775807)", "Elem(x, 9223372036854775807)",
     "ElemT(Sum(x), 4294967296, 1)", "ElemT(Sum(x), 3, -1)", "OneHot(Sum(x), 4294967296)",
     "BSpline(x, Sum(x), 4294967296)", "BSpline(x, Sum(x), -1)",
     "TensorDot(x, x, [3], [-1,-3], [], [])", "TensorDot(x, x, [3], [4294967296, 4294967296, 3], [], [])",
     "TensorDot(x, x, [3,1], [3,1], [0,0], [0,0])", "TensorDot(x, x, [3], [3], [1], [0])",
     "Kron(x, x, [-1,-3], [3,1])", "Kron(x, x, [3], [3]) * Kron(Kron(x, x, [3], [3]), Kron(x, x, [3], [3]), [9], [9])"
     " * Kron(Kron(Kron(x, x, [3], [3]), Kron(x, x, [3], [3]), [9], [9]), Kron(Kron(x, x, [3], [3]), Kron(x, x, [3], [3]), [9], [9]), [81], [81])",
     "Pow(x, -9223372036854775807-1)", "Pow(x, 9223372036854775807)"],
)
def test_bounds_are_checked_without_overflow(formula):
    with pytest.raises(ValueError):
        sum_kernel(formula, ["x = Vi(0, 3)", "y = Vj(1, 1)"])(np.ones((2, 3)), np.ones((2, 1)))


def test_extract_out_of_bounds_is_an_error():
    # Extract(x, 2**63-1, 2) read out of bounds and Extract(x, 2**63-2, 3) crashed: the bound check overflowed.
    expect_value_error(
        """
        import numpy as np
        Genred("Extract(x, 9223372036854775806, 3)", ["x = Vi(0, 3)"], reduction_op="Sum", axis=1)(np.ones((2, 3)))
        """,
        r"range \[9223372036854775806, 9223372036854775806\+3\) is out of bounds for dimension 3",
    )


def test_bounds_in_range_still_work():
    x, y = np.arange(6.0).reshape(2, 3), np.zeros((1, 1))
    aliases = ["x = Vi(0, 3)", "y = Vj(1, 1)"]
    np.testing.assert_allclose(sum_kernel("Extract(x, 1, 2)", aliases)(x, y), x[:, 1:])
    np.testing.assert_allclose(sum_kernel("ExtractT(x, 2, 5)", aliases)(x, y), np.pad(x, ((0, 0), (2, 0))))
    np.testing.assert_allclose(sum_kernel("Elem(x, 2)", aliases)(x, y), x[:, 2:])
    np.testing.assert_allclose(sum_kernel("Pow(x, -3)", aliases)(x + 1, y), (x + 1) ** -3.0)


# --------------------------------------------------------------------------- positions, K and dims (item 4)


def test_variable_position_2_31():
    expect_value_error(
        """
        import numpy as np
        Genred("x*Var(2147483648,3,1)", ["x = Vi(0, 3)"], reduction_op="Sum", axis=1)(np.ones((2, 3)), np.ones((2, 3)))
        """,
        "position 2147483648 exceeds the limit 1048575",
    )


def test_sparse_positions_are_undeclared_arguments():
    with pytest.raises(ValueError, match="argument 1 is not declared"):
        sum_kernel("x*Var(1048575,3,1)", ["x = Vi(0, 3)"])(np.ones((2, 3)), np.ones((2, 3)))


def test_k_times_dim_is_checked():
    expect_value_error(
        """
        import numpy as np
        Genred("x", ["x = Vj(0, 2)"], reduction_op="KMin", axis=1, opt_arg=2**30)(np.ones((2, 2)))
        """,
        "K = 1073741824 times the formula's dimension 2 exceeds the limit",
    )
    with pytest.raises(ValueError, match="K = 1099511627776 times the formula's dimension 1 exceeds the limit"):
        Genred("x", ["x = Vj(0, 1)"], reduction_op="KMin", axis=1, opt_arg=2**40)(np.ones((2, 1)))
    with pytest.raises(ValueError, match="K = 4294967296 times"):
        Genred("x", ["x = Vj(0, 1)"], reduction_op="ArgKMin", axis=1, opt_arg=2**32)(np.ones((2, 1)))


def test_dimension_products_are_checked():
    aliases = ["x = Vi(0, 1048576)", "y = Vj(1, 1048576)"]
    for f in ["TensorProd(x, y)", "Concat(x, y)", "SymSqNorm(x, y)", "GradMatrix(x, x)", "Real2Complex(x)"]:
        with pytest.raises(ValueError, match="exceeds the limit|does not match"):
            engine.parse(f, aliases)


# --------------------------------------------------------------------------------------- non-ASCII (item 6)


@pytest.mark.parametrize("text, shown", [("x + é", "'é' (U+00E9)"), ("x * λ", "'λ' (U+03BB)"), ("x€", "'€' (U+20AC)"),
                                         ("x + 😀", "'😀' (U+1F600)")])
def test_non_ascii_character_is_named(text, shown):
    with pytest.raises(ValueError, match="unexpected character") as e:
        engine.parse(text, ["x = Vi(0, 1)"])
    assert shown in str(e.value)
    with pytest.raises(ValueError, match="unexpected character"):
        sum_kernel(text, ["x = Vi(0, 1)"])(np.ones((2, 1)))
    with pytest.raises(ValueError, match="unexpected character"):
        engine.parse("x", [f"x = Vi({text})"])
