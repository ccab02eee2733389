"""``tensorcache-leaderboard`` (``python -m eval.leaderboard``): evaluate agents on a suite split, or
``tensorcache-leaderboard validate DIR/results.csv`` to replay a published results file."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from envs.cli import NONE_BY_DEFAULT, run_cli
from envs.io.progress import log_progress


@dataclass(frozen=True)
class RunConfig:
    """Evaluate agents on one split of a suite and write results.csv, leaderboard.json/.md and report.html.
    (Subcommands: `validate RESULTS.csv` replays a results file; `score TRACE` scores agents on your own trace.)"""

    suite: str = "tcb-v3"
    """Benchmark suite (tcb-v3; tcb-v2 and tcb-v1 are kept to replay old results)."""
    split: tuple[Literal["train", "validation", "test", "test-ood"], ...] = ("test", "test-ood")
    """Splits to evaluate, shown side by side; test and test-ood are held out from training."""
    agents: str = "all"
    """'all' or a comma-separated list of agent names (lru, belady and best-offline are always added)."""
    out: Path = Path("artifacts/leaderboard")
    """Output directory (refused while another run holds it)."""
    recompute: bool = False
    """Run every agent, ignoring rows that entries ship."""
    executor: Literal["serial", "process", "ray"] = "process"
    """Where instances run: here, a process pool on this machine, or a Ray cluster (the ray extra)."""
    jobs: int = 2
    """Worker processes (process) or CPUs of a local Ray cluster (ray without an address)."""
    ray_address: str | None = None
    """Ray cluster to join (default $RAY_ADDRESS; neither starts a local cluster)."""
    entries: Annotated[tuple[Path, ...], NONE_BY_DEFAULT] = ()
    """Extra folders of entries (each holding entry folders like eval/leaderboard/<name>/), for entries of your own
    outside the installed package."""
    replay_seed: int | None = None
    """Seed of the sample of shipped rows replayed (default: a fresh one, recorded in leaderboard.json; give a
    run's seed to check it again)."""


@dataclass(frozen=True)
class ValidateConfig:
    """Replay every row of a results.csv and recompute its derived columns."""

    results: Annotated[Path, tyro.conf.Positional]
    """The results.csv to check."""
    suite: str = "tcb-v3"
    """Suite the rows belong to."""


def run(cfg: RunConfig) -> int:
    from envs.benchmarks import get_suite
    from envs.io.run_lock import DirectoryLock, check_writable_dir
    from eval.executor import Executor
    from eval.leaderboard.board import STEP_TIME_CAPTION, side_by_side_markdown, step_time_markdown, table_markdown
    from eval.leaderboard.entries import discover, registry
    from eval.leaderboard.run import LeaderboardRun, resolve_agents, write_outputs

    executor = Executor(cfg.executor, cfg.jobs, cfg.ray_address)
    if not cfg.split:
        raise ValueError("--split needs at least one split")
    suite = get_suite(cfg.suite)
    for split in cfg.split:
        suite.instances(split)
    found = discover(extra=cfg.entries)
    for name, why in found.refused.items():
        log_progress(f"skipping entry {name}: {why}")
    agents = resolve_agents(cfg.agents, registry(discovery=found), suite)
    check_writable_dir(cfg.out)
    with DirectoryLock(cfg.out), executor:
        t0 = time.perf_counter()
        log_progress(f"{suite.name} {'+'.join(cfg.split)}: {len(agents)} agents -> {cfg.out}")
        lb = LeaderboardRun(suite, tuple(cfg.split), agents, recompute=cfg.recompute, executor=executor, discovery=found,
                            replay_seed=cfg.replay_seed)  # fmt: skip
        lb.run(log=log_progress)
        board = write_outputs(lb, cfg.out)
        log_progress(f"wrote {cfg.out}")
    print(side_by_side_markdown(board))
    for split, b in board["splits"].items():
        print(f"\n## {split}\n\n{table_markdown(b)}\n\n{STEP_TIME_CAPTION.format(device=suite.device)}\n\n"
              f"{step_time_markdown(b)}")  # fmt: skip
    if lb.shipped_agents:
        print(f"\nrows shipped by entries (a sample replayed, every derived column recomputed; --recompute runs them): "
              f"{', '.join(dict.fromkeys(lb.shipped_agents))}; replay seed {lb.replay_seed}")  # fmt: skip
    for agent, why in lb.refused.items():
        print(f"refused {agent}: {why}")
    print(f"\n{len(lb.rows)} runs in {time.perf_counter() - t0:.1f}s; wrote {cfg.out}/results.csv, leaderboard.json, "
          "leaderboard.md, report.html")  # fmt: skip
    return 0


@dataclass(frozen=True)
class ScoreConfig:
    """Score agents on your own trace: bytes moved, the score against the certified lower bound, and the step time,
    at each capacity (the same rows as a suite's)."""

    trace: Annotated[Path, tyro.conf.Positional]
    """Trace file (.npz, .csv or oracleGeneral)."""
    agents: str = "lru,next-use,schedule,belady,best-offline"
    """Comma-separated agent names: built-ins, leaderboard entries, and (tensor mode) the offline references
    cost-belady, lp-guided, best-offline."""
    capacity: Annotated[tuple[str, ...], NONE_BY_DEFAULT] = ()
    """Capacities in bytes or with a unit (4GiB)."""
    headroom: tuple[float, ...] = (0.3,)
    """Capacities as headroom fractions between the largest op and the peak live bytes (used without --capacity)."""
    mode: Literal["tensor", "classic"] = "tensor"
    entries: Annotated[tuple[Path, ...], NONE_BY_DEFAULT] = ()
    """Extra folders of entries."""
    json: bool = False
    """Print the rows as one JSON array."""


def score(cfg: ScoreConfig) -> int:
    from envs.benchmarks.own_trace import trace_instances
    from envs.sim.capacity import Headroom
    from envs.trace.formats import read_trace
    from eval.evaluate import evaluate
    from eval.leaderboard.entries import discover, registry
    from eval.provenance import package_versions
    from eval.rows import REFERENCE_ROWS, reference_row

    reg = registry(discovery=discover(extra=cfg.entries))
    caps = list(cfg.capacity) or [Headroom(h) for h in cfg.headroom]
    names = [a.strip() for a in cfg.agents.split(",") if a.strip()]
    if not names:
        raise ValueError("--agents names no agent")
    offline = REFERENCE_ROWS if cfg.mode == "tensor" else ()
    for a in names:
        if a not in offline:
            reg.spec(a)  # a one-line error naming the valid agents
    insts = trace_instances(read_trace(cfg.trace), caps, cfg.mode)
    versions = package_versions()
    rows = [
        row
        for a in names
        for row in ([reference_row(i, a, versions) for i in insts] if a in offline else
                    evaluate(reg.make(a), instances=insts, name=a, versions=versions).rows)
    ]  # fmt: skip
    if cfg.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'agent':<14} {'capacity':>14} {'GiB moved':>10} {'score':>7} {'s/step':>9} {'step ×':>7}")
    for r in rows:
        step = f"{r['step_s']:>9.4f} {r['speedup_step_vs_lru']:>6.3f}×" if r["step_s"] == r["step_s"] else f"{'–':>9} {'–':>7}"
        print(f"{r['agent']:<14} {r['capacity_bytes']:>14} {r['bytes_moved'] / 2**30:>10.3f} {r['norm_byte_score']:>7.3f} {step}")
    anchor = "certified lower bound" if cfg.mode == "tensor" else "Belady"
    for i in insts:
        print(f"capacity {i.capacity}: LRU moves {i.references.lru.bytes_moved / 2**30:.3f} GiB, the {anchor} "
              f"{i.anchor_bytes() / 2**30:.3f} GiB")  # fmt: skip
    print(f"score: (LRU bytes − bytes) / (LRU bytes − {anchor} bytes); s/step on the a100-80gb preset")
    return 0


def validate(cfg: ValidateConfig) -> int:
    from envs.benchmarks import get_suite
    from eval.leaderboard.replay import validate as replay

    if not cfg.results.is_file():
        raise ValueError(f"{cfg.results}: no such file")
    problems = replay(cfg.results, get_suite(cfg.suite))
    for prob in problems:
        print(f"MISMATCH {prob}")
    print("all rows confirmed" if not problems else f"{len(problems)} mismatches")
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["validate"]:
        vcfg = tyro.cli(ValidateConfig, prog="tensorcache-leaderboard validate", args=argv[1:])
        return run_cli(lambda: validate(vcfg))
    if argv[:1] == ["score"]:
        scfg = tyro.cli(ScoreConfig, prog="tensorcache-leaderboard score", args=argv[1:])
        return run_cli(lambda: score(scfg))
    cfg = tyro.cli(RunConfig, prog="tensorcache-leaderboard", args=argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
