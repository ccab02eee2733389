"""The result-row schema shared by :func:`eval.evaluate.evaluate`, the leaderboard, its replay and its files.

A row holds *raw counts* (bytes in/out, hits, requests, decisions, wall time) plus everything needed to replay it
(suite, split, task, seed, trace hash, capacity, env and generator versions, agent and its config, package
versions). Its *derived* columns are always recomputed from the raw counts and the instance's reference runs by
:func:`derive`, never trusted from a file:

- ``bytes_ratio_vs_lru`` = LRU's bytes moved / the row's: a ratio of bytes, not of time.
- ``step_s``, ``compute_s``, ``stall_s``: seconds per steady-state step on the suite's accelerator, from the raw
  ``stall_bytes`` and the trace's op costs (:mod:`envs.sim.step_time`); ``speedup_step_vs_lru`` = LRU's
  ``step_s`` / the row's. NaN where step time is unknown (a trace without op costs, or a shipped row from before
  ``stall_bytes`` existed).
- ``norm_byte_score`` = (``lru_bytes`` − ``bytes_moved``) / (``lru_bytes`` − ``anchor_bytes``), where the anchor
  is the suite's: the certified lower bound (tcb-v2) or Belady's bytes (tcb-v1). With the bound it is at most 1.
- ``norm_hit_score``: the same on the hit ratio, with Belady's hit ratio as 1 (secondary).
- ``admitted``: LRU is at least ``min_lru_gap`` above the anchor; rows that are not are left out of aggregates.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from envs.benchmarks.score import normalized
from envs.sim.bandwidth import get_link
from envs.sim.policies import CATALOGUE

if TYPE_CHECKING:
    from agents.rollout import Run
    from envs.benchmarks import Instance
    from envs.benchmarks.references import References
    from envs.sim.simulator import SimResult

#: Columns that identify the run (strings unless listed in INTEGER/FLOAT).
IDENTITY = ("suite", "suite_version", "split", "task", "family", "headroom", "seed", "trace_hash", "capacity_bytes", "mode",
            "env_version", "generator_version", "agent", "agent_config")  # fmt: skip
#: Raw counts measured by the run.
RAW = ("n_req", "n_hit", "n_req_bytes", "n_hit_bytes", "bytes_in", "bytes_out", "decisions", "walltime_s")
#: Raw counts a row may lack (files written before they existed); what derives from them is then NaN.
OPTIONAL_RAW = ("stall_bytes",)
#: Columns recomputed from RAW and the instance's references.
DERIVED = ("hit_ratio", "byte_hit_ratio", "bytes_moved", "transfer_s", "lru_bytes", "anchor_bytes", "admitted",
           "bytes_ratio_vs_lru", "step_s", "compute_s", "stall_s", "speedup_step_vs_lru", "norm_byte_score",
           "norm_hit_score", "decisions_per_s")  # fmt: skip
#: Rows the suite's references provide (no policy runs for them): the offline references and the best of them.
REFERENCE_ROWS = tuple(p.name for p in CATALOGUE if p.kind == "offline" and not p.agent)
COLUMNS = (*IDENTITY, *RAW, *OPTIONAL_RAW, *DERIVED, "versions")
#: Raw counts a replay must reproduce exactly (wall time differs between runs, of course); an optional one only
#: where the row has it.
REPLAYED_RAW = (*(c for c in RAW if c != "walltime_s"), *OPTIONAL_RAW)
INTEGER = ("seed", "capacity_bytes", "n_req", "n_hit", "n_req_bytes", "n_hit_bytes", "bytes_in", "bytes_out", "stall_bytes",
           "decisions", "bytes_moved", "generator_version", "lru_bytes", "anchor_bytes", "admitted")  # fmt: skip
FLOAT = ("headroom", "walltime_s", "hit_ratio", "byte_hit_ratio", "transfer_s", "bytes_ratio_vs_lru", "step_s", "compute_s",
         "stall_s", "speedup_step_vs_lru", "norm_byte_score", "norm_hit_score", "decisions_per_s")  # fmt: skip


class RowError(ValueError):
    """A result row is malformed."""


def make_row(inst: Instance, agent: str, config: dict[str, Any], run: Run, versions: dict[str, str]) -> dict[str, Any]:
    """The row of one run of ``agent`` on ``inst``."""
    return _row(inst, agent, config, run.result, run.decisions, run.seconds, versions)


def reference_row(inst: Instance, agent: str, versions: dict[str, str], refs: References | None = None) -> dict[str, Any]:
    """The row of an offline reference (:data:`REFERENCE_ROWS`) from the instance's references."""
    refs = refs or inst.references
    if agent == "best-offline":
        r = refs.best_offline
        config = {"name": agent, "best_of": sorted(refs.offline), "chosen": r.policy}
    elif agent in refs.offline:
        r, config = refs.offline[agent], {"name": agent}
    else:
        raise ValueError(f"{inst.suite.name} has no offline reference {agent!r}; valid: {', '.join(refs.offline)}")
    return _row(inst, agent, config, r, r.n_evictions, 0.0, versions, refs)


