"""Where instances run does not change what they produce: serial, a process pool and a local Ray cluster give
identical leaderboard rows."""

from __future__ import annotations

import os
import pickle
import time

import pytest

from envs.benchmarks import Suite
from eval.executor import Executor, chunked
from eval.leaderboard.entries import registry
from eval.leaderboard.run import LeaderboardRun, resolve_agents
from tests.conftest import family, make_suite

TIMING = ("walltime_s", "decisions_per_s")


@pytest.fixture(scope="module")
def suite() -> Suite:
    families = (family("gpt2-serve"), family("mistral-train"))
    return make_suite("exec", {"test": (5, 6)}, families=families, headrooms=(0.2, 0.5), anchor="lower-bound")


def _rows(suite: Suite, executor: Executor) -> list[dict]:
    agents = resolve_agents("lru,random,sieve,next-use,ppo", registry(), suite)
    rows = LeaderboardRun(suite, ("test",), agents, executor=executor).run()
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_serial_process_and_ray_give_identical_rows(suite: Suite) -> None:
    serial = _rows(suite, Executor("serial"))
    assert len(serial) == 7 * 8 and {r["agent"] for r in serial} >= {"ppo", "random", "best-offline"}
    with Executor("process", jobs=2) as pool:
        assert _rows(suite, pool) == serial
    import ray

    try:
        assert _rows(suite, Executor("ray", jobs=2)) == serial
    finally:
        ray.shutdown()


def test_bad_executor_arguments_and_chunks() -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        Executor("threads")
    with pytest.raises(ValueError, match="--jobs"):
        Executor("process", jobs=0)
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert chunked([1], 4) == [[1]] and chunked([], 2) == []


def _pid(_: int) -> int:
    time.sleep(0.05)  # long enough that both workers take items
    return os.getpid()


def test_process_pool_is_started_once_and_closed() -> None:
    with Executor("process", jobs=2) as ex:
        first = set(ex.map(_pid, range(8)))
        second = set(ex.map(_pid, range(8)))
        assert os.getpid() not in first and second <= first  # the same workers serve the next map
        copy = pickle.loads(pickle.dumps(ex))  # an executor travels without its pool
        assert copy == ex and copy._pool is None and ex._pool is not None
    assert ex._pool is None
    assert set(ex.map(_pid, range(2))).isdisjoint(first)  # a map after close starts new workers
    ex.close()
