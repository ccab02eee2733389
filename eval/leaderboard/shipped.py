"""Rows an entry ships instead of being replayed in full (for agents too slow for the main job).

Shipped rows are trusted for nothing but their raw counts, and those only after three checks:

1. **Plausible, before any work** (:func:`shipped_rows`): every row of the file names a split of the suite; for the
   run's split the suite's rows cover every instance exactly once (a split the suite ships no rows for may take
   another suite's rows of the very same instances: same trace hash, capacity and env version; no duplicates, no
   task or seed outside the split); each
   row's counts are integers that fit its trace: ``n_req`` and ``n_req_bytes`` equal the trace's (they do not depend
   on the policy), hits are at most requests, ``bytes_in`` is at most the missed bytes, bytes moved are at least
   the certified lower bound and at most twice the missed bytes (each byte admitted is fetched at most once and
   written back at most once), ``stall_bytes`` is at most bytes moved. A file that fails is refused with the reason;
   rows for other traces (a changed generator: trace hash, capacity or env version differ) make the runner run the
   agent instead.
2. **Replayed, a sample drawn unpredictably**: a fresh random seed per run (recorded in ``leaderboard.json`` so the
   run can be checked again) draws at least one instance of every family and at least :func:`replays_needed` in
   all, so that when a tenth of the rows is forged the sample finds one with probability at least 0.99; every raw
   count of the sample must replay exactly.
3. **Derived columns recomputed** from the raw counts and this run's reference runs.

Arithmetic of 2: with N rows of which K = ceil(N/10) are forged, a uniform sample of n rows misses all K with
probability C(N−K, n) / C(N, n) (hypergeometric); n is the smallest size for which that is at most 0.01: 16 of 21,
25 of 42, 29 of 63 rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eval.rows import REPLAYED_RAW, RowError, derive, parse_row, present

if TYPE_CHECKING:
    from envs.benchmarks import Instance
    from eval.leaderboard.entries import Entry

#: Fraction of forged rows the replay must catch, and the probability it may miss them.
FORGED_FRACTION, MISS_PROBABILITY = 0.1, 0.01


class ShippedRowsError(ValueError):
    """Shipped rows that are implausible or that a replay contradicted: the entry is refused."""


def replays_needed(n_rows: int, fraction: float = FORGED_FRACTION, miss: float = MISS_PROBABILITY) -> int:
    """The smallest sample of ``n_rows`` rows that finds one of ``ceil(fraction · n_rows)`` forged rows with
    probability at least ``1 − miss`` (sampling without replacement)."""
    forged = max(1, math.ceil(fraction * n_rows))
    for n in range(n_rows + 1):
        if math.comb(n_rows - forged, n) / math.comb(n_rows, n) <= miss:
            return n
    return n_rows


def read_shipped(entry: Entry) -> list[dict[str, Any]]:
    """The entry's shipped rows for its own agent name, typed.

    Raises:
        ShippedRowsError: When the file cannot be read or a row is malformed.
    """
    path = entry.shipped_rows_path
    if path is None:
        return []
    try:
        with path.open(newline="") as fh:
            rows = [parse_row(r, f"{path.name}:{i}") for i, r in enumerate(csv.DictReader(fh), 2)]
    except (RowError, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ShippedRowsError(f"entry {entry.name!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return [r for r in rows if r.get("agent") == entry.name]


def _trace_facts(inst: Instance) -> tuple[int, int, int | None]:
    """Requests and requested bytes of the instance's trace (policy-independent), and its certified bound."""
    from envs.trace import Op

    trace = inst.prepared.trace
    req = trace.op != Op.FREE  # every other access is a request, in both modes
    n_req_bytes = int(trace.size[req].sum())
    bound = inst.references.bound.bytes if inst.suite.bound_anchored and inst.references.bound is not None else None
    return int(req.sum()), n_req_bytes, bound


def implausible(row: dict[str, Any], inst: Instance) -> str | None:
    """Why a shipped row cannot be a run of ``inst`` (None when its counts fit the trace)."""
    n_req, n_req_bytes, bound = _trace_facts(inst)
    for col in ("walltime_s",):
        if not (math.isfinite(float(row[col])) and float(row[col]) >= 0):
            return f"{col} {row[col]!r} is not a finite non-negative number"
    if row["n_req"] != n_req or row["n_req_bytes"] != n_req_bytes:
        return f"n_req/n_req_bytes {row['n_req']}/{row['n_req_bytes']} differ from the trace's {n_req}/{n_req_bytes}"
    missed = row["n_req_bytes"] - row["n_hit_bytes"]
    if row["bytes_in"] > missed:
        return f"bytes_in {row['bytes_in']} exceeds the bytes missed ({missed})"
    moved = row["bytes_in"] + row["bytes_out"]
    if moved > 2 * missed:
        return f"bytes moved {moved} exceed twice the bytes missed ({2 * missed})"
    if bound is not None and moved < bound:
        return f"bytes moved {moved} are below the certified lower bound {bound}"
    if present(row, "stall_bytes") and row["stall_bytes"] > moved:
        return f"stall_bytes {row['stall_bytes']} exceed the bytes moved ({moved})"
    return None