def _row(inst: Instance, agent: str, config: dict[str, Any], r: SimResult, decisions: int, seconds: float,
         versions: dict[str, str], refs: References | None = None) -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = {
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
        "agent_config": json.dumps(config, sort_keys=True),
        "n_req": r.n_req,
        "n_hit": r.n_hit,
        "n_req_bytes": r.n_req_bytes,
        "n_hit_bytes": r.n_hit_bytes,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "stall_bytes": r.stall_bytes,
        "decisions": decisions,
        "walltime_s": seconds,
        "versions": json.dumps(versions, sort_keys=True),
    }
    return derive(row, inst, refs)


def derive(row: dict[str, Any], inst: Instance, refs: References | None = None) -> dict[str, Any]:
    """``row`` with every derived column recomputed from its raw counts and ``inst``'s reference runs (``refs``:
    those references, e.g. freshly recomputed ones; default: the instance's cached ones)."""
    out = dict(row)
    refs = refs or inst.references
    lru, belady = refs.lru, refs.belady
    anchor = inst.anchor_bytes(refs)
    moved = int(out["bytes_in"]) + int(out["bytes_out"])
    n_req, n_req_b = int(out["n_req"]), int(out["n_req_bytes"])
    hit_ratio = int(out["n_hit"]) / n_req if n_req else 0.0
    out["hit_ratio"] = hit_ratio
    out["byte_hit_ratio"] = int(out["n_hit_bytes"]) / n_req_b if n_req_b else 0.0
    out["bytes_moved"] = moved
    out["transfer_s"] = get_link(inst.suite.link).seconds(moved)
    out["lru_bytes"] = lru.bytes_moved
    out["anchor_bytes"] = anchor
    out["admitted"] = int(lru.bytes_moved >= (1.0 + inst.suite.min_lru_gap) * anchor)
    out["bytes_ratio_vs_lru"] = lru.bytes_moved / moved if moved else math.inf
    out.update(_step_columns(out.get("stall_bytes"), lru.stall_bytes, inst))
    out["norm_byte_score"] = normalized(moved, lru.bytes_moved, anchor, True)
    out["norm_hit_score"] = normalized(hit_ratio, lru.hit_ratio, belady.hit_ratio, False)
    wall = float(out["walltime_s"])
    out["decisions_per_s"] = int(out["decisions"]) / wall if wall > 0 else math.inf
    return out


def _step_columns(stall_bytes: int | None, lru_stall_bytes: int, inst: Instance) -> dict[str, float]:
    """``step_s``, ``compute_s``, ``stall_s`` and ``speedup_step_vs_lru`` of a row (NaN where unknown)."""
    from envs.sim.step_time import StepModel, step_time

    model = StepModel(inst.suite.device)
    mine = None if stall_bytes is None else step_time(inst.prepared, int(stall_bytes), model)
    if mine is None:
        return dict.fromkeys(("step_s", "compute_s", "stall_s", "speedup_step_vs_lru"), math.nan)
    lru = step_time(inst.prepared, lru_stall_bytes, model)
    assert lru is not None  # same trace: known for one run, known for all
    return {"step_s": mine.step_s, "compute_s": mine.compute_s, "stall_s": mine.stall_s,
            "speedup_step_vs_lru": lru.step_s / mine.step_s}  # fmt: skip


def present(row: dict[str, Any], column: str) -> bool:
    """Whether ``row`` holds a value for ``column`` (an optional raw count may be absent or empty)."""
    return row.get(column) not in (None, "")


def parse_row(raw: dict[str, str], where: str) -> dict[str, Any]:
    """A row read from CSV with its numeric columns typed.

    Raises:
        RowError: Naming the row and column when a column is missing or not a number.
    """
    missing = [c for c in (*IDENTITY, *RAW) if c not in raw or raw[c] is None]
    if missing:
        raise RowError(f"{where}: missing column(s) {', '.join(missing)}")
    out: dict[str, Any] = dict(raw)
    for columns, kind, what in ((INTEGER, int, "an integer"), (FLOAT, float, "a number")):
        for col in columns:
            if col in out and out[col] not in (None, ""):
                try:
                    out[col] = kind(out[col])
                except (ValueError, OverflowError):
                    raise RowError(f"{where}: column {col} is not {what}: {out[col]!r}") from None
    for col in OPTIONAL_RAW:
        if not present(out, col):
            out[col] = None
    for col in ("n_req", "n_hit", "n_req_bytes", "n_hit_bytes", "bytes_in", "bytes_out", "decisions", *OPTIONAL_RAW):
        if out[col] is not None and out[col] < 0:
            raise RowError(f"{where}: column {col} is negative")
    if out["n_hit"] > out["n_req"] or out["n_hit_bytes"] > out["n_req_bytes"]:
        raise RowError(f"{where}: more hits than requests")
    return out
