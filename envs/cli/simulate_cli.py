"""``tensorcache-simulate`` (``python -m envs.cli.simulate_cli``): run built-in policies over a trace at one or more
capacities."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import tyro

from envs.cli import run_cli
from envs.sim.accelerators import ACCELERATORS
from envs.sim.bandwidth import LINKS
from envs.sim.policies import CATALOGUE
from envs.sim.step_time import DEFAULT_ACCELERATOR

if TYPE_CHECKING:
    from envs.sim import PreparedTrace, SimResult

#: Every policy a whole-trace run accepts: the catalogue's engine policies and classic kernels.
SimPolicy = Literal[tuple(p.name for p in CATALOGUE if p.engine_code is not None or p.classic_kernel)]  # type: ignore[misc]
Link = Literal[tuple(LINKS)]  # type: ignore[misc]
AcceleratorName = Literal[tuple(ACCELERATORS)]  # type: ignore[misc]


@dataclass(frozen=True)
class SimulateConfig:
    """Simulate eviction policies over a trace (give exactly one of --capacity, --capacity-fraction, --headroom)."""

    trace: Path
    """Trace file (.npz, oracleGeneral, or .csv)."""
    policy: tuple[SimPolicy, ...] = ("lru",)
    """Policies to run (s3fifo: classic mode only)."""
    capacity: tuple[str, ...] = ()
    """Capacities in bytes or with a unit, e.g. 128MiB 1GiB."""
    capacity_fraction: tuple[float, ...] = ()
    """Capacities as fractions in (0, 1] of the peak live bytes."""
    headroom: tuple[float, ...] = ()
    """Capacities as headroom fractions in [0, 1] between the largest op and the peak live bytes."""
    format: Literal["npz", "oracleGeneral", "csv"] | None = None
    """Trace format (default: from the suffix)."""
    mode: Literal["tensor", "classic"] | None = None
    """Semantics (default: classic for oracleGeneral, tensor otherwise)."""
    accelerator: AcceleratorName = DEFAULT_ACCELERATOR
    """Accelerator preset of the step time (envs/sim/accelerators.py)."""
    link: Link | None = None
    """Host link preset for the step and transfer times (default: the accelerator's)."""
    seed: int = 0
    """Seed of the random policy."""
    jobs: int = 0
    """Runs simulated at once, in threads (0: one per core). Results do not depend on it."""
    json: bool = False
    """Print one JSON array."""


def run(cfg: SimulateConfig) -> int:
    from envs.sim import Headroom, SimError, prepare, resolve_capacity
    from envs.sim.step_time import StepModel, step_time, unknown_reason
    from envs.trace.formats import guess_format, read_trace

    given = [bool(cfg.capacity), bool(cfg.capacity_fraction), bool(cfg.headroom)]
    if sum(given) != 1:
        raise SimError("give exactly one of --capacity, --capacity-fraction or --headroom")
    if not cfg.policy:
        raise SimError("--policy needs at least one policy")
    if cfg.jobs < 0:
        raise SimError(f"--jobs must be >= 0, got {cfg.jobs}")
    fmt = cfg.format or guess_format(cfg.trace)
    mode = cfg.mode or ("classic" if fmt == "oracleGeneral" else "tensor")
    trace = read_trace(cfg.trace, fmt)
    if len(trace) == 0:
        raise SimError(f"{cfg.trace}: the trace is empty")
    prepared = prepare(trace, mode)
    specs = [*cfg.capacity, *(float(f) for f in cfg.capacity_fraction), *(Headroom(h) for h in cfg.headroom)]
    caps = [resolve_capacity(s, prepared) for s in specs]
    wanted = [*cfg.policy, *(["lru"] if "lru" not in cfg.policy else [])]  # LRU is every row's yardstick
    runs = simulate_many(prepared, [(p, c) for p in wanted for c in caps], cfg.seed, cfg.jobs or available_cores())
    model = StepModel(cfg.accelerator, cfg.link)
    lru_moved = {c: runs[("lru", c)].bytes_moved for c in caps}
    lru_step = {c: step_time(prepared, runs[("lru", c)].stall_bytes, model) for c in caps}
    rows = []
    for p in cfg.policy:
        for c in caps:
            res = runs[(p, c)]
            d = res.to_dict()
            d["bytes_ratio_vs_lru"] = lru_moved[c] / res.bytes_moved if res.bytes_moved else float("inf")
            d["transfer_s"] = res.transfer_seconds(model.link_name)
            st, lru = step_time(prepared, res.stall_bytes, model), lru_step[c]
            d["device"] = model.name
            d.update(st.to_dict() if st else dict.fromkeys(("step_s", "compute_s", "stall_s", "steps")))
            d["speedup_step_vs_lru"] = lru.step_s / st.step_s if st and lru else None
            rows.append(d)
    unknown = unknown_reason(prepared)
    if cfg.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'policy':<10} {'capacity':>14} {'hit ratio':>9} {'byte HR':>8} {'GiB moved':>10} {'LRU/bytes':>9} "
              f"{'s/step':>9} {'step ×':>7}")  # fmt: skip
        for d in rows:
            step = f"{d['step_s']:>9.4f} {d['speedup_step_vs_lru']:>6.3f}×" if d["step_s"] is not None else f"{'–':>9} {'–':>7}"
            print(
                f"{d['policy']:<10} {d['capacity_bytes']:>14} {d['hit_ratio']:>9.4f} {d['byte_hit_ratio']:>8.4f} "
                f"{d['bytes_moved'] / 2**30:>10.3f} {d['bytes_ratio_vs_lru']:>9.3f} {step}"
            )
        if unknown:
            print(f"step time unknown: {unknown}")
        else:
            print(f"s/step: seconds per steady-state step on {model.name} (roofline compute + link stalls; "
                  "envs/sim/step_time.py); step ×: LRU's s/step / the policy's")  # fmt: skip
    return 0


#: Policies whose whole-trace runs take longest (a heap or the step engine): started first so that the short runs
#: fill in around them.
_SLOW_FIRST = ("belady", "next-use", "lfu", "mru", "random", "s3fifo")


def simulate_many(prepared: PreparedTrace, runs: list[tuple[str, int]], seed: int, jobs: int) -> dict[tuple[str, int], SimResult]:
    """Every (policy, capacity) run over one prepared trace, ``jobs`` at a time in threads (the classic kernels
    release the GIL; engine runs take turns). Each run has its own state, so results equal serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    from envs.sim import simulate

    order = sorted(runs, key=lambda r: r[0] not in _SLOW_FIRST)
    if jobs <= 1 or len(order) == 1:
        return {r: simulate(prepared, r[0], r[1], seed=seed) for r in order}
    with ThreadPoolExecutor(max_workers=min(jobs, len(order))) as pool:
        futures = {r: pool.submit(simulate, prepared, r[0], r[1], seed=seed) for r in order}
        return {r: f.result() for r, f in futures.items()}


def available_cores() -> int:
    """Cores this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(SimulateConfig, prog="tensorcache-simulate", args=argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
