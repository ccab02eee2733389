"""Runs agents over a suite split and writes results.csv, leaderboard.json/md and the HTML report."""

from __future__ import annotations

import csv
import json
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agents import BASELINES, Policy, make_policy
from agents.runner import Run, run_policy, run_policy_batched
from eval.leaderboard.entries import Entry, discover
from eval.metrics import aggregate, normalized
from eval.suites import Instance, Suite

PACKAGES = ("tensorcache-gym", "numpy", "numba", "gymnasium", "torch", "scipy")
FLOAT_TOL = 1e-9


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def known_agents() -> list[str]:
    """Built-in baselines plus every entry folder under ``eval/leaderboard/``."""
    return list(dict.fromkeys([*BASELINES, *discover()]))


def make_agent(name: str) -> Policy:
    """A fresh policy for an agent name: a built-in baseline or a leaderboard entry."""
    if name in BASELINES:
        return make_policy(name)
    entries = discover()
    if name not in entries:
        raise ValueError(f"unknown agent {name!r}; valid: {', '.join(known_agents())}")
    return entries[name].make()


def resolve_agents(spec: str) -> list[str]:
    """``all`` = every baseline and entry; otherwise a comma-separated list (unknown names raise ValueError)."""
    valid = known_agents()
    names = list(valid) if spec == "all" else [a.strip() for a in spec.split(",") if a.strip()]
    for n in names:
        if n not in valid:
            raise ValueError(f"unknown agent {n!r}; valid: all, {', '.join(valid)}")
    for ref in ("lru", "belady"):
        if ref not in names:
            names.append(ref)  # references for the normalized score
    return names


def run_row(inst: Instance, agent: str, policy: Policy, refs: dict[str, float], versions: dict, run: Run | None = None) -> dict:
    run = run or run_policy(inst.prepared, policy, inst.capacity, seed=inst.seed)
    r = run.result
    return {
        "suite": inst.suite.name,
        "suite_version": inst.suite.version,
        "split": inst.split,
        "task": inst.task,
        "family": inst.family.name,
        "headroom": inst.headroom,
        "seed": inst.seed,
        "trace_hash": r.trace_hash,
        "capacity_bytes": r.capacity_bytes,
        "mode": r.mode,
        "env_version": inst.suite.describe()["env_version"],
        "generator_version": inst.suite.describe()["generator_version"],
        "agent": agent,
        "agent_config": json.dumps(policy.config(), sort_keys=True),
        "n_req": r.n_req,
        "n_hit": r.n_hit,
        "hit_ratio": r.hit_ratio,
        "byte_hit_ratio": r.byte_hit_ratio,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "bytes_moved": r.bytes_moved,
        "transfer_s": r.transfer_seconds(inst.suite.link),
        "speedup_vs_lru": refs["lru_moved"] / r.bytes_moved if r.bytes_moved else float("inf"),
        "norm_byte_score": normalized(r.bytes_moved, refs["lru_moved"], refs["belady_moved"], True),
        "norm_hit_score": normalized(r.hit_ratio, refs["lru_hr"], refs["belady_hr"], False),
        "decisions": run.decisions,
        "decisions_per_s": run.decisions / run.seconds if run.seconds > 0 else float("inf"),
        "walltime_s": run.seconds,
        "versions": json.dumps(versions, sort_keys=True),
    }


def usable_precomputed(entry: Entry | None, instances: list[Instance]) -> dict[tuple, dict] | None:
    """An entry's shipped rows keyed by (task, seed), if they cover ``instances`` with matching trace hashes,
    capacities and env version; None otherwise (the agent is then run)."""
    if entry is None:
        return None
    rows = {(r["task"], int(r["seed"])): r for r in entry.precomputed_rows() if r.get("agent") == entry.name}
    if not rows:
        return None
    for inst in instances:
        r = rows.get((inst.task, inst.seed))
        if (
            r is None
            or r["trace_hash"] != inst.prepared.trace.content_hash
            or int(r["capacity_bytes"]) != inst.capacity
            or r["env_version"] != inst.suite.describe()["env_version"]
        ):
            return None
    return rows


NUMERIC = ("headroom", "hit_ratio", "byte_hit_ratio", "transfer_s", "speedup_vs_lru", "norm_byte_score", "norm_hit_score",
           "decisions_per_s", "walltime_s")  # fmt: skip
INTEGER = ("seed", "capacity_bytes", "n_req", "n_hit", "bytes_in", "bytes_out", "bytes_moved", "decisions")


def _typed(row: dict) -> dict:
    out = dict(row)
    for k in NUMERIC:
        out[k] = float(out[k])
    for k in INTEGER:
        out[k] = int(out[k])
    return out


