"""Linear-time passes over a whole trace, compiled with numba: first-appearance renumbering of arbitrary 64-bit
keys (an open-addressing hash table that grows as keys arrive) and next-use indices by one backward scan. They
replace ``np.unique`` and ``np.lexsort`` (both O(n log n), with several n-sized temporaries) where traces are read
and prepared; results are identical (``tests/test_traces.py``, ``tests/test_simulator.py``)."""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: Value of an empty slot. A filled slot holds ``id << 32 | size`` beside its key in one 16-byte row, so a lookup
#: touches one cache line (ids < 2**31; sizes < 2**32, oracleGeneral's field; renumbering alone stores size 0).
_EMPTY = -1
_LOW32 = np.int64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(key: np.int64, mask: np.int64) -> np.int64:
    h = np.uint64(key) * _GOLDEN
    return np.int64(h >> np.uint64(33)) & mask


@numba.njit(cache=True, nogil=True)
def _new_table(slots: int) -> np.ndarray:
    table = np.empty((slots, 2), dtype=np.int64)
    table[:, 1] = _EMPTY
    return table


@numba.njit(cache=True, nogil=True)
def _grow(table: np.ndarray) -> np.ndarray:
    """The table rehashed into twice the slots."""
    mask = 2 * table.shape[0] - 1
    grown = _new_table(mask + 1)
    for s in range(table.shape[0]):
        if table[s, 1] != _EMPTY:
            j = _slot(table[s, 0], mask)
            while grown[j, 1] != _EMPTY:
                j = (j + 1) & mask
            grown[j, 0] = table[s, 0]
            grown[j, 1] = table[s, 1]
    return grown


@numba.njit(cache=True, nogil=True, inline="always")
def _find_or_add(table: np.ndarray, key: np.int64, count: np.int64, size: np.int64) -> np.int64:
    """The slot value of ``key`` (``id << 32 | size``), adding it as id ``count`` with ``size`` if it is new (the
    caller keeps the load factor <= 1/2)."""
    mask = table.shape[0] - 1
    j = _slot(key, mask)
    while True:
        v = table[j, 1]
        if v == _EMPTY:
            table[j, 0] = key
            table[j, 1] = (count << 32) | size
            return table[j, 1]
        if table[j, 0] == key:
            return v
        j = (j + 1) & mask


@numba.njit(cache=True, nogil=True)
def renumber_first_seen(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids 0..m-1 numbered by first appearance of each key; returns (ids, m)."""
    ids = np.empty(keys.shape[0], dtype=np.int64)
    table = _new_table(1 << 12)
    count = 0
    for i in range(keys.shape[0]):
        if 2 * (count + 1) > table.shape[0]:  # keep the load factor at most 1/2
            table = _grow(table)
        t = _find_or_add(table, keys[i], count, 0) >> 32
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
        self.direct: np.ndarray | None = np.zeros(1 << 12, dtype=np.int32)  # id + 1 by key; 0 = not seen
        self.table = _new_table(1 << 12)
        self.object_size = np.zeros(1 << 11, dtype=np.int64)

    def add(self, keys: np.ndarray, sizes: np.ndarray) -> int:
        """Renumbers one chunk (``sizes`` below 2**32); returns the index in the chunk of the first size conflict,
        or -1.

        Raises:
            ValueError: If the chunk does not fit in what is left of ``out``.
        """
        if self.filled + keys.shape[0] > self.out.shape[0]:
            raise ValueError(f"{keys.shape[0]} more requests do not fit: {self.out.shape[0] - self.filled} places left")
        if not keys.shape[0]:
            return -1
        if self.direct is not None:
            lo, hi = int(keys.min()), int(keys.max())
            if lo >= 0 and hi < DIRECT_KEYS:
                if hi >= self.direct.shape[0]:
                    grown = np.zeros(min(max(2 * self.direct.shape[0], hi + 1), DIRECT_KEYS), dtype=np.int32)
                    grown[: self.direct.shape[0]] = self.direct
                    self.direct = grown
                if self.object_size.shape[0] < self.count + keys.shape[0]:
                    grown = np.zeros(max(2 * self.object_size.shape[0], self.count + keys.shape[0]), dtype=np.int64)
                    grown[: self.object_size.shape[0]] = self.object_size
                    self.object_size = grown
                state = _renumber_direct(keys, sizes, self.direct, self.object_size, self.count, self.out, self.filled)
                self.count, self.filled, bad = state
                return int(bad)
            self.table, self.object_size = _table_of_direct(self.direct, self.object_size, self.count)
            self.direct = None
        state = _renumber_sized(keys, sizes, self.table, self.object_size, self.count, self.out, self.filled)
        self.table, self.object_size, self.count, self.filled, bad = state
        return int(bad)

    def sizes(self) -> np.ndarray:
        """Size in bytes of every dense id."""
        return self.object_size[: self.count]


@numba.njit(cache=True, nogil=True)
def _renumber_sized(keys, sizes, table, object_size, count, out, filled):  # pragma: no cover - compiled
    for i in range(keys.shape[0]):
        s = np.int64(sizes[i])
        if s == 0:
            continue
        if 2 * (count + 1) > table.shape[0]:
            table = _grow(table)
            grown = np.zeros(table.shape[0] // 2, dtype=np.int64)
            grown[: object_size.shape[0]] = object_size
            object_size = grown
        v = _find_or_add(table, np.int64(keys[i]), count, s)
        t = v >> 32
        if t == count:
            object_size[t] = s
            count += 1
        elif v & _LOW32 != s:
            return table, object_size, count, filled, i
        out[filled] = t
        filled += 1
    return table, object_size, count, filled, -1


@numba.njit(cache=True, nogil=True)
def _renumber_direct(keys, sizes, direct, object_size, count, out, filled):  # pragma: no cover - compiled
    for i in range(keys.shape[0]):
        s = np.int64(sizes[i])
        if s == 0:
            continue
        k = keys[i]
        t = np.int64(direct[k]) - 1
        if t < 0:
            t = count
            direct[k] = count + 1
            object_size[t] = s
            count += 1
        elif object_size[t] != s:
            return count, filled, i
        out[filled] = t
        filled += 1
    return count, filled, -1


@numba.njit(cache=True, nogil=True)
def _table_of_direct(direct, object_size, count):  # pragma: no cover - compiled
    """The hash table (and an object-size array sized for it) holding every key the direct array has seen."""
    slots = 1 << 12
    while 2 * (count + 1) > slots:
        slots *= 2
    table = _new_table(slots)
    for k in range(direct.shape[0]):
        if direct[k] > 0:
            t = np.int64(direct[k]) - 1
            _find_or_add(table, np.int64(k), t, object_size[t])
    sized = np.zeros(slots // 2, dtype=np.int64)
    sized[:count] = object_size[:count]
    return table, sized


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
