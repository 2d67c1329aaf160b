"""Sharded reductions over torch.distributed: spawned Gloo groups of 2 and 4 CPU processes on the loopback."""

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import distributed_checks  # noqa: E402  (tests/python is on sys.path, as for the spawned ranks)

pytestmark = pytest.mark.engine


def passed(results, size):
    for rank in range(size):
        status, payload = results[rank]
        assert status == "ok", f"rank {rank} {status}:\n{payload}"
        failures, count = payload
        assert not failures, f"rank {rank}: {len(failures)} of {count} checks failed:\n" + "\n".join(failures)
        assert count > 0


@pytest.mark.parametrize("size,check", [(2, "check_two"), (4, "check_four")])
def test_sharded_reductions_equal_single_process(size, check):
    # every reduction, float32 and float64, both axes, uneven and empty shards, ties, batches, LazyTensor API,
    # gradients, KernelSolve, and errors raised on one rank reaching every rank
    passed(distributed_checks.run_group(size, check), size)


def test_a_dead_rank_gives_an_error_not_a_hang():
    results = distributed_checks.run_group(2, "check_dead_rank", timeout=120)
    status, payload = results[0]
    assert status == "ok", payload
    failures, seconds = payload
    assert not failures, failures
    assert seconds < distributed_checks.GROUP_TIMEOUT.total_seconds() + 10
    assert results[1][0] == "error" and "SystemExit" in results[1][1]


def test_group_needs_pykeops_torch():
    import numpy as np
    from pykeops.numpy import Genred

    g = Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Sum", axis=1)
    with pytest.raises(ValueError, match="pykeops.torch"):
        g(np.zeros((2, 3)), np.zeros((2, 3)), group=object())
