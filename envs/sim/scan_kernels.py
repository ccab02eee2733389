"""Linear-time passes over a whole trace, compiled with numba: first-appearance renumbering of arbitrary 64-bit
keys (an open-addressing hash table that grows as keys arrive) and next-use indices by one backward scan. They
replace ``np.unique`` and ``np.lexsort`` (both O(n log n), with several n-sized temporaries) where traces are read
and prepared; results are identical (``tests/test_traces.py``, ``tests/test_simulator.py``)."""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1


@numba.njit(cache=True)
def _slot(key: np.int64, mask: np.int64) -> np.int64:
    h = np.uint64(key) * _GOLDEN
    return np.int64(h >> np.uint64(33)) & mask


@numba.njit(cache=True)
def renumber_first_seen(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids 0..m-1 numbered by first appearance of each key; returns (ids, m)."""
    n = keys.shape[0]
    ids = np.empty(n, dtype=np.int64)
    cap = 1 << 12
    table_key = np.empty(cap, dtype=np.int64)
    table_id = np.full(cap, _EMPTY, dtype=np.int64)
    count = 0
    for i in range(n):
        if 2 * (count + 1) > cap:  # keep the load factor at most 1/2: double and reinsert
            cap *= 2
            new_key = np.empty(cap, dtype=np.int64)
            new_id = np.full(cap, _EMPTY, dtype=np.int64)
            for s in range(table_id.shape[0]):
                if table_id[s] != _EMPTY:
                    j = _slot(table_key[s], cap - 1)
                    while new_id[j] != _EMPTY:
                        j = (j + 1) & (cap - 1)
                    new_key[j] = table_key[s]
                    new_id[j] = table_id[s]
            table_key, table_id = new_key, new_id
        k = keys[i]
        j = _slot(k, cap - 1)
        while True:
            if table_id[j] == _EMPTY:
                table_key[j] = k
                table_id[j] = count
                ids[i] = count
                count += 1
                break
            if table_key[j] == k:
                ids[i] = table_id[j]
                break
            j = (j + 1) & (cap - 1)
    return ids, count


@numba.njit(cache=True)
def next_use_scan(tid: np.ndarray, opc: np.ndarray, classic: bool, free_op: int, never: int) -> np.ndarray:
    """Index of the next access of the same tensor (``never`` if none, or, in tensor mode, if it is a FREE); in
    classic mode FREE records are skipped and get ``never``."""
    n = tid.shape[0]
    n_ids = 0
    for i in range(n):
        if tid[i] + 1 > n_ids:
            n_ids = tid[i] + 1
    last = np.full(n_ids, -1, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        if classic and opc[i] == free_op:
            nxt[i] = never
            continue
        t = tid[i]
        j = last[t]
        if j < 0 or (not classic and opc[j] == free_op):
            nxt[i] = never
        else:
            nxt[i] = j
        last[t] = i
    return nxt
