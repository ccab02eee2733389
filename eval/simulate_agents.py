"""``tensorcache-simulate``: :mod:`envs.cli.simulate_cli` with every registered agent added: the built-in
heuristics, the learned leaderboard entries (bc, ppo, llm, ...) and your own entry folders (``--entries``). Each
policy gives one row per capacity, the same columns whatever runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from envs.cli import NONE_BY_DEFAULT, run_cli
from envs.cli.simulate_cli import SimulateConfig, run


@dataclass(frozen=True)
class AgentSimulateConfig(SimulateConfig):
    """Simulate eviction policies and agents over a trace (give exactly one of --capacity, --capacity-fraction,
    --headroom)."""

    entries: Annotated[tuple[Path, ...], NONE_BY_DEFAULT] = ()
    """Extra folders of leaderboard entries whose agents --policy may name."""


def simulate_agents(cfg: AgentSimulateConfig) -> int:
    from agents.rollout import run_policy
    from eval.leaderboard.entries import discover, registry

    reg = registry(discovery=discover(extra=cfg.entries))

    def runner(name: str):
        return lambda prepared, capacity: run_policy(prepared, reg.make(name), capacity, seed=cfg.seed).result

    return run(cfg, {name: runner(name) for name in reg.names()})


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(AgentSimulateConfig, prog="tensorcache-simulate", args=argv)
    return run_cli(lambda: simulate_agents(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
