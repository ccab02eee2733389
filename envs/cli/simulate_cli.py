"""``python -m envs.cli.simulate_cli``: run the simulator's policies, the offline references and the certified lower
bound over a trace at one or more capacities. ``tensorcache-simulate`` (:mod:`eval.simulate_agents`) is this command
with every registered agent added (learned entries included), which ``envs`` cannot import."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from envs.cli import NONE_BY_DEFAULT, run_cli
from envs.sim.accelerators import ACCELERATORS
from envs.sim.bandwidth import LINKS
from envs.sim.policies import CATALOGUE, OFFLINE_STRATEGIES
from envs.sim.step_time import DEFAULT_ACCELERATOR

if TYPE_CHECKING:
    from envs.sim import PreparedTrace, SimResult

#: Every policy a whole-trace run accepts: the catalogue's engine policies and classic kernels.
SimPolicy = Literal[tuple(p.name for p in CATALOGUE if p.engine_code is not None or p.classic_kernel)]  # type: ignore[misc]
#: What else runs without the agent registry (tensor mode): the offline references outside the engine and the bound.
REFERENCE_POLICIES: tuple[str, ...] = (*(n for n in OFFLINE_STRATEGIES if n not in SimPolicy.__args__), "lower-bound")
#: A registered agent's whole-trace run: ``(prepared trace, capacity bytes) -> SimResult``.
AgentRun = Callable[["PreparedTrace", int], "SimResult"]
Link = Literal[tuple(LINKS)]  # type: ignore[misc]
AcceleratorName = Literal[tuple(ACCELERATORS)]  # type: ignore[misc]


@dataclass(frozen=True)
class SimulateConfig:
    """Simulate eviction policies over a trace (give exactly one of --capacity, --capacity-fraction, --headroom)."""

    trace: Path
    """Trace file (.npz, oracleGeneral, or .csv)."""
    policy: tuple[str, ...] = ("lru",)
    """Policies to run: the simulator's (lru, fifo, mru, lfu, random, sieve, next-use, belady; s3fifo in classic
    mode), the offline references cost-belady, lp-guided and best-offline, and lower-bound (tensor mode); with
    tensorcache-simulate also every registered agent (schedule, bc, ppo, llm, ...)."""
    capacity: Annotated[tuple[str, ...], NONE_BY_DEFAULT] = ()
    """Capacities in bytes or with a unit, e.g. 128MiB 1GiB."""
    capacity_fraction: Annotated[tuple[float, ...], NONE_BY_DEFAULT] = ()
    """Capacities as fractions in (0, 1] of the peak live bytes."""
    headroom: Annotated[tuple[float, ...], NONE_BY_DEFAULT] = ()
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


def run(cfg: SimulateConfig, agents: Mapping[str, AgentRun] | None = None) -> int:
    """Runs ``cfg``; ``agents`` adds policies by name (a registry's agents), each one JSON row per capacity."""
    from envs.sim import Headroom, SimError, prepare, resolve_capacity
    from envs.sim.step_time import StepModel, step_time, unknown_reason
    from envs.trace.formats import guess_format, read_trace

    given = [bool(cfg.capacity), bool(cfg.capacity_fraction), bool(cfg.headroom)]
    if sum(given) != 1:
        raise SimError("give exactly one of --capacity, --capacity-fraction or --headroom")
    if not cfg.policy:
        raise SimError("--policy needs at least one policy")
    agents = {n: a for n, a in (agents or {}).items() if n not in SimPolicy.__args__ and n not in REFERENCE_POLICIES}
    valid = [*SimPolicy.__args__, *REFERENCE_POLICIES, *agents]
    for p in cfg.policy:
        if p not in valid:
            raise SimError(f"unknown policy {p!r}; valid: {', '.join(valid)}")
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
    if mode == "classic" and any(p in REFERENCE_POLICIES for p in cfg.policy):
        raise SimError(f"{', '.join(REFERENCE_POLICIES)} need tensor mode (the bound and its LP are per op)")
    wanted = [*cfg.policy, *(["lru"] if "lru" not in cfg.policy else [])]  # LRU is every row's yardstick
    engine = [p for p in wanted if p in SimPolicy.__args__]
    runs = simulate_many(prepared, [(p, c) for p in engine for c in caps], cfg.seed, cfg.jobs or available_cores())
    bounds = {}
    for c in caps:
        if any(p in REFERENCE_POLICIES for p in cfg.policy):  # one LP solve per capacity serves them all
            from envs.benchmarks.references import compute_references

            refs = compute_references(prepared, c, with_bound=True)
            runs |= {(name, c): r for name, r in refs.offline.items()}
            runs[("best-offline", c)], bounds[c] = refs.best_offline, refs.bound
        runs |= {(p, c): agents[p](prepared, c) for p in cfg.policy if p in agents}
    model = StepModel(cfg.accelerator, cfg.link)
    lru_moved = {c: runs[("lru", c)].bytes_moved for c in caps}
    lru_step = {c: step_time(prepared, runs[("lru", c)].stall_bytes, model) for c in caps}
    rows = []
    for p in cfg.policy:
        for c in caps:
            if p == "lower-bound":
                rows.append(_bound_row(bounds[c], lru_moved[c], model.name))
                continue
            res = runs[(p, c)]
            d = res.to_dict() | {"policy": p} | ({"chosen": res.policy} if p == "best-offline" else {})
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
        print(f"{'policy':<12} {'capacity':>14} {'hit ratio':>9} {'byte HR':>8} {'GiB moved':>10} {'LRU/bytes':>9} "
              f"{'s/step':>9} {'step ×':>7}")  # fmt: skip
        for d in rows:
            step = f"{d['step_s']:>9.4f} {d['speedup_step_vs_lru']:>6.3f}×" if d["step_s"] is not None else f"{'–':>9} {'–':>7}"
            hits = d["hit_ratio"] is not None
            ratios = f"{d['hit_ratio']:>9.4f} {d['byte_hit_ratio']:>8.4f}" if hits else f"{'–':>9} {'–':>8}"
            print(
                f"{d['policy']:<12} {d['capacity_bytes']:>14} {ratios} "
                f"{d['bytes_moved'] / 2**30:>10.3f} {d['bytes_ratio_vs_lru']:>9.3f} {step}"
            )
        if unknown:
            print(f"step time unknown: {unknown}")
        else:
            print(f"s/step: seconds per steady-state step on {model.name} (roofline compute + link stalls; "
                  "envs/sim/step_time.py); step ×: LRU's s/step / the policy's")  # fmt: skip
    return 0


def _bound_row(bound, lru_moved: int, device: str) -> dict:
    """The certified lower bound as a row: bytes moved no policy can go below; no hits, no step time."""
    return {
        "policy": "lower-bound", "mode": "tensor", "capacity_bytes": bound.capacity, "trace_hash": bound.trace_hash,
        "bytes_moved": bound.bytes, "compulsory_bytes": bound.compulsory_bytes, "integral": bound.integral,
        "hit_ratio": None, "byte_hit_ratio": None, "device": device,
        "bytes_ratio_vs_lru": lru_moved / bound.bytes if bound.bytes else float("inf"),
        "step_s": None, "compute_s": None, "stall_s": None, "steps": None, "speedup_step_vs_lru": None,
    }  # fmt: skip


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
    cfg = tyro.cli(SimulateConfig, prog="python -m envs.cli.simulate_cli", args=argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
