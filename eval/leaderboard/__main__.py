"""``tensorcache-leaderboard`` (``python -m eval.leaderboard``): evaluate agents on a suite split, or
``tensorcache-leaderboard validate DIR/results.csv`` to replay a published results file."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from envs.cli import run_cli


@dataclass(frozen=True)
class RunConfig:
    """Evaluate agents on one split of a suite and write results.csv, leaderboard.json/.md and report.html.
    (Subcommand: `validate RESULTS.csv` replays a results file.)"""

    suite: str = "tcb-v2"
    """Benchmark suite (tcb-v2; tcb-v1 is kept to replay old results)."""
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
    entries: tuple[Path, ...] = ()
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
    suite: str = "tcb-v2"
    """Suite the rows belong to."""


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
        _log(f"skipping entry {name}: {why}")
    agents = resolve_agents(cfg.agents, registry(discovery=found), suite)
    check_writable_dir(cfg.out)
    with DirectoryLock(cfg.out), executor:
        t0 = time.perf_counter()
        _log(f"{suite.name} {'+'.join(cfg.split)}: {len(agents)} agents -> {cfg.out}")
        lb = LeaderboardRun(suite, tuple(cfg.split), agents, recompute=cfg.recompute, executor=executor, discovery=found,
                            replay_seed=cfg.replay_seed)  # fmt: skip
        lb.run(log=_log)
        board = write_outputs(lb, cfg.out)
        _log(f"wrote {cfg.out}")
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
    cfg = tyro.cli(RunConfig, prog="tensorcache-leaderboard", args=argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
