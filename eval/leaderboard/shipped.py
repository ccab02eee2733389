"""Rows an entry ships instead of being replayed in full (for agents too slow for the main job).

Shipped rows are trusted for nothing but their raw counts, and those only after checks:

1. they cover every instance of the run, with matching trace hash, capacity, env version and agent name;
2. a seeded sample of them (at least :data:`MIN_REPLAYS` rows, from different families) is replayed now, and
   every raw count must match exactly;
3. their derived columns (ratios, scores) are recomputed from the raw counts and this run's reference runs.

A row that fails 1 makes the runner run the agent instead; a failed replay refuses the entry loudly.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eval.rows import REPLAYED_RAW, RowError, derive, parse_row, present

if TYPE_CHECKING:
    from envs.benchmarks import Instance
    from eval.leaderboard.entries import Entry

MIN_REPLAYS = 2


class ShippedRowsError(ValueError):
    """Shipped rows that a replay contradicted."""


def read_shipped(entry: Entry) -> list[dict[str, Any]]:
    """The entry's shipped rows for its own agent name, typed (RowError on a malformed row)."""
    path = entry.shipped_rows_path
    if path is None:
        return []
    with path.open(newline="") as fh:
        rows = [parse_row(r, f"{path}:{i}") for i, r in enumerate(csv.DictReader(fh), 2)]
    return [r for r in rows if r.get("agent") == entry.name]


def matching_rows(entry: Entry, instances: list[Instance]) -> dict[tuple[str, int], dict[str, Any]] | None:
    """The shipped rows keyed by (task, seed) if they cover ``instances`` exactly; None otherwise."""
    try:
        rows = {(r["task"], r["seed"]): r for r in read_shipped(entry)}
    except (RowError, OSError, UnicodeDecodeError):
        return None
    if not rows:
        return None
    for inst in instances:
        r = rows.get((inst.task, inst.seed))
        if (
            r is None
            or r["trace_hash"] != inst.prepared.trace.content_hash
            or r["capacity_bytes"] != inst.capacity
            or r["env_version"] != inst.suite.describe()["env_version"]
        ):
            return None
    return rows


def replay_sample(instances: list[Instance], seed: int, n: int = MIN_REPLAYS) -> list[Instance]:
    """A seeded sample of ``n`` instances from as many different families as possible."""
    rng = np.random.default_rng(seed)
    by_family: dict[str, list[Instance]] = {}
    for inst in instances:
        by_family.setdefault(inst.family.name, []).append(inst)
    families = list(by_family)
    rng.shuffle(families)
    picked: list[Instance] = []
    while len(picked) < min(n, len(instances)):
        for fam in families:
            pool = [i for i in by_family[fam] if i not in picked]
            if pool and len(picked) < n:
                picked.append(pool[int(rng.integers(len(pool)))])
    return picked


@dataclass(frozen=True)
class ShippedPlan:
    """An entry's shipped rows for a run's instances and the seeded sample that must replay before they are used.

    Attributes:
        entry: The entry that ships the rows.
        instances: The run's instances, in order.
        rows: The shipped rows keyed by (task, seed).
        sample: The instances to replay now.
    """

    entry: Entry
    instances: list[Instance]
    rows: dict[tuple[str, int], dict[str, Any]]
    sample: list[Instance]

    def seconds_hint(self, inst: Instance) -> float:
        """The shipped row's wall time for ``inst``: a scheduling hint only (never part of a result)."""
        seconds = float(self.rows[(inst.task, inst.seed)].get("walltime_s") or 0.0)
        return seconds if np.isfinite(seconds) else 0.0

    def verify(self, fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows in the order of the instances (derived columns recomputed), once ``fresh`` (the sample's
        replayed rows, in the sample's order) confirms every raw count.

        Raises:
            ShippedRowsError: When a replayed row's raw counts differ from the shipped ones.
        """
        for inst, row in zip(self.sample, fresh, strict=True):
            shipped = self.rows[(inst.task, inst.seed)]
            diffs = [c for c in REPLAYED_RAW if present(shipped, c) and int(shipped[c]) != int(row[c])]
            if diffs:
                raise ShippedRowsError(
                    f"entry {self.entry.name!r}: its shipped row for {inst.task} seed {inst.seed} does not replay "
                    f"({', '.join(f'{c} {shipped[c]} != {row[c]}' for c in diffs)}); refusing all its rows"
                )
        return [derive(self.rows[(i.task, i.seed)], i) for i in self.instances]


def plan_replay(entry: Entry, instances: list[Instance], seed: int = 0, n_replays: int = MIN_REPLAYS) -> ShippedPlan | None:
    """The entry's shipped rows for ``instances`` and the sample to replay, or None when it ships none that cover
    them (see :func:`matching_rows`)."""
    rows = matching_rows(entry, instances)
    if rows is None:
        return None
    return ShippedPlan(entry, list(instances), rows, replay_sample(instances, seed, n_replays))


def verified_rows(
    entry: Entry,
    instances: list[Instance],
    replay: Callable[[list[Instance]], list[dict[str, Any]]],
    seed: int = 0,
    n_replays: int = MIN_REPLAYS,
) -> list[dict[str, Any]] | None:
    """The entry's shipped rows for ``instances`` (derived columns recomputed), after replaying a sample.

    Args:
        replay: Runs the entry's agent on the given instances and returns their fresh rows.

    Returns:
        Rows in the order of ``instances``, or None when the entry ships no rows that cover them.

    Raises:
        ShippedRowsError: When a replayed row's raw counts differ from the shipped ones.
    """
    plan = plan_replay(entry, instances, seed, n_replays)
    return None if plan is None else plan.verify(replay(plan.sample))
