"""Where independent work runs: in this process, in a pool of processes on this machine, or on a Ray cluster.

Every executor maps a picklable function over items and returns the results in the items' order, so the result of
a run does not depend on where it ran (``tests/test_executor.py`` compares serial, process and a local Ray). The
process pool starts workers with ``spawn`` and one thread each (torch, and HF tokenizers' batch encoding; on 2 cores
a second thread costs more CPU than it saves); it is started on the first ``map`` and kept for the next ones until
:meth:`Executor.close` (or the end of a ``with`` block), because starting workers (imports, compiled kernels) costs
seconds and a leaderboard maps dozens of times. Workers watch their parent and exit when it is gone, so killing a
run (any signal, ``kill -9`` included) leaves no orphan computing. Ray is an optional extra
(``pip install -e '.[ray]'``), imported only when asked for; it connects to ``address`` (or ``$RAY_ADDRESS``) and
otherwise starts a local cluster of ``jobs`` CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

EXECUTORS = ("serial", "process", "ray")


def _watch_parent(parent: int, period_s: float = 0.5) -> None:
    """Exits this worker as soon as its parent process is gone (killed, even by SIGKILL, or crashed): a worker is
    then re-parented, so its parent id changes. Runs in a daemon thread of each pool worker."""
    import time

    while os.getppid() == parent:
        time.sleep(period_s)
    os._exit(1)


def _worker_init() -> None:
    """Pool worker set-up: die with the parent (no orphan keeps computing after the run is killed), one thread."""
    import threading

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True, name="watch-parent").start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # a batch encode would otherwise start a thread per core
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is a core dependency, but a worker that needs none should still start
        pass


@dataclass(frozen=True)
class Executor:
    """Runs ``fn`` over items (see the module docstring).

    Attributes:
        kind: ``serial``, ``process`` or ``ray``.
        jobs: Worker processes (``process``) or CPUs of a local Ray cluster.
        address: Ray cluster address (default ``$RAY_ADDRESS``; none starts a local cluster).
    """

    kind: str = "process"
    jobs: int = 2
    address: str | None = None
    _pool: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"unknown executor {self.kind!r}; valid: {', '.join(EXECUTORS)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"--jobs must be an integer >= 1, got {self.jobs!r}")

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], progress: Callable[[], None] | None = None) -> list[Any]:
        """``[fn(x) for x in items]`` on this executor, in order; ``progress()`` is called as each result arrives
        (in order: a slow first item holds back the count, never the work)."""
        work = list(items)
        if not work:
            return []
        if self.kind == "serial" or (self.kind == "process" and (self.jobs == 1 or len(work) == 1)):
            results = (fn(x) for x in work)
        elif self.kind == "process":
            if self._pool is None:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor

                pool = ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)
                object.__setattr__(self, "_pool", pool)  # frozen: the pool is a cache, not part of the value
            results = self._pool.map(fn, work)
        else:
            results = iter(self._ray_map(fn, work))
        out = []
        for r in results:
            out.append(r)
            if progress is not None:
                progress()
        return out

    def close(self) -> None:
        """Stops the process pool's workers (a later ``map`` starts new ones)."""
        pool = self._pool
        if pool is not None:
            object.__setattr__(self, "_pool", None)
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_pool"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _pool=None)

    def _ray_map(self, fn: Callable[[Any], Any], work: list[Any]) -> list[Any]:
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs the ray extra: pip install -e '.[ray]'") from None
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            if address:
                check_reachable(address)
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.jobs, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(fn)
        futures = [remote.remote(x).future() for x in work]
        return [f.result() for f in futures]


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast, in one line, when a ``host:port`` Ray address does not accept connections (Ray itself retries
    for minutes); ``auto`` and ``ray://`` addresses are left to Ray.

    Raises:
        ValueError: Naming the address and the reason.
    """
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot reach a Ray cluster at {address} ({exc.strerror or exc})") from None


def chunked(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` in at most ``parts`` contiguous chunks of near-equal size (order kept)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [c for c in out if c]
