"""The agent registry: one place that lists every agent a run can name.

Built-in agents (the heuristics and the offline reference Belady) are registered here; leaderboard entry folders
feed learned agents into a copy of it (:func:`eval.leaderboard.entries.registry`). A registry is an ordinary
object: nothing is registered at import time, and every caller gets its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agents.base import Policy
from agents.heuristics import FIFO, LFU, LRU, MRU, SIEVE, Belady, NextUsePredictor, Random, ScheduleAware
from envs.sim.policies import AGENT_POLICIES, kind_of, policy_spec

#: Agents that anchor the normalized scores: no entry may take these names.
REFERENCE_AGENTS = ("lru", "belady")


@dataclass(frozen=True)
class AgentSpec:
    """A named agent and how to build a fresh policy of it.

    Attributes:
        name: Registry name.
        factory: Zero-argument callable returning a fresh :class:`~agents.base.Policy`.
        kind: ``builtin`` or the kind of the entry that registered it.
        legal: False for offline references that read the future.
        source: Where it comes from (a module or an entry folder), for messages.
    """

    name: str
    factory: Callable[[], Policy]
    kind: str = "builtin"
    legal: bool = True
    source: str = "agents"


class Registry:
    """Agents by name, in registration order."""

    def __init__(self, specs: tuple[AgentSpec, ...] | list[AgentSpec] = ()) -> None:
        self._specs: dict[str, AgentSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: AgentSpec) -> None:
        """Adds an agent.

        Raises:
            ValueError: If the name is empty, malformed or taken.
        """
        if not spec.name or spec.name != spec.name.strip() or "," in spec.name:
            raise ValueError(f"agent name {spec.name!r} is empty or contains commas or surrounding spaces")
        if spec.name in self._specs:
            other = self._specs[spec.name]
            raise ValueError(f"agent name {spec.name!r} from {spec.source} is already taken by {other.source}")
        self._specs[spec.name] = spec

    def copy(self) -> Registry:
        return Registry(list(self._specs.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> AgentSpec:
        """The spec called ``name``; ValueError naming the valid agents otherwise."""
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(f"unknown agent {name!r}; valid: {', '.join(self._specs)}") from None

    def make(self, name: str) -> Policy:
        """A fresh policy of agent ``name``."""
        return self.spec(name).factory()

    def kind(self, name: str) -> str:
        """What agent or strategy ``name`` is: its catalogue kind (``heuristic``, ``offline``, ``bound``) for
        built-in policies and strategies, else ``learned`` for a registered agent that reads only the past and
        ``offline`` for one that does not. The leaderboard and the Copilot both ask here.

        Raises:
            ValueError: For a name neither in the catalogue nor registered.
        """
        catalogued = kind_of(name)
        if catalogued is not None:
            return catalogued
        return "learned" if self.spec(name).legal else "offline"


#: The policy class of each built-in agent of the catalogue (:data:`envs.sim.policies.AGENT_POLICIES`).
BUILTIN_CLASSES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (LRU, FIFO, MRU, LFU, Random, SIEVE, NextUsePredictor, ScheduleAware, Belady)
}


def builtin_registry() -> Registry:
    """A new registry holding the catalogue's built-in agents (the heuristics and Belady), in catalogue order."""
    return Registry(
        [
            AgentSpec(name, BUILTIN_CLASSES[name], legal=policy_spec(name).legal, source="agents.heuristics")
            for name in AGENT_POLICIES
        ]
    )


def make_policy(name: str) -> Policy:
    """A fresh built-in policy by name (ValueError naming the valid ones otherwise)."""
    return builtin_registry().make(name)
