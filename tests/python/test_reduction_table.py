"""Python and the engine's reduction table agree: every reduction is reachable, accepted and post-processed."""

import numpy as np
import pytest

from pykeops import _engine
from pykeops.common.genred import POST, reduction_ops
from pykeops.numpy import Genred

ALIASES = ["x = Vi(2)", "y = Vj(2)", "w = Vj(1)"]


def row(reduction):
    """A reduction's table row without its name and doc: equal rows are aliases (Max_SumShiftExp_Reduction)."""
    return repr({k: v for k, v in reduction.items() if k not in ("name", "doc")})


def test_every_engine_reduction_is_reachable_from_a_reduction_op():
    engines = {op.engine for op in reduction_ops().values()}
    reachable = {row(r) for r in _engine.reductions() if r["name"] in engines}
    for r in _engine.reductions():
        if r["name"] != "Zero_Reduction":  # an output of zeros: written by gradients, not asked for by users
            assert r["name"] in engines or row(r) in reachable, r["name"]


def kwargs_of(op):
    return {"opt_arg": 2 if op.takes_k else None, "formula2": "w" if op.formula2 == "required" else None}


@pytest.mark.parametrize("name", [op["name"] for op in _engine.reduction_ops()])
def test_every_reduction_op_is_accepted_and_runs(name):
    op = reduction_ops()[name]
    assert op.post in POST, f"no Python post-processing for post={op.post!r}"
    g = Genred("SqDist(x,y)", ALIASES, reduction_op=name, axis=1, **kwargs_of(op))
    assert g.formula.startswith(op.engine + "(")
    rng = np.random.default_rng(0)
    x, y, w = rng.random((4, 2)), rng.random((5, 2)), rng.random((5, 1))
    res = g(x, y, w)
    results = res if isinstance(res, tuple) else (res,)
    expected_outputs = {r["name"]: r["outputs"] for r in _engine.reductions()}[op.engine]
    assert len(results) == (1 if not POST[op.post].direct else len(expected_outputs))
    for r, (kind, _) in zip(results, expected_outputs):
        assert r.shape[0] == 4 and (str(r.dtype) == "int64") == (kind == "indices")


def test_options_follow_the_table():
    """opt_arg, formula2, dtype_acc and sum_scheme are accepted exactly where the engine's table says."""
    for name, op in reduction_ops().items():
        for kw, ok in (({"dtype_acc": "float64"}, op.accumulates), ({"sum_scheme": "direct_sum"}, op.accumulates),
                       ({"opt_arg": 2}, op.takes_k), ({"formula2": "w"}, op.formula2 != "no")):
            kw = {**kwargs_of(op), **kw}
            if ok:
                Genred("SqDist(x,y)", ALIASES, reduction_op=name, axis=1, **kw)
            else:
                with pytest.raises(ValueError, match=name):
                    Genred("SqDist(x,y)", ALIASES, reduction_op=name, axis=1, **kw)


def test_dtype_acc_rule_is_the_engines():
    """The accumulator dtype requested for each data dtype; the engine names the user's option when it refuses."""
    check = _engine.check_dtype_acc
    assert check("Sum", "auto", "float32") == "auto" and check("Sum", "float32", "float32") == "auto"
    assert check("LogSumExp", "float64", "float32") == "float64"
    assert check("Sum", "float16", "float16") == "float16"  # float16 data accumulate in float32 unless asked
    with pytest.raises(ValueError, match="use_double_acc=True only applies to sum-type reductions .*not to KMin"):
        check("KMin", "float64", "", "use_double_acc=True")
    with pytest.raises(ValueError, match="dtype_acc='float32' is less precise than the float64 data"):
        check("Sum", "float32", "float64", "dtype_acc='float32'")
