"""Where instances run does not change what they produce: serial, a process pool and a local Ray cluster give
identical leaderboard rows."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

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
    # an unreachable Ray address fails in one line at once (Ray retried it for minutes)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1"):
        Executor("ray", address="127.0.0.1:1").map(abs, [1, 2])
    assert time.perf_counter() - t0 < 10


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


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def test_pool_workers_die_with_a_killed_run(tmp_path) -> None:
    """kill -9 of the process that owns the pool: its workers notice and exit (they used to compute for minutes)."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "owner_helpers.py").write_text("import os, time\ndef pid(_):\n    time.sleep(0.2)\n    return os.getpid()\n")
    (tmp_path / "owner.py").write_text(
        "import time\n"
        "from eval.executor import Executor\n"
        "from owner_helpers import pid\n"
        "if __name__ == '__main__':\n"
        "    ex = Executor('process', 2)\n"
        "    print(*sorted(set(ex.map(pid, range(8)))), flush=True)\n"
        "    ex.map(time.sleep, [120, 120])\n"
    )
    path = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parent.parent)])
    owner = subprocess.Popen([sys.executable, str(tmp_path / "owner.py")], stdout=subprocess.PIPE, text=True,
                             cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})  # fmt: skip
    try:
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers)
    finally:
        owner.kill()
