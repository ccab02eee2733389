"""Linear-time passes over a whole trace, compiled with numba: first-appearance renumbering of arbitrary 64-bit
keys (an open-addressing hash table that grows as keys arrive) and next-use indices by one backward scan. They
replace ``np.unique`` and ``np.lexsort`` (both O(n log n), with several n-sized temporaries) where traces are read
and prepared; results are identical (``tests/test_traces.py``, ``tests/test_simulator.py``)."""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Id of an empty slot. A slot holds a key and its id side by side (one 16-byte row), so a lookup touches one
#: cache line.
_EMPTY = -1


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(key: np.int64, mask: np.int64) -> np.int64:
    h = np.uint64(key) * _GOLDEN
    return np.int64(h >> np.uint64(33)) & mask


@numba.njit(cache=True, nogil=True)
def _new_table(slots: int) -> np.ndarray:
    table = np.empty((slots, 2), dtype=np.int64)
    table[:, 1] = _EMPTY
    return table


@numba.njit(cache=True, nogil=True, inline="always")
def _find_or_add(table: np.ndarray, key: np.int64, new_id: np.int64) -> np.int64:
    """The id of ``key``, adding it with ``new_id`` if it is absent (the caller keeps the load factor <= 1/2)."""
    mask = table.shape[0] - 1
    j = _slot(key, mask)
    while True:
        t = table[j, 1]
        if t == _EMPTY:
            table[j, 0] = key
            table[j, 1] = new_id
            return new_id
        if table[j, 0] == key:
            return t
        j = (j + 1) & mask


@numba.njit(cache=True, nogil=True)
def _grow(table: np.ndarray) -> np.ndarray:
    """The table rehashed into twice the slots."""
    grown = _new_table(2 * table.shape[0])
    for s in range(table.shape[0]):
        if table[s, 1] != _EMPTY:
            _find_or_add(grown, table[s, 0], table[s, 1])
    return grown


