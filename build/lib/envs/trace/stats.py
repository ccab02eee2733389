"""Trace statistics (the "validation statistics" of a workload), and the comparison of a trace against a reference.

Definitions (all over *requests*: every access except FREE):

- **reuse distance** of a request: the number of distinct *other* tensors requested since the previous request of
  the same tensor (undefined for a first request). Computed in O(N log N) with a Fenwick tree over the positions
  of each tensor's latest request.
- **reuse entropy**: Shannon entropy, in bits, of the reuse distances binned by ``floor(log2(1 + d))``.
- **temporal locality**: the fraction of requests whose reuse distance is below 64, i.e. the hit ratio of a
  64-tensor LRU cache counted in tensors (unit sizes).
- **KS D**: the two-sample Kolmogorov–Smirnov statistic between the two traces' distributions of
  ``log2(1 + reuse distance)`` (and separately of ``log2(size)``). Its p-value is computed on seeded subsamples
  of 500 values per side, because with tens of thousands of samples any difference is "significant".
- **Wasserstein distance** of the per-request ``log2(size)`` distributions (in units of doublings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import stats

from envs.trace.record import Kind, Trace

LOCALITY_WINDOW = 64
KS_SUBSAMPLE = 500


@numba.njit(cache=True)
def _reuse_distances(ids: np.ndarray, n_ids: int) -> np.ndarray:  # pragma: no cover - compiled
    n = ids.shape[0]
    tree = np.zeros(n + 1, dtype=np.int64)
    last = np.full(n_ids, -1, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        t = ids[i]
        p = last[t]
        if p >= 0:
            # distinct tensors whose latest request lies in (p, i): prefix(i-1) - prefix(p)
            s = 0
            j = i
            while j > 0:
                s += tree[j]
                j -= j & -j
            j = p + 1
            while j > 0:
                s -= tree[j]
                j -= j & -j
            out[i] = s
            j = p + 1
            while j <= n:
                tree[j] -= 1
                j += j & -j
        last[t] = i
        j = i + 1
        while j <= n:
            tree[j] += 1
            j += j & -j
    return out


def reuse_distances(trace: Trace) -> np.ndarray:
    """Reuse distance of every request (-1 for first requests)."""
    req = trace.requests()
    return _reuse_distances(trace.tensor_id[req], trace.n_tensors)


@dataclass(frozen=True)
class TraceStats:
    """Summary statistics of one trace (see the module docstring for definitions)."""

    n_accesses: int
    n_requests: int
    n_tensors: int
    total_bytes: int
    peak_live_bytes: int
    bytes_by_kind: dict[str, int]
    reuse_entropy_bits: float
    temporal_locality: float
    median_reuse_distance: float


def trace_stats(trace: Trace) -> TraceStats:
    """Computes :class:`TraceStats` for ``trace``."""
    rd = reuse_distances(trace)
    reused = rd[rd >= 0]
    if reused.size:
        bins = np.floor(np.log2(1 + reused)).astype(np.int64)
        p = np.bincount(bins) / reused.size
        p = p[p > 0]
        entropy = float(-(p * np.log2(p)).sum())
        median = float(np.median(reused))
    else:
        entropy, median = 0.0, float("nan")
    req = trace.requests()
    return TraceStats(
        n_accesses=len(trace),
        n_requests=int(req.size),
        n_tensors=trace.n_tensors,
        total_bytes=int(trace.size[req].sum()),
        peak_live_bytes=trace.peak_live_bytes(),
        bytes_by_kind=trace.bytes_by_kind(),
        reuse_entropy_bits=entropy,
        temporal_locality=float((reused < LOCALITY_WINDOW).sum() / max(req.size, 1)),
        median_reuse_distance=median,
    )


@dataclass(frozen=True)
class Comparison:
    """Distances between a trace and a reference trace."""

    ks_d_reuse: float
    ks_p_reuse_subsampled: float
    ks_d_size: float
    ks_p_size_subsampled: float
    wasserstein_log2_size: float


def _log_reuse(trace: Trace) -> np.ndarray:
    rd = reuse_distances(trace)
    return np.log2(1 + rd[rd >= 0].astype(np.float64))


def _log_size(trace: Trace) -> np.ndarray:
    return np.log2(trace.size[trace.requests()].astype(np.float64))


def _subsampled_p(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    if a.size == 0 or b.size == 0:
        return float("nan")
    sa = rng.choice(a, size=min(KS_SUBSAMPLE, a.size), replace=False)
    sb = rng.choice(b, size=min(KS_SUBSAMPLE, b.size), replace=False)
    return float(stats.ks_2samp(sa, sb).pvalue)


def compare(trace: Trace, reference: Trace, seed: int = 0) -> Comparison:
    """KS statistics and Wasserstein distance of ``trace`` against ``reference``."""
    rng = np.random.default_rng(seed)
    ra, rb = _log_reuse(trace), _log_reuse(reference)
    sa, sb = _log_size(trace), _log_size(reference)
    return Comparison(
        ks_d_reuse=float(stats.ks_2samp(ra, rb).statistic) if ra.size and rb.size else float("nan"),
        ks_p_reuse_subsampled=_subsampled_p(ra, rb, rng),
        ks_d_size=float(stats.ks_2samp(sa, sb).statistic),
        ks_p_size_subsampled=_subsampled_p(sa, sb, rng),
        wasserstein_log2_size=float(stats.wasserstein_distance(sa, sb)),
    )


def format_table(rows: list[tuple[str, TraceStats]]) -> str:
    """A fixed-width table of the main statistics, one row per named trace."""
    head = f"{'trace':<34} {'requests':>9} {'tensors':>8} {'peak GiB':>9} {'weights GiB':>11} "
    head += f"{'H(reuse)':>8} {'locality':>8} {'med RD':>7}"
    lines = [head, "-" * len(head)]
    for name, s in rows:
        lines.append(
            f"{name:<34} {s.n_requests:>9} {s.n_tensors:>8} {s.peak_live_bytes / 2**30:>9.2f} "
            f"{s.bytes_by_kind['weight'] / 2**30:>11.2f} {s.reuse_entropy_bits:>8.2f} "
            f"{s.temporal_locality:>8.3f} {s.median_reuse_distance:>7.0f}"
        )
    return "\n".join(lines)


__all__ = ["Comparison", "Kind", "TraceStats", "compare", "reuse_distances", "trace_stats"]
