"""Inline Var(...) in a formula keep their argument positions even when simplification removes them (as pykeops)."""

import numpy as np
import pytest

from pykeops import _engine
from pykeops.numpy import Genred

pytestmark = pytest.mark.engine

rng = np.random.default_rng(0)
X, Y = rng.random((5, 3)), rng.random((7, 3))


def test_gradient_that_drops_a_variable():
    f = Genred("Grad(x + Var(1,3,1), x, Var(2,3,0))", ["x=Vi(0,3)"], reduction_op="Sum", axis=1)
    np.testing.assert_allclose(f(X, Y, X), 7 * X, rtol=1e-12)


def test_nested_gradient_that_is_zero_takes_all_four_arguments():
    f = Genred("Grad(Grad(x * Var(1,3,1), x, Var(2,3,0)), x, Var(3,3,0))", ["x=Vi(0,3)"], reduction_op="Sum", axis=1)
    np.testing.assert_array_equal(f(X, Y, X, X), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="4 variables but 3 arguments"):
        f(X, Y, X)


def test_nested_gradient_keeps_every_variable():
    e2, e3 = rng.random((5, 3)), rng.random((5, 3))
    f = Genred("Grad(Grad(Square(x) * Var(1,3,1), x, Var(2,3,0)), x, Var(3,3,0))", ["x=Vi(0,3)"],
               reduction_op="Sum", axis=1)
    np.testing.assert_allclose(f(X, Y, e2, e3), 2 * e2 * e3 * Y.sum(0), rtol=1e-12)


def test_variable_multiplied_by_zero_still_counts():
    f = Genred("x + IntCst(0) * Extract(Var(1,2,1), 0, 1)", ["x=Vi(0,3)"], reduction_op="Sum", axis=1)
    sig = _engine.reduction_signature(f.formula, f.aliases)
    assert sig["arg_dims"] == [3, 2] and sig["arg_cats"] == [0, 1]
    np.testing.assert_allclose(f(X, Y[:, :2]), 7 * X, rtol=1e-12)


def test_dropped_variable_must_agree_with_its_other_declarations():
    f = Genred("x + IntCst(0) * Extract(Var(0,2,1), 0, 1)", ["x=Vi(0,3)"], reduction_op="Sum", axis=1)
    with pytest.raises(ValueError, match="argument 0 is declared twice"):
        f(X)
