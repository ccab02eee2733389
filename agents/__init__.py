"""Eviction agents behind one interface (:class:`agents.base.Policy`), and their registry."""

from __future__ import annotations

from collections.abc import Callable

from agents.base import Policy, ScorerPolicy
from agents.heuristics import FIFO, LFU, LRU, MRU, SIEVE, NextUsePredictor, Random
from agents.oracle import Belady, Oracle

BASELINES: dict[str, Callable[[], Policy]] = {
    "lru": LRU,
    "fifo": FIFO,
    "mru": MRU,
    "lfu": LFU,
    "random": Random,
    "sieve": SIEVE,
    "next-use": NextUsePredictor,
    "belady": Belady,
}


def make_policy(name: str) -> Policy:
    """A fresh baseline policy by name.

    Raises:
        ValueError: Naming the valid policies when ``name`` is unknown.
    """
    try:
        return BASELINES[name]()
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(BASELINES)}") from None


__all__ = ["BASELINES", "Belady", "Oracle", "Policy", "ScorerPolicy", "make_policy"]