@numba.njit(cache=True, nogil=True)
def renumber_first_seen(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids 0..m-1 numbered by first appearance of each key; returns (ids, m)."""
    ids = np.empty(keys.shape[0], dtype=np.int64)
    table = _new_table(1 << 12)
    count = 0
    for i in range(keys.shape[0]):
        if 2 * (count + 1) > table.shape[0]:  # keep the load factor at most 1/2
            table = _grow(table)
        t = _find_or_add(table, keys[i], count)
        if t == count:
            count += 1
        ids[i] = t
    return ids, count


#: Keys below this are renumbered through a plain array indexed by the key (4 bytes a key, 16 MiB at most), which
#: stays in cache where the hash table would not; the first key outside it moves every key seen into the table.
DIRECT_KEYS = 1 << 22


class RequestRenumbering:
    """First-appearance renumbering of sized requests that arrive in chunks (a file read piece by piece).

    Each :meth:`add` maps a chunk's 64-bit keys to dense ids in ``out`` (skipping zero-size requests) and records
    every object's size, reporting the first request whose size differs from its object's first one. While every
    key is below :data:`DIRECT_KEYS` (traces whose ids are already small) the ids come from an array indexed by
    the key; after that from one open-addressing hash table with a load factor of at most 1/2. Either way the
    whole pass is O(n) and holds no n-sized temporary.

    Args:
        out: Where the dense ids go, in request order (as long as all chunks together).
    """

    def __init__(self, out: np.ndarray) -> None:
        self.out = out
        self.filled = 0
        self.count = 0
        self.direct = np.zeros(1 << 12, dtype=np.int32)  # id + 1 by key (0 = not seen); empty once hashing
        self.table = _new_table(1 << 12)
        self.object_size = np.zeros(1 << 11, dtype=np.int64)

    def add(self, keys: np.ndarray, sizes: np.ndarray) -> int:
        """Renumbers one chunk; returns the index in the chunk of the first size conflict, or -1.

        Raises:
            ValueError: If the chunk does not fit in what is left of ``out``.
        """
        if self.filled + keys.shape[0] > self.out.shape[0]:
            raise ValueError(f"{keys.shape[0]} more requests do not fit: {self.out.shape[0] - self.filled} places left")
        if not keys.shape[0]:
            return -1
        if self.direct.shape[0]:
            lo, hi = int(keys.min()), int(keys.max())
            if lo < 0 or hi >= DIRECT_KEYS:  # from now on, the hash table
                self.table = _table_of_direct(self.direct, self.count)
                self.direct = self.direct[:0]
            elif hi >= self.direct.shape[0]:
                grown = np.zeros(min(max(2 * self.direct.shape[0], hi + 1), DIRECT_KEYS), dtype=np.int32)
                grown[: self.direct.shape[0]] = self.direct
                self.direct = grown
        state = _renumber_chunk(keys, sizes, self.direct, self.table, self.object_size, self.count, self.out, self.filled)
        self.table, self.object_size, self.count, self.filled, bad = state
        return int(bad)

    def sizes(self) -> np.ndarray:
        """Size in bytes of every dense id."""
        return self.object_size[: self.count]


@numba.njit(cache=True, nogil=True)
def _renumber_chunk(keys, sizes, direct, table, object_size, count, out, filled):  # pragma: no cover - compiled
    """Renumbers one chunk through ``direct`` (indexed by the key) or, when it is empty, ``table``; returns the
    state and the chunk index of the first size conflict (-1 if none)."""
    by_key = direct.shape[0] > 0
    for i in range(keys.shape[0]):
        s = np.int64(sizes[i])
        if s == 0:
            continue
        if by_key:
            k = keys[i]
            t = np.int64(direct[k]) - 1
            if t < 0:
                t = count
                direct[k] = count + 1
        else:
            if 2 * (count + 1) > table.shape[0]:
                table = _grow(table)
            t = _find_or_add(table, np.int64(keys[i]), count)
        if t == count:
            if count == object_size.shape[0]:
                grown = np.zeros(2 * count, dtype=np.int64)
                grown[:count] = object_size
                object_size = grown
            object_size[t] = s
            count += 1
        elif object_size[t] != s:
            return table, object_size, count, filled, i
        out[filled] = t
        filled += 1
    return table, object_size, count, filled, -1


@numba.njit(cache=True, nogil=True)
def _table_of_direct(direct, count):  # pragma: no cover - compiled
    """The hash table holding every key the direct array has seen, with its id."""
    slots = 1 << 12
    while 2 * (count + 1) > slots:
        slots *= 2
    table = _new_table(slots)
    for k in range(direct.shape[0]):
        if direct[k] > 0:
            _find_or_add(table, np.int64(k), np.int64(direct[k]) - 1)
    return table


@numba.njit(cache=True, nogil=True)
def first_size_conflict(tid: np.ndarray, size: np.ndarray, n_ids: int) -> int:
    """Index of the first access whose size differs from the first size seen for its id, or -1 (one pass)."""
    first = np.zeros(n_ids, dtype=np.int64)
    for i in range(tid.shape[0]):
        t = tid[i]
        if first[t] == 0:
            first[t] = size[i]
        elif first[t] != size[i]:
            return i
    return -1


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


@numba.njit(cache=True, nogil=True)
def largest_op(tid: np.ndarray, opc: np.ndarray, op_index: np.ndarray, sizes: np.ndarray, free_op: int) -> tuple[int, int]:
    """``(op, bytes)`` of the op whose distinct non-FREE operands take the most bytes (the first such op on a tie;
    ``(0, 0)`` when no op has one); ``op_index`` is non-decreasing, so one pass suffices."""
    seen = np.full(sizes.shape[0], -1, dtype=np.int64)  # the last op each tensor was counted in
    best_op, best, cur_op, cur = 0, 0, -1, 0
    for i in range(tid.shape[0]):
        op = op_index[i]
        if op != cur_op:
            if cur > best:
                best_op, best = cur_op, cur
            cur_op, cur = op, 0
        t = tid[i]
        if opc[i] != free_op and seen[t] != op:
            seen[t] = op
            cur += sizes[t]
    if cur > best:
        best_op, best = cur_op, cur
    return best_op, best