def shipped_rows(entry: Entry, instances: list[Instance], valid_splits: tuple[str, ...] = ()) -> dict | None:
    """The entry's shipped rows for ``instances`` (one split of a run), keyed by (task, seed), after the checks of
    1 in the module docstring; None when the entry ships no rows for that split or ships them for other traces.

    Raises:
        ShippedRowsError: When the file is malformed or a row is implausible, duplicated, missing or not an instance.
    """
    rows = read_shipped(entry)
    if not rows or not instances:
        return None
    bad = next((r for r in rows if valid_splits and r["split"] not in valid_splits), None)
    if bad is not None:
        raise ShippedRowsError(f"entry {entry.name!r}: a shipped row names split {bad['split']!r}, not one of the suite's")
    split, suite = instances[0].split, instances[0].suite.name
    # a file may hold rows of several suites (one per suite and instance); this suite's rows are checked as its own,
    # and a split this suite ships no rows for may use another suite's rows of the very same instances (same trace,
    # capacity and env version: a later suite that keeps a split keeps its rows)
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["split"] == split:
            by_suite.setdefault(r["suite"], []).append(r)
    if not by_suite:
        return None
    by_key = {(i.task, i.seed): i for i in instances}
    keyed = _one_row_per_instance(entry, by_suite[suite], by_key, split) if suite in by_suite else None
    if keyed is None:  # another suite's rows, used only where every instance is the same
        for other in sorted(by_suite):
            candidate = {k: r for r in by_suite[other] if (k := (r["task"], r["seed"])) in by_key}
            if len(candidate) == len(by_key) and all(_same_instance(candidate[k], i) for k, i in by_key.items()):
                keyed = candidate
                break
        else:
            return None
    for key, inst in by_key.items():
        r = keyed[key]
        if not _same_instance(r, inst):
            return None  # rows of other traces: run the agent
        why = implausible(r, inst)
        if why is not None:
            raise ShippedRowsError(f"entry {entry.name!r}: shipped row {key[0]} seed {key[1]}: {why}")
    return keyed


def _one_row_per_instance(entry: Entry, rows: list[dict[str, Any]], by_key: dict, split: str) -> dict:
    """One suite's rows of one split keyed by (task, seed): exactly one per instance, none outside the split."""
    keyed: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["task"], r["seed"])
        if key not in by_key:
            raise ShippedRowsError(f"entry {entry.name!r}: shipped row {key[0]} seed {key[1]} is not an instance of {split}")
        if key in keyed:
            raise ShippedRowsError(f"entry {entry.name!r}: shipped row {key[0]} seed {key[1]} appears twice")
        keyed[key] = r
    if len(keyed) != len(by_key):
        raise ShippedRowsError(
            f"entry {entry.name!r}: its shipped rows cover {len(keyed)} of the {len(by_key)} instances of {split}"
        )
    return keyed


def _same_instance(row: dict[str, Any], inst: Instance) -> bool:
    """Whether a row was measured on this instance (its trace, capacity and env version)."""
    return (
        row["trace_hash"] == inst.prepared.trace.content_hash
        and row["capacity_bytes"] == inst.capacity
        and row["env_version"] == inst.suite.describe()["env_version"]
    )


def replay_sample(instances: list[Instance], rng: np.random.Generator, n: int) -> list[Instance]:
    """``max(n, families)`` instances (at most all): one of every family first, then uniformly from the rest."""
    by_family: dict[str, list[Instance]] = {}
    for inst in instances:
        by_family.setdefault(inst.family.name, []).append(inst)
    picked = [pool[int(rng.integers(len(pool)))] for pool in by_family.values()]
    rest = [i for i in instances if i not in picked]
    extra = max(0, min(n, len(instances)) - len(picked))
    picked += [rest[j] for j in rng.choice(len(rest), size=extra, replace=False)] if extra else []
    return picked


@dataclass(frozen=True)
class ShippedPlan:
    """An entry's shipped rows for a run's instances and the sample that must replay before they are used.

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


def plan_replay(entry: Entry, instances: list[Instance], seed: int, valid_splits: tuple[str, ...] = ()) -> ShippedPlan | None:
    """The entry's shipped rows for ``instances`` and the sample to replay (drawn with ``seed``), or None when it
    ships none for them.

    Raises:
        ShippedRowsError: When its shipped rows are implausible (see :func:`shipped_rows`).
    """
    rows = shipped_rows(entry, instances, valid_splits)
    if rows is None:
        return None
    rng = np.random.default_rng(seed)
    return ShippedPlan(entry, list(instances), rows, replay_sample(instances, rng, replays_needed(len(instances))))


def verified_rows(
    entry: Entry,
    instances: list[Instance],
    replay: Callable[[list[Instance]], list[dict[str, Any]]],
    seed: int = 0,
) -> list[dict[str, Any]] | None:
    """The entry's shipped rows for ``instances`` (derived columns recomputed), after replaying a sample.

    Args:
        replay: Runs the entry's agent on the given instances and returns their fresh rows.

    Returns:
        Rows in the order of ``instances``, or None when the entry ships no rows that cover them.

    Raises:
        ShippedRowsError: When the rows are implausible or a replayed row's raw counts differ from the shipped ones.
    """
    plan = plan_replay(entry, instances, seed)
    return None if plan is None else plan.verify(replay(plan.sample))
