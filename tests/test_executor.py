"""Where instances run does not change what they produce: serial, a process pool and a local Ray cluster give
identical leaderboard rows."""

from __future__ import annotations

import pytest

from envs.benchmarks import Family, Suite
from eval.executor import Executor, chunked
from eval.leaderboard.entries import registry
from eval.leaderboard.run import LeaderboardRun, resolve_agents

TIMING = ("walltime_s", "decisions_per_s")


@pytest.fixture(scope="module")
def suite() -> Suite:
    return Suite(
        name="exec",
        version="0",
        families=(Family("gpt2-serve", "transformer-infer", "gpt2-small", layers=1, iterations=3),
                  Family("mistral-train", "transformer-train", "mistral-7b", layers=1, iterations=2)),
        headrooms=(0.2, 0.5),
        seeds={"test": (5, 6)},
        anchor="lower-bound",
        min_lru_gap=0.0,
    )  # fmt: skip


def _rows(suite: Suite, executor: Executor) -> list[dict]:
    agents = resolve_agents("lru,random,sieve,next-use,ppo", registry(), suite)
    rows = LeaderboardRun(suite, ("test",), agents, executor=executor).run()
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_serial_process_and_ray_give_identical_rows(suite: Suite) -> None:
    serial = _rows(suite, Executor("serial"))
    assert len(serial) == 7 * 8 and {r["agent"] for r in serial} >= {"ppo", "random", "best-offline"}
    assert _rows(suite, Executor("process", jobs=2)) == serial
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
