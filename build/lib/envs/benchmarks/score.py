"""The normalized score of one run against its references."""

from __future__ import annotations


def normalized(agent: float, lru: float, best: float, lower_is_better: bool) -> float:
    """(agent − LRU) / (best − LRU) in the direction of improvement: LRU = 0, ``best`` = 1; NaN when they tie."""
    gap = (lru - best) if lower_is_better else (best - lru)
    gain = (lru - agent) if lower_is_better else (agent - lru)
    return float(gain / gap) if gap != 0 else float("nan")
