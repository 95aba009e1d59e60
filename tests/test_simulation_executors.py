"""Seeds on any executor: the summary does not depend on what ran the seeds.

The Dask test needs ``distributed`` (in the project's dev dependencies, so `make` installs it):
it is imported, never skipped, so a missing install fails the suite.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from dynamo_core.testing import SimulationConfig, SimulationResult, run_simulations
from dynamo_core.testing.simulation import SimulationSummary

T = TypeVar("T")

# A cheap run (about 10 ms a seed) on a faulty network.
CHEAP = SimulationConfig(
    nodes=3, ops=5, clients=2, keys=2, faults="drop,duplicate,reorder", partitions=16
)
WALL_CLOCK = ("wall_seconds", "ops_per_second", "seeds_per_minute")


def comparable(summary: SimulationSummary) -> dict[str, Any]:
    """The summary without its wall-clock figures: what must not depend on the executor."""
    data = summary.to_dict()
    for name in WALL_CLOCK:
        data.pop(name)
    return data


class Inline(Executor):
    """The smallest executor of your own: runs each task as it is submitted."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_a_process_pool_gives_the_serial_summary() -> None:
    seeds = range(10, 22)
    serial = run_simulations(seeds, CHEAP)
    with ProcessPoolExecutor(2) as pool:
        pooled = run_simulations(seeds, CHEAP, executor=pool)
    assert comparable(pooled) == comparable(serial)
    assert pooled.trace_hash == serial.trace_hash
    assert [r.seed for r in pooled.results] == list(seeds)
    assert pooled.acknowledged > 0 and pooled.faults()["drop"] > 0


def test_results_keep_the_seeds_order_whatever_order_they_finish_in() -> None:
    seeds = [5, 3, 9, 1]
    finished: list[int] = []
    with ThreadPoolExecutor(3) as pool:
        summary = run_simulations(
            seeds, CHEAP, executor=pool, progress=lambda r: finished.append(r.seed)
        )
    assert [r.seed for r in summary.results] == seeds
    assert sorted(finished) == sorted(seeds)  # progress saw each seed once
    custom = Inline()
    assert run_simulations(seeds, CHEAP, executor=custom).trace_hash == summary.trace_hash
    assert custom.submitted == len(seeds)


def test_a_different_seed_order_is_a_different_summary_hash() -> None:
    # The hash covers the seeds in the given order: merging must not reorder them silently.
    assert run_simulations([1, 2], CHEAP).trace_hash != run_simulations([2, 1], CHEAP).trace_hash


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    ran: list[SimulationResult] = []
    with pytest.raises(TypeError, match="executor must be a concurrent.futures.Executor"):
        run_simulations([1], CHEAP, executor="pool", progress=ran.append)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seeds must be ints, got '2'"):
        run_simulations([1, "2"], CHEAP, progress=ran.append)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="config must be a SimulationConfig"):
        run_simulations([1], {"ops": 5})  # type: ignore[arg-type]
    assert ran == []


def _boom(seed: int, config: SimulationConfig) -> SimulationResult:
    raise RuntimeError(f"worker lost on seed {seed}")


def test_a_failing_worker_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dynamo_core.testing.simulation._run_seed", _boom)
    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="worker lost on seed"):
        run_simulations(range(3), CHEAP, executor=pool)


def test_a_dask_local_cluster_gives_the_process_pool_summary() -> None:
    from distributed import Client, LocalCluster

    seeds = range(200)
    with ProcessPoolExecutor(2) as pool:
        pooled = run_simulations(seeds, CHEAP, executor=pool)
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        dask = run_simulations(seeds, CHEAP, executor=client.get_executor())
    assert comparable(dask) == comparable(pooled)
    assert dask.seeds == 200 and dask.ok and dask.lost == 0


def test_the_docstring_examples_hold() -> None:
    import doctest

    from dynamo_core.testing import simulation

    failures, tried = doctest.testmod(simulation)
    assert tried >= 3 and failures == 0
