"""Normalized scores and their aggregation.

- Normalized scores of a run: :func:`envs.benchmarks.score.normalized` (LRU = 0, the suite's anchor = 1).
- Aggregate over tasks: the interquartile mean (IQM, mean of the middle 50% of all per-run scores) with a 95%
  stratified-bootstrap confidence interval: runs are resampled within each task (``scipy.stats.bootstrap`` with
  one sample per task, resampled independently), as rliable does.
- Probability of improvement between two agents, as in rliable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from envs.benchmarks.score import normalized

__all__ = ["aggregate", "iqm", "normalized", "probability_of_improvement"]


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis`` (scipy's 25%-trimmed mean)."""
    return stats.trim_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Arithmetic mean along ``axis``."""
    return np.mean(x, axis=axis)


STATISTICS = {"iqm": iqm, "mean": mean}


def aggregate(per_task: Sequence[np.ndarray], seed: int = 0, n_resamples: int = 2000, statistic: str = "iqm") -> dict[str, float]:
    """``statistic`` (``iqm`` or ``mean``) over all runs with a 95% stratified-bootstrap CI (strata = tasks).

    The point estimate is returned under the key ``iqm`` for ``statistic="iqm"`` and ``mean`` otherwise.
    """
    fn = STATISTICS[statistic]
    groups = [np.asarray(g, dtype=np.float64) for g in per_task]
    groups = [g[~np.isnan(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return {statistic: float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    point = float(fn(np.concatenate(groups)))
    if all(g.size < 2 for g in groups):
        return {statistic: point, "ci_low": point, "ci_high": point, "n": int(sum(g.size for g in groups))}
    res = stats.bootstrap(
        tuple(groups),
        lambda *xs, axis=-1: fn(np.concatenate(xs, axis=axis), axis=axis),
        n_resamples=n_resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return {
        statistic: point,
        "ci_low": float(res.confidence_interval.low),
        "ci_high": float(res.confidence_interval.high),
        "n": int(sum(g.size for g in groups)),
    }


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """P(X > Y) as in rliable: per task, the Mann-Whitney probability that a run of X beats a run of Y (ties
    count half), averaged over the tasks both have."""
    probs = []
    for a, b in zip(x, y, strict=True):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size and b.size:
            gt = (a[:, None] > b[None, :]).mean()
            eq = (a[:, None] == b[None, :]).mean()
            probs.append(gt + 0.5 * eq)
    return float(np.mean(probs)) if probs else float("nan")
