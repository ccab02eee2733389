"""The policy catalogue: every eviction policy and strategy the project knows, once.

Each :class:`PolicySpec` says what a policy is (a legal heuristic, an offline reference that reads the future, or
the lower bound), how it runs (an engine code for the resumable compiled loop, whether that loop keeps it in the
lazy heap, a specialised whole-trace classic kernel) and one line for people. Everything else is derived from
:data:`CATALOGUE`: the engine's policy codes (:mod:`envs.sim.engine`), :data:`envs.sim.simulator.POLICY_CODES`,
the classic kernels' dispatch (:mod:`envs.sim.classic_fast`), :data:`envs.sim.offline.OFFLINE_REFERENCES` and
best-offline, the agent registry's built-ins (:func:`agents.registry.builtin_registry`), the leaderboard's agent
kinds and the Copilot's strategy list. ``tests/test_policy_catalogue.py`` checks every entry is wired into every
layer it claims.

Torch- and numba-free, so anything may import it.

To add a policy: one entry here, its victim rule in ``engine.choose_victim`` (or its key in ``engine._heap_key``
when ``heap``), a classic kernel if you want one, and (if it is an agent) its class in :mod:`agents.heuristics`;
see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What a strategy is: a legal heuristic (past accesses only), an offline reference (reads the future), or the
#: certified lower bound on bytes moved (no policy; no run beats it).
PolicyKind = Literal["heuristic", "offline", "bound"]
KINDS: tuple[str, ...] = ("heuristic", "offline", "bound")


@dataclass(frozen=True)
class PolicySpec:
    """One catalogue entry.

    Attributes:
        name: The name every layer uses (CLI, registry, leaderboard, Copilot).
        kind: See :data:`PolicyKind`.
        description: One line for people (help texts, the Copilot, the report).
        engine_code: Its code in the resumable engine (:mod:`envs.sim.engine`); None when it does not run there
            (a derived reference, a classic-only kernel, the bound).
        heap: The engine keeps it in the lazy heap, ordered by ``engine._heap_key``.
        classic_kernel: It has a specialised whole-trace classic-mode kernel in :mod:`envs.sim.classic_fast`.
        modes: Simulation modes it is defined for.
        agent: It is a built-in agent of the registry (a policy object that can play an episode).
    """

    name: str
    kind: PolicyKind
    description: str
    engine_code: int | None = None
    heap: bool = False
    classic_kernel: bool = False
    modes: tuple[str, ...] = ("tensor", "classic")
    agent: bool = False

    @property
    def legal(self) -> bool:
        """Whether it decides from the past alone (a policy one could deploy)."""
        return self.kind == "heuristic"


CATALOGUE: tuple[PolicySpec, ...] = (
    PolicySpec("lru", "heuristic", "Least recently used.", engine_code=0, classic_kernel=True, agent=True),
    PolicySpec("fifo", "heuristic", "First in, first out (oldest admission).", engine_code=1, classic_kernel=True, agent=True),
    PolicySpec("mru", "heuristic", "Most recently used (good for loops larger than memory).", engine_code=2, agent=True),
    PolicySpec(
        "lfu", "heuristic", "Least frequently used since admission (ties: least recent).", engine_code=3, heap=True, agent=True
    ),
    PolicySpec(
        "belady",
        "offline",
        "Belady's MIN: the farthest next use first (reads the future).",
        engine_code=4,
        heap=True,
        classic_kernel=True,
        agent=True,
    ),
    PolicySpec(
        "next-use",
        "heuristic",
        "Predicted next use = last access + previous reuse interval; farthest first.",
        engine_code=5,
        heap=True,
        agent=True,
    ),
    PolicySpec("random", "heuristic", "A uniformly random resident tensor (seeded).", engine_code=6, agent=True),
    PolicySpec(
        "sieve",
        "heuristic",
        "SIEVE (NSDI'24): FIFO order with a visited bit and a moving hand.",
        engine_code=7,
        classic_kernel=True,
        agent=True,
    ),
    PolicySpec(
        "schedule",
        "heuristic",
        "Farthest next use predicted from the previous iteration, lined up phase by phase (past only).",
        agent=True,
    ),
    PolicySpec(
        "s3fifo",
        "heuristic",
        "S3-FIFO (SOSP'23); classic mode only (it refuses large objects).",
        classic_kernel=True,
        modes=("classic",),
    ),
    PolicySpec(
        "cost-belady",
        "offline",
        "Least write-back and read-back bytes per byte-access freed (reads the future).",
        modes=("tensor",),
    ),
    PolicySpec("lp-guided", "offline", "Plays the lower-bound LP's solution (reads the future).", modes=("tensor",)),
    PolicySpec("best-offline", "offline", "Per run, the offline reference that moves the fewest bytes.", modes=("tensor",)),
    PolicySpec("lower-bound", "bound", "Certified lower bound on bytes moved: no policy moves fewer.", modes=("tensor",)),
)

_BY_NAME = {p.name: p for p in CATALOGUE}


def policy_spec(name: str) -> PolicySpec:
    """The catalogue entry ``name`` (ValueError naming the valid ones otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(_BY_NAME)}") from None


def kind_of(name: str) -> str | None:
    """The kind of catalogue entry ``name``; None for names outside the catalogue (learned agents)."""
    spec = _BY_NAME.get(name)
    return spec.kind if spec is not None else None


#: Engine policy codes by name (the resumable compiled loop's built-in choices).
ENGINE_CODES: dict[str, int] = {p.name: p.engine_code for p in CATALOGUE if p.engine_code is not None}
#: Names with a specialised classic kernel.
CLASSIC_KERNELS: tuple[str, ...] = tuple(p.name for p in CATALOGUE if p.classic_kernel)
#: Policies with a whole-trace classic kernel but no engine code (classic mode only).
CLASSIC_ONLY: tuple[str, ...] = tuple(p.name for p in CATALOGUE if p.classic_kernel and p.engine_code is None)
#: Offline references that are a run of their own, in tie-break order for best-offline.
OFFLINE_REFERENCES: tuple[str, ...] = tuple(p.name for p in CATALOGUE if p.kind == "offline" and p.name != "best-offline")
#: Every strategy that reads the future (offline references and best-offline).
OFFLINE_STRATEGIES: tuple[str, ...] = tuple(p.name for p in CATALOGUE if p.kind == "offline")
#: Built-in agents of the registry, in catalogue order.
AGENT_POLICIES: tuple[str, ...] = tuple(p.name for p in CATALOGUE if p.agent)
