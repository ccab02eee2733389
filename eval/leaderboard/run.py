"""A leaderboard run: every agent over one split of a suite, through :func:`eval.evaluate.evaluate`, and the
files it writes (results.csv, leaderboard.json, leaderboard.md, report.html)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from agents import REFERENCE_AGENTS, Registry
from envs.atomic_io import write_text_atomic
from envs.benchmarks import Suite
from eval.evaluate import evaluate
from eval.leaderboard.board import make_board, per_task_markdown, table_markdown
from eval.leaderboard.entries import Discovery, discover, registry
from eval.leaderboard.shipped import verified_rows
from eval.provenance import package_versions
from eval.rows import COLUMNS


def resolve_agents(spec: str, reg: Registry) -> list[str]:
    """``all`` = every registered agent; otherwise a comma-separated list. The references are always added.

    Raises:
        ValueError: On an unknown name or an empty list.
    """
    names = reg.names() if spec.strip() == "all" else [a.strip() for a in spec.split(",") if a.strip()]
    if not names:
        raise ValueError(f"--agents {spec!r} names no agent; valid: all, {', '.join(reg.names())}")
    for n in names:
        reg.spec(n)
    for ref in REFERENCE_AGENTS:
        if ref not in names:
            names.append(ref)
    return list(dict.fromkeys(names))


@dataclass
class LeaderboardRun:
    """Evaluates ``agents`` on one split of ``suite``.

    Attributes:
        recompute: Run every agent, ignoring rows that entries ship.
        replay_seed: Seed of the sample of shipped rows replayed before the rest are used.
    """

    suite: Suite
    split: str
    agents: list[str]
    recompute: bool = False
    replay_seed: int = 0
    discovery: Discovery | None = None
    rows: list[dict] = field(default_factory=list)
    shipped_agents: list[str] = field(default_factory=list)

    def run(self, log=None) -> list[dict]:
        found = self.discovery or discover()
        reg = registry(discovery=found)
        versions = package_versions()
        instances = self.suite.instances(self.split)
        for agent in self.agents:
            entry = found.entries.get(agent)

            def replay(insts, agent=agent):
                return evaluate(reg.make(agent), instances=insts, name=agent, versions=versions).rows

            shipped = None
            if entry is not None and not self.recompute:
                shipped = verified_rows(entry, instances, replay, seed=self.replay_seed)
            if shipped is not None:
                self.shipped_agents.append(agent)
                self.rows.extend(shipped)
            else:
                self.rows.extend(replay(instances))
            if log is not None:
                log(f"{agent}: {len(instances)} runs done")
        return self.rows

    def board(self) -> dict:
        return make_board(self.rows, self.suite.describe(), self.split, self.agents, self.suite.tasks())


def rows_csv(rows: list[dict]) -> str:
    """Rows as CSV text in the schema's column order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(lb: LeaderboardRun, out: Path) -> dict:
    """Writes results.csv, leaderboard.json, leaderboard.md and the report into ``out`` (each file atomically)."""
    from eval.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.csv", rows_csv(lb.rows))
    board = lb.board()
    write_text_atomic(out / "leaderboard.json", json.dumps(board, indent=2, default=float))
    md = table_markdown(board)
    write_text_atomic(
        out / "leaderboard.md",
        f"# {board['suite']} ({board['split']})\n\n{md}\n\nPer-task normalized byte score (mean over seeds):\n\n"
        f"{per_task_markdown(board)}\n",
    )
    write_report(board, lb.rows, out)
    return board