@dataclass
class LeaderboardRun:
    suite: Suite
    split: str
    agents: list[str]
    rows: list[dict] = field(default_factory=list)
    recompute: bool = False
    precomputed_agents: list[str] = field(default_factory=list)

    def run(self, progress: bool | None = None) -> list[dict]:
        versions = package_versions()
        instances = self.suite.instances(self.split)
        entries = discover()
        shipped = {} if self.recompute else {a: usable_precomputed(entries.get(a), instances) for a in self.agents}
        shipped = {a: rows for a, rows in shipped.items() if rows is not None}
        self.precomputed_agents = sorted(shipped)
        policies = {a: make_agent(a) for a in self.agents if a not in shipped}
        batched = {
            a: run_policy_batched([(i.prepared, i.capacity, i.seed) for i in instances], p)
            for a, p in policies.items()
            if p.batched
        }
        disable = not sys.stderr.isatty() if progress is None else not progress
        for index, inst in enumerate(tqdm(instances, desc=f"{self.suite.name}/{self.split}", disable=disable)):
            ref_lru, ref_bel = inst.references
            refs = {
                "lru_moved": ref_lru.bytes_moved,
                "belady_moved": ref_bel.bytes_moved,
                "lru_hr": ref_lru.hit_ratio,
                "belady_hr": ref_bel.hit_ratio,
            }
            for agent in self.agents:
                if agent in shipped:
                    self.rows.append(_typed(shipped[agent][(inst.task, inst.seed)]))
                else:
                    run = batched[agent][index] if agent in batched else None
                    self.rows.append(run_row(inst, agent, policies[agent], refs, versions, run))
        return self.rows

    def board(self) -> dict:
        tasks = self.suite.tasks()
        out = {
            "suite": self.suite.name,
            "split": self.split,
            "tasks": tasks,
            "n_rows": len(self.rows),
            **{k: v for k, v in self.suite.describe().items() if k in ("env_version", "generator_version")},
            "agents": {},
        }
        for agent in self.agents:
            mine = [r for r in self.rows if r["agent"] == agent]
            by_task = {t: np.array([r["norm_byte_score"] for r in mine if r["task"] == t]) for t in tasks}
            hit_by_task = {t: np.array([r["norm_hit_score"] for r in mine if r["task"] == t]) for t in tasks}
            out["agents"][agent] = {
                "byte_score": aggregate(list(by_task.values())),
                "hit_score": aggregate(list(hit_by_task.values())),
                "per_task": {t: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for t, v in by_task.items()},
                "mean_byte_hit_ratio": float(np.mean([r["byte_hit_ratio"] for r in mine])),
                "mean_speedup_vs_lru": float(np.mean([r["speedup_vs_lru"] for r in mine])),
                "decisions_per_s": float(np.median([r["decisions_per_s"] for r in mine])),
            }
        return out


def table_markdown(board: dict) -> str:
    rows = sorted(board["agents"].items(), key=lambda kv: -np.nan_to_num(kv[1]["byte_score"]["iqm"], nan=-9))
    lines = [
        "| rank | agent | byte score IQM [95% CI] | hit score IQM [95% CI] | mean byte hit ratio | speed-up vs LRU |",
        "|---:|---|---|---|---:|---:|",
    ]
    for i, (a, d) in enumerate(rows, 1):
        b, h = d["byte_score"], d["hit_score"]
        lines.append(
            f"| {i} | {a} | {b['iqm']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}] | "
            f"{h['iqm']:.3f} [{h['ci_low']:.3f}, {h['ci_high']:.3f}] | {d['mean_byte_hit_ratio']:.4f} | "
            f"{d['mean_speedup_vs_lru']:.3f} |"
        )
    return "\n".join(lines)


def write_outputs(lb: LeaderboardRun, out: Path) -> dict:
    from eval.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(lb.rows[0]))
        writer.writeheader()
        writer.writerows(lb.rows)
    board = lb.board()
    board["suite_definition"] = lb.suite.describe()
    (out / "leaderboard.json").write_text(json.dumps(board, indent=2, default=float))
    md = table_markdown(board)
    per_task = [
        "",
        "Per-task normalized byte score (mean over test seeds):",
        "",
        "| agent | " + " | ".join(board["tasks"]) + " |",
        "|---|" + "---:|" * len(board["tasks"]),
    ]
    for a, d in sorted(board["agents"].items()):
        per_task.append(f"| {a} | " + " | ".join(f"{d['per_task'][t]:.2f}" for t in board["tasks"]) + " |")
    (out / "leaderboard.md").write_text(f"# {board['suite']} ({board['split']})\n\n{md}\n" + "\n".join(per_task) + "\n")
    write_report(board, lb.rows, out, md)
    return board


def validate(results_csv: Path, suite: Suite) -> list[str]:
    """Replays every row of a results.csv; returns a list of mismatches (empty = all confirmed)."""
    problems: list[str] = []
    with results_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    insts = {}
    for row in rows:
        key = (row["split"], row["family"], int(row["seed"]), float(row["headroom"]))
        if key not in insts:
            matches = [i for i in suite.instances(row["split"]) if (i.split, i.family.name, i.seed, i.headroom) == key]
            if not matches:
                problems.append(f"{row['task']} seed {row['seed']}: not an instance of {suite.name}")
                continue
            insts[key] = matches[0]
        inst = insts[key]
        if inst.prepared.trace.content_hash != row["trace_hash"]:
            problems.append(f"{row['task']} seed {row['seed']}: trace hash differs (generator changed?)")
            continue
        r = run_policy(inst.prepared, make_agent(row["agent"]), inst.capacity, seed=inst.seed).result
        for col, val in (
            ("bytes_moved", r.bytes_moved),
            ("n_hit", r.n_hit),
            ("capacity_bytes", r.capacity_bytes),
        ):
            if int(row[col]) != val:
                problems.append(f"{row['task']} seed {row['seed']} {row['agent']}: {col} {row[col]} != {val}")
    return problems
