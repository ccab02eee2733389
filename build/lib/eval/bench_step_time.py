"""``python -m eval.bench_step_time``: what step time costs a run. On tcb-v2 test traces (one per family, at one
headroom), times whole-trace runs of a few policies alone and with their step time (the per-op roofline of the
trace, computed once per trace as a leaderboard does, plus the step time of each run), alternating, ``repeats``
times; prints median seconds, the ratio, and the load average. The engine's own per-op stall counters are part of
both timings: compare ``--engine-only`` numbers against a checkout from before step time for those."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import tyro


@dataclass(frozen=True)
class BenchConfig:
    """Step-time overhead benchmark."""

    suite: str = "tcb-v2"
    split: str = "test"
    headroom: float = 0.1
    policies: tuple[str, ...] = ("lru", "fifo", "next-use", "belady")
    repeats: int = 5
    engine_only: bool = False
    """Time the runs alone (for a comparison across checkouts)."""


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(BenchConfig, args=argv, prog="python -m eval.bench_step_time")
    from envs.benchmarks import get_suite
    from envs.sim import prepare, simulate

    suite = get_suite(cfg.suite)
    seen, traces = set(), []
    for inst in suite.instances(cfg.split):
        if inst.family.name not in seen and inst.headroom == cfg.headroom:
            seen.add(inst.family.name)
            traces.append((inst.family.name, inst.trace(), inst.capacity))
    for _, trace, cap in traces:  # compile and warm up
        for p in cfg.policies:
            simulate(prepare(trace), p, cap)

    def runs_alone(trace, cap) -> float:
        prepared = prepare(trace)
        t0 = time.perf_counter()
        for p in cfg.policies:
            simulate(prepared, p, cap)
        return time.perf_counter() - t0

    def runs_timed(trace, cap) -> float:
        from envs.sim.step_time import step_time

        prepared = prepare(trace)
        t0 = time.perf_counter()
        for p in cfg.policies:
            step_time(prepared, simulate(prepared, p, cap).stall_bytes)
        return time.perf_counter() - t0

    head = f"{'family':<16} {'runs s':>9} {'+step time s':>13} {'ratio':>6}"
    print(f"{head}   ({len(cfg.policies)} policies, median of {cfg.repeats})")
    for name, trace, cap in traces:
        alone, timed = [], []
        for _ in range(cfg.repeats):
            alone.append(runs_alone(trace, cap))
            if not cfg.engine_only:
                timed.append(runs_timed(trace, cap))
        a = statistics.median(alone)
        if cfg.engine_only:
            print(f"{name:<16} {a:>9.4f}")
            continue
        t = statistics.median(timed)
        print(f"{name:<16} {a:>9.4f} {t:>13.4f} {t / a:>6.3f}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
