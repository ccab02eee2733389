"""Normalized scores and their aggregation.

- Normalized byte score of a run = (LRU bytes moved − agent bytes moved) / (LRU bytes moved − Belady bytes moved):
  LRU = 0, Belady = 1; above 1 is possible (Belady is not optimal for variable sizes and write-backs) and is
  reported unclipped. Undefined (NaN) when Belady and LRU move the same bytes.
- Normalized hit score: the same on hit ratio.
- Aggregate over tasks: the interquartile mean (IQM, mean of the middle 50% of all per-run scores) with a 95%
  stratified-bootstrap confidence interval: runs are resampled within each task (``scipy.stats.bootstrap`` with
  one sample per task, resampled independently), as rliable does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def normalized(agent: float, lru: float, belady: float, lower_is_better: bool) -> float:
    """(agent − LRU) / (Belady − LRU) in the direction of improvement; NaN when Belady equals LRU."""
    gap = (lru - belady) if lower_is_better else (belady - lru)
    gain = (lru - agent) if lower_is_better else (agent - lru)
    return float(gain / gap) if gap != 0 else float("nan")


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis`` (scipy's 25%-trimmed mean)."""
    return stats.trim_mean(x, 0.25, axis=axis)


def aggregate(per_task: Sequence[np.ndarray], seed: int = 0, n_resamples: int = 2000) -> dict[str, float]:
    """IQM over all runs with a 95% stratified-bootstrap CI (strata = tasks)."""
    groups = [np.asarray(g, dtype=np.float64) for g in per_task]
    groups = [g[~np.isnan(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return {"iqm": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    point = float(iqm(np.concatenate(groups)))
    if all(g.size < 2 for g in groups):
        return {"iqm": point, "ci_low": point, "ci_high": point, "n": int(sum(g.size for g in groups))}
    res = stats.bootstrap(
        tuple(groups),
        lambda *xs: iqm(np.concatenate(xs)),
        n_resamples=n_resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    )
    return {
        "iqm": point,
        "ci_low": float(res.confidence_interval.low),
        "ci_high": float(res.confidence_interval.high),
        "n": int(sum(g.size for g in groups)),
    }
