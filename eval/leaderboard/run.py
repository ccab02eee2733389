"""A leaderboard run: every agent over one split of a suite, through :func:`eval.evaluate.evaluate`, and the
files it writes (results.csv, leaderboard.json, leaderboard.md, report.html)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from agents import REFERENCE_AGENTS, Registry
from envs.benchmarks import Instance, Suite
from envs.io.atomic import write_text_atomic
from eval.evaluate import evaluate
from eval.executor import Executor, chunked
from eval.leaderboard.board import (
    STEP_TIME_CAPTION,
    make_board,
    per_task_markdown,
    side_by_side_markdown,
    step_time_markdown,
    table_markdown,
)
from eval.leaderboard.entries import Discovery, discover, registry
from eval.leaderboard.shipped import ShippedPlan, ShippedRowsError, plan_replay
from eval.provenance import package_versions, run_provenance
from eval.rows import COLUMNS, REFERENCE_ROWS, reference_row


def reference_rows_of(suite: Suite) -> tuple[str, ...]:
    """The offline-reference rows a suite provides (only suites anchored on the lower bound run them)."""
    return REFERENCE_ROWS if suite.bound_anchored else ()


def resolve_agents(spec: str, reg: Registry, suite: Suite | None = None) -> list[str]:
    """``all`` = every registered agent (and the suite's reference rows); otherwise a comma-separated list. LRU,
    Belady and (suites anchored on the bound) ``best-offline`` are always added.

    Raises:
        ValueError: On an unknown name or an empty list.
    """
    refs = reference_rows_of(suite) if suite is not None else ()
    valid = [*reg.names(), *refs]
    names = list(valid) if spec.strip() == "all" else [a.strip() for a in spec.split(",") if a.strip()]
    if not names:
        raise ValueError(f"--agents {spec!r} names no agent; valid: all, {', '.join(valid)}")
    for n in names:
        if n not in refs:
            reg.spec(n)
    for ref in (*REFERENCE_AGENTS, *(("best-offline",) if refs else ())):
        if ref not in names:
            names.append(ref)
    return list(dict.fromkeys(names))


def _references_of(inst: Instance):
    return inst.references


def warm_references(instances: list[Instance], executor: Executor, log=None) -> None:
    """Generates the traces and solves the references of ``instances`` through ``executor`` (each result is cached
    beside its trace where the worker runs, and handed back to this process)."""
    todo = [i for i in instances if "references" not in i.__dict__]
    for inst, refs in zip(todo, executor.map(_references_of, todo), strict=True):
        inst.__dict__["references"] = refs
    if log is not None and todo:
        where = "serial" if executor.kind == "serial" else f"{executor.kind}, {executor.jobs} jobs"
        log(f"references: {len(todo)} instances ({where})")


def _evaluate_chunk(task: tuple[str, list[Instance], dict, tuple[Path, ...]]) -> list[dict]:
    agent, instances, versions, extra = task
    reg = registry(discovery=discover(extra=extra)) if extra else registry()
    return evaluate(reg.make(agent), instances=instances, name=agent, versions=versions).rows


#: Order-of-magnitude seconds per request of an agent run without a timing hint, by entry kind (measured on this
#: machine: heuristics in the engine, a candidate network in lockstep, an LLM); they only order the work.
_SECONDS_PER_REQUEST = {"baseline": 3e-7, "exported-net": 3e-5, "llm": 3e-3}


@dataclass
class _Job:
    """One agent on one split: the chunks of instances it sends to the executor and how their rows become its rows."""

    split: str
    agent: str
    instances: list[Instance]
    chunks: list[list[Instance]]
    hints: list[float]
    plan: ShippedPlan | None
    reference: bool = False

    def rows(self, fresh: list[dict], versions: dict) -> list[dict]:
        """This job's rows from the executor's rows for its chunks (a shipped plan's replayed sample is checked).

        Raises:
            ShippedRowsError: When the replayed sample contradicts the shipped rows.
        """
        if self.reference:
            return [reference_row(inst, self.agent, versions) for inst in self.instances]
        return fresh if self.plan is None else self.plan.verify(fresh)


@dataclass
class LeaderboardRun:
    """Evaluates ``agents`` on one or more splits of ``suite``.

    Attributes:
        recompute: Run every agent, ignoring rows that entries ship.
        replay_seed: Seed of the sample of shipped rows replayed before the rest are used; None (the default) draws
            a fresh one, so nobody knows in advance which rows will be replayed. It is recorded in the board.
        executor: Where instances run (:class:`eval.executor.Executor`); results do not depend on it.
        refused: Agents left out of this run, with the reason (implausible or contradicted shipped rows, a score
            above the bound); the others go on.
        replayed: Per agent that shipped rows and per split, (rows replayed, rows used).
    """

    suite: Suite
    splits: tuple[str, ...]
    agents: list[str]
    recompute: bool = False
    replay_seed: int | None = None
    executor: Executor = field(default_factory=lambda: Executor("serial"))
    discovery: Discovery | None = None
    rows: list[dict] = field(default_factory=list)
    shipped_agents: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    replayed: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.splits, str):
            self.splits = (self.splits,)
        if self.replay_seed is None:
            import secrets

            self.replay_seed = secrets.randbits(63)

    def run(self, log=None) -> list[dict]:
        """Evaluates every agent on every split and returns the rows (split by split, agent by agent).

        All the work of the run goes to the executor as one batch, longest first (shipped rows' wall times are the
        hint for replays), so a long replay of one agent overlaps the other agents instead of idling the other
        workers; the rows do not depend on the order.
        """
        found = self.discovery or discover()
        versions = package_versions()
        by_split = {split: self.suite.instances(split) for split in self.splits}
        warm_references([inst for insts in by_split.values() for inst in insts], self.executor, log)
        jobs = []
        for split, insts in by_split.items():
            for agent in self.agents:
                try:
                    jobs.append(self._job(split, agent, insts, found))
                except ShippedRowsError as exc:
                    self._refuse(agent, str(exc), log)
        jobs = [j for j in jobs if j.agent not in self.refused]
        tasks = [(job.agent, chunk, versions, found.extra) for job in jobs for chunk in job.chunks]
        hints = [hint for job in jobs for hint in job.hints]
        order = sorted(range(len(tasks)), key=lambda i: -hints[i])
        if log is not None:
            log(f"{len(tasks)} tasks for {len(jobs)} agent-split pairs ({self.executor.kind})")
        done: list[list[dict]] = [[] for _ in tasks]
        for i, part in zip(order, self.executor.map(_evaluate_chunk, [tasks[i] for i in order]), strict=True):
            done[i] = part
        parts = iter(done)  # in task order: each job's chunks in turn
        for job in jobs:
            fresh = [row for _ in job.chunks for row in next(parts)]
            if job.agent in self.refused:
                continue
            try:
                rows = job.rows(fresh, versions)
            except ShippedRowsError as exc:
                self._refuse(job.agent, str(exc), log)
                continue
            over = [r for r in rows if self.suite.bound_anchored and r["norm_byte_score"] > 1.0 + 1e-12]
            if over:
                r = over[0]
                why = (
                    f"{job.agent} scores {r['norm_byte_score']} > 1 on {r['task']} seed {r['seed']}: a run below "
                    "the certified lower bound (a simulator or bound bug: please report it)"
                )
                self._refuse(job.agent, why, log)
                continue
            self.rows.extend(rows)
            if job.plan is not None:
                self.shipped_agents.append(job.agent)
                self.replayed.setdefault(job.agent, {})[job.split] = (len(job.plan.sample), len(job.instances))
            if log is not None:
                log(f"{job.split}: {job.agent}: {len(by_split[job.split])} runs done")
        self.rows = [r for r in self.rows if r["agent"] not in self.refused]
        return self.rows

    def _refuse(self, agent: str, why: str, log=None) -> None:
        """Leaves ``agent`` out of this run (all splits), saying why."""
        if agent not in self.refused:
            self.refused[agent] = why
            if log is not None:
                log(f"refused {agent}: {why}")

    @property
    def ranked_agents(self) -> list[str]:
        """The run's agents less the refused ones."""
        return [a for a in self.agents if a not in self.refused]

    def _job(self, split: str, agent: str, instances: list[Instance], found: Discovery) -> _Job:
        if agent in REFERENCE_ROWS:
            return _Job(split, agent, instances, [], [], None, reference=True)
        entry = found.entries.get(agent)
        valid = tuple(self.suite.seeds)
        use = entry is not None and not self.recompute
        plan = plan_replay(entry, instances, self.replay_seed, valid) if use else None
        if plan is not None:  # one instance per task, so the sample replays in parallel
            hints = [plan.seconds_hint(i) for i in plan.sample]
            return _Job(split, agent, instances, [[i] for i in plan.sample], hints, plan)
        chunks = chunked(instances, self.executor.jobs if self.executor.kind != "serial" else 1)
        per_request = _SECONDS_PER_REQUEST.get(entry.kind if entry is not None else "", max(_SECONDS_PER_REQUEST.values()))
        hints = [per_request * sum(len(i.prepared.tid) for i in c) for c in chunks]
        return _Job(split, agent, instances, chunks, hints, None)

    def kinds(self) -> dict[str, str]:
        """What each agent of the run is (:meth:`agents.registry.Registry.kind`)."""
        reg = registry(discovery=self.discovery or discover())
        return {a: reg.kind(a) for a in self.ranked_agents}

    def board(self) -> dict:
        """One board per split (see :func:`eval.leaderboard.board.make_board`)."""
        desc = self.suite.describe()
        kinds = self.kinds()
        return {
            "suite": self.suite.name,
            "splits": {
                s: make_board(
                    [r for r in self.rows if r["split"] == s],
                    desc,
                    s,
                    self.ranked_agents,
                    self.suite.tasks(s),
                    kinds,
                    {a: d[s] for a, d in self.replayed.items() if s in d},
                )
                for s in self.splits
            },
            "suite_definition": desc,
            "replay_seed": self.replay_seed,
            "refused": dict(self.refused),
            "provenance": run_provenance(),
        }


def run_notes_markdown(board: dict) -> str:
    """The replay seed of the run and the agents it refused, with the reason."""
    lines = [f"Shipped rows were checked by replaying a sample drawn with seed {board['replay_seed']} "
             "(`--replay-seed` draws the same sample again)."]  # fmt: skip
    lines += [f"\n- refused **{a}**: {why}" for a, why in board.get("refused", {}).items()]
    return "".join(lines)


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
    parts = [f"# {board['suite']}\n\n{side_by_side_markdown(board)}\n\n{run_notes_markdown(board)}\n"]
    for split, b in board["splits"].items():
        parts.append(f"## {split}\n\n{table_markdown(b)}\n\nPer-task normalized byte score (mean over seeds):\n\n"
                     f"{per_task_markdown(b)}\n\n{STEP_TIME_CAPTION.format(device=board['suite_definition']['device'])}"
                     f"\n\n{step_time_markdown(b)}\n")  # fmt: skip
    write_text_atomic(out / "leaderboard.md", "\n".join(parts))
    write_report(board, lb.rows, out)
    return board
