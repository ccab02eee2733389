"""The reference runs of one suite instance: LRU (score 0), the offline references and the lower bound.

They are computed once per (trace, capacity) and cached beside the trace as JSON. A cached file is used only when
its trace hash, capacity and bound version match and its numbers are consistent (the bound is at most every
reference's bytes); anything else is recomputed. ``validate`` never reads the cache: it recomputes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from envs.sim.lower_bound import BOUND_VERSION, LowerBound, lower_bound
from envs.sim.offline import OFFLINE_REFERENCES, best_offline, residency_by_access, run_offline
from envs.sim.prepared import PreparedTrace
from envs.sim.simulator import SimResult, simulate


@dataclass(frozen=True)
class References:
    """LRU, the offline references (``belady``, and in tensor mode ``cost-belady`` and ``lp-guided``), and the
    lower bound (None where it is not computed)."""

    lru: SimResult
    offline: dict[str, SimResult] = field(default_factory=dict)
    bound: LowerBound | None = None

    @property
    def belady(self) -> SimResult:
        return self.offline["belady"]

    @property
    def best_offline(self) -> SimResult:
        """The offline reference that moves the fewest bytes (ties: the first in :data:`OFFLINE_REFERENCES`)."""
        return best_offline(self.offline.values())

    def to_dict(self) -> dict:
        return {
            "lru": asdict(self.lru),
            "offline": {k: asdict(v) for k, v in self.offline.items()},
            "bound": None if self.bound is None else self.bound.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> References:
        return cls(
            lru=SimResult(**d["lru"]),
            offline={k: SimResult(**v) for k, v in d["offline"].items()},
            bound=None if d["bound"] is None else LowerBound(**d["bound"]),
        )


def compute_references(prepared: PreparedTrace, capacity: int, with_bound: bool) -> References:
    """Runs LRU and the offline references, and (``with_bound``) solves the lower bound."""
    lru = simulate(prepared, "lru", capacity)
    if not with_bound:
        return References(lru, {"belady": simulate(prepared, "belady", capacity)})
    bound, x, intervals = lower_bound(prepared, capacity)
    residency = residency_by_access(prepared, x, intervals)
    offline = {name: run_offline(name, prepared, capacity, residency=residency) for name in OFFLINE_REFERENCES}
    return References(lru, offline, bound)


def _consistent(refs: References, prepared: PreparedTrace, capacity: int, with_bound: bool) -> bool:
    h = prepared.trace.content_hash
    runs = [refs.lru, *refs.offline.values()]
    if any(r.trace_hash != h or r.capacity_bytes != capacity for r in runs):
        return False
    if not with_bound:
        return "belady" in refs.offline
    b = refs.bound
    return (
        b is not None
        and b.version == BOUND_VERSION
        and b.trace_hash == h
        and b.capacity == capacity
        and set(refs.offline) == set(OFFLINE_REFERENCES)
        and 0 <= b.compulsory_bytes <= b.bytes <= min(r.bytes_moved for r in runs)
    )


def cached_references(prepared: PreparedTrace, capacity: int, with_bound: bool, cache: Path | None) -> References:
    """:func:`compute_references`, read from / written to ``cache`` (a JSON path) when given."""
    from envs.io.atomic import write_text_atomic

    if cache is not None and cache.is_file():
        try:
            refs = References.from_dict(json.loads(cache.read_text()))
            if _consistent(refs, prepared, capacity, with_bound):
                return refs
        except (OSError, ValueError, TypeError, KeyError):
            pass
    refs = compute_references(prepared, capacity, with_bound)
    if cache is not None:
        write_text_atomic(cache, json.dumps(refs.to_dict(), sort_keys=True))
    return refs
