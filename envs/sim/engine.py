"""The compiled cache engine: one resumable loop for classic and tensor semantics, every built-in policy, and a
pause flag that stops at each eviction so Python (the env, a learned agent) picks the victim.

State lives in plain arrays so numba can compile it and Python can inspect it between decisions:

- ``T``: int64 matrix, one row per tensor id, columns ``F_*`` below;
- ``S``: int64 vector of scalars, indices ``S_*`` below (counters, list heads, the pending decision);
- ``H``: the lazy binary heap (rows of ``k1, k2, id, stamp``) for priority policies. It is allocated once with
  room for twice the tensors and compacted (stale rows dropped) when full, so it is never reallocated and the
  compiled calls need not hand it back.

Semantics (see :mod:`envs.sim` for the prose): classic mode makes every non-FREE access a READ and treats each
access as its own op; tensor mode pins all tensors of the running op, allocates on WRITE without a transfer,
writes back dirty victims and drops FREEd tensors at no cost.
"""

from __future__ import annotations

import numba
import numpy as np

from envs.sim.policies import CATALOGUE, ENGINE_CODES

# policy codes, from the catalogue (S[S_PAUSE] = 1 makes any of them pause at each eviction for an external choice);
# plain int globals, which the compiled loops read as constants
LRU, FIFO, MRU, LFU = ENGINE_CODES["lru"], ENGINE_CODES["fifo"], ENGINE_CODES["mru"], ENGINE_CODES["lfu"]
BELADY, NEXT_USE, RANDOM, SIEVE = ENGINE_CODES["belady"], ENGINE_CODES["next-use"], ENGINE_CODES["random"], ENGINE_CODES["sieve"]
NEVER = np.iinfo(np.int64).max // 4
#: Policies that keep the lazy heap ``H`` (ordered by :func:`_heap_key`).
HEAP_POLICIES = tuple(p.engine_code for p in CATALOGUE if p.heap)
# access op codes (equal to envs.trace.Op; plain ints so the compiled loops read them as constants)
OP_READ, OP_WRITE, OP_FREE = 0, 1, 2

# per-tensor columns
(
    F_SIZE,
    F_RES,
    F_DIRTY,
    F_LAST,
    F_INSERT,
    F_FREQ,
    F_INTERVAL,
    F_PIN,
    F_LPREV,
    F_LNEXT,
    F_QPREV,
    F_QNEXT,
    F_DENSE,
    F_NEXT,
    F_STAMP,
    F_VISITED,
    F_NACC,
) = range(17)
N_FIELDS = 17

# scalars
(
    S_POS,
    S_STAGE,
    S_CAP,
    S_USED,
    S_PEAK,
    S_NREQ,
    S_HITS,
    S_REQB,
    S_HITB,
    S_BIN,
    S_BOUT,
    S_NEVICT,
    S_LHEAD,
    S_LTAIL,
    S_QHEAD,
    S_QTAIL,
    S_NDENSE,
    S_HSIZE,
    S_RNG,
    S_HAND,
    S_VICTIM,
    S_POLICY,
    S_CLASSIC,
    S_CUROP,
    S_DECISIONS,
    S_INCOMING,
    S_NOTADMIT,
    S_PAUSE,
    S_STEADY,
    S_OPIN,
    S_OPOUT,
    S_STALLB,
) = range(32)
N_SCALARS = 32

NEED_DECISION, DONE, REACHED_STOP = 1, 0, 2


# ---------------------------------------------------------------------------------------------- accessors
# The slot layout above belongs to this package. Compiled code elsewhere (the observation, the fused step) reads
# the state through these getters, inlined by numba, and Python reads it through :class:`envs.sim.Simulation`.
@numba.njit(cache=True, inline="always")
def tensor_size(T, t):  # pragma: no cover - compiled
    return T[t, F_SIZE]


@numba.njit(cache=True, inline="always")
def tensor_last_access(T, t):  # pragma: no cover - compiled
    return T[t, F_LAST]


@numba.njit(cache=True, inline="always")
def tensor_frequency(T, t):  # pragma: no cover - compiled
    return T[t, F_FREQ]


@numba.njit(cache=True, inline="always")
def tensor_reuse_interval(T, t):  # pragma: no cover - compiled
    return T[t, F_INTERVAL]


@numba.njit(cache=True, inline="always")
def tensor_dirty(T, t):  # pragma: no cover - compiled
    return T[t, F_DIRTY]


@numba.njit(cache=True, inline="always")
def request_counts(S):  # pragma: no cover - compiled
    """(hits, requests, bytes moved) so far."""
    return S[S_HITS], S[S_NREQ], S[S_BIN] + S[S_BOUT]


@numba.njit(cache=True, inline="always")
def n_resident(S):  # pragma: no cover - compiled
    """Resident tensors (the first this many entries of the dense id array)."""
    return S[S_NDENSE]


@numba.njit(cache=True, inline="always")
def now(S):  # pragma: no cover - compiled
    """Index of the current access."""
    return S[S_POS]


@numba.njit(cache=True, inline="always")
def incoming(S):  # pragma: no cover - compiled
    """Tensor id that needs room at the pending decision (-1: none)."""
    return S[S_INCOMING]


@numba.njit(cache=True, inline="always")
def capacity(S):  # pragma: no cover - compiled
    return S[S_CAP]


@numba.njit(cache=True, inline="always")
def used_bytes(S):  # pragma: no cover - compiled
    return S[S_USED]


@numba.njit(cache=True, inline="always")
def stall_bytes(S):  # pragma: no cover - compiled
    """Link bytes on the critical path so far: per steady-state op, the larger of its fetches and write-backs
    (the running op included)."""
    return S[S_STALLB] + max(S[S_OPIN], S[S_OPOUT])


@numba.njit(cache=True, inline="always")
def _close_op(S):  # pragma: no cover - compiled
    """Adds the finished op's link bytes to the stall sum (fetch and write-back directions run at once)."""
    S[S_STALLB] += max(S[S_OPIN], S[S_OPOUT])
    S[S_OPIN] = 0
    S[S_OPOUT] = 0


@numba.njit(cache=True, inline="always")
def set_victim(S, t):  # pragma: no cover - compiled
    """Answers the pending decision with tensor ``t``."""
    S[S_VICTIM] = t


def new_state(
    sizes: np.ndarray, capacity: int, policy: int, classic: bool, seed: int = 0, pause: bool = False, steady_from: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh engine state for a trace whose tensor ``sizes`` are given (index = tensor id).

    ``steady_from`` is the first access of the trace's steady state (its second iteration; see
    :attr:`envs.sim.prepared.PreparedTrace.steady_from`): from there on the engine sums, op by op, the larger of the
    bytes an op fetches and the bytes its evictions write back (``stall_bytes``, what the step-time model of
    :mod:`envs.sim.step_time` charges to the link)."""
    n = sizes.shape[0]
    T = np.zeros((n, N_FIELDS), dtype=np.int64)
    T[:, F_SIZE] = sizes
    T[:, F_LAST] = -1
    T[:, F_INTERVAL] = 0
    T[:, F_PIN] = -1
    T[:, [F_LPREV, F_LNEXT, F_QPREV, F_QNEXT, F_DENSE]] = -1
    S = np.zeros(N_SCALARS, dtype=np.int64)
    S[S_CAP] = capacity
    S[[S_LHEAD, S_LTAIL, S_QHEAD, S_QTAIL, S_HAND, S_VICTIM, S_CUROP, S_INCOMING]] = -1
    S[S_RNG] = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & 0x7FFFFFFFFFFFFFFF or 1
    S[S_POLICY] = policy
    S[S_CLASSIC] = 1 if classic else 0
    S[S_PAUSE] = 1 if pause else 0
    S[S_STEADY] = steady_from
    H = np.zeros((2 * n + 16 if policy in HEAP_POLICIES else 16, 4), dtype=np.int64)
    return T, S, H


# ---------------------------------------------------------------------------------------------- linked lists
@numba.njit(cache=True, inline="always")
def _unlink(T, S, t, fp, fn, sh, st):  # pragma: no cover - compiled
    p, n = T[t, fp], T[t, fn]
    if p >= 0:
        T[p, fn] = n
    else:
        S[sh] = n
    if n >= 0:
        T[n, fp] = p
    else:
        S[st] = p
    T[t, fp] = -1
    T[t, fn] = -1


@numba.njit(cache=True, inline="always")
def _push_head(T, S, t, fp, fn, sh, st):  # pragma: no cover - compiled
    h = S[sh]
    T[t, fp] = -1
    T[t, fn] = h
    if h >= 0:
        T[h, fp] = t
    else:
        S[st] = t
    S[sh] = t


# ---------------------------------------------------------------------------------------------- lazy heap
@numba.njit(cache=True, inline="always")
def _heap_less(H, i, j):  # pragma: no cover - compiled
    """Whether row i orders before row j (by k1, then k2, then id)."""
    return H[i, 0] < H[j, 0] or (H[i, 0] == H[j, 0] and (H[i, 1] < H[j, 1] or (H[i, 1] == H[j, 1] and H[i, 2] < H[j, 2])))


@numba.njit(cache=True, inline="always")
def _set_row(H, i, k1, k2, t, stamp):  # pragma: no cover - compiled
    H[i, 0] = k1
    H[i, 1] = k2
    H[i, 2] = t
    H[i, 3] = stamp


@numba.njit(cache=True, inline="always")
def _copy_row(H, dst, src):  # pragma: no cover - compiled
    """Row ``src`` into row ``dst``, element by element (a row slice would make array views in the hot loop)."""
    H[dst, 0] = H[src, 0]
    H[dst, 1] = H[src, 1]
    H[dst, 2] = H[src, 2]
    H[dst, 3] = H[src, 3]


@numba.njit(cache=True)
def _sift_down(H, i, n):  # pragma: no cover - compiled
    """Moves row i of the n-row heap down to its place."""
    k1, k2, t, s = H[i, 0], H[i, 1], H[i, 2], H[i, 3]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        r = c + 1
        if r < n and _heap_less(H, r, c):
            c = r
        if k1 < H[c, 0] or (k1 == H[c, 0] and (k2 < H[c, 1] or (k2 == H[c, 1] and t <= H[c, 2]))):
            break
        _copy_row(H, i, c)
        i = c
    _set_row(H, i, k1, k2, t, s)


@numba.njit(cache=True)
def _heap_compact(T, H, S):  # pragma: no cover - compiled
    """Drops stale rows (evicted tensors, superseded stamps) and re-heapifies; returns the new size. At most one
    row per resident tensor is live, so a heap with room for twice the tensors always has room afterwards."""
    n = 0
    for i in range(S[S_HSIZE]):
        t = H[i, 2]
        if T[t, F_RES] == 1 and T[t, F_STAMP] == H[i, 3]:
            _copy_row(H, n, i)
            n += 1
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(H, i, n)
    S[S_HSIZE] = n
    return n


@numba.njit(cache=True)
def _heap_push(T, H, S, k1, k2, t, stamp):  # pragma: no cover - compiled
    n = S[S_HSIZE]
    # compacted when full, and whenever stale rows outnumber the live ones (at most one per resident tensor):
    # a heap kept near the resident count stays in cache, and the amortized cost is O(1) per push
    if n >= H.shape[0] or n >= 2 * S[S_NDENSE] + 64:
        n = _heap_compact(T, H, S)
        if n >= H.shape[0]:
            raise RuntimeError("priority heap full: it needs room for twice the tensors")
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if H[p, 0] < k1 or (H[p, 0] == k1 and (H[p, 1] < k2 or (H[p, 1] == k2 and H[p, 2] < t))):
            break
        _copy_row(H, i, p)
        i = p
    _set_row(H, i, k1, k2, t, stamp)
    S[S_HSIZE] = n + 1


@numba.njit(cache=True)
def _heap_pop(H, S):  # pragma: no cover - compiled
    n = S[S_HSIZE] - 1
    S[S_HSIZE] = n
    top_t, top_s = H[0, 2], H[0, 3]
    if n > 0:
        _copy_row(H, 0, n)
        _sift_down(H, 0, n)
    return top_t, top_s


@numba.njit(cache=True)
def _heap_key(T, policy, t):  # pragma: no cover - compiled
    """(k1, k2) of tensor t; lower is evicted first."""
    last = T[t, F_LAST]
    if policy == LFU:
        return T[t, F_FREQ], last
    if policy == BELADY:
        return -T[t, F_NEXT], last
    # NEXT_USE: predicted next use = last + previous reuse interval; unknown interval -> never
    iv = T[t, F_INTERVAL]
    pred = last + iv if iv > 0 else NEVER
    return -pred, last


# ---------------------------------------------------------------------------------------------- policy hooks
@numba.njit(cache=True)
def _xorshift(S):  # pragma: no cover - compiled
    x = S[S_RNG]
    x ^= (x << 13) & 0x7FFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0x7FFFFFFFFFFFFFFF
    x &= 0x7FFFFFFFFFFFFFFF
    if x == 0:
        x = 1
    S[S_RNG] = x
    return x


@numba.njit(cache=True)
def _on_access(T, S, H, t, now, is_admit):  # pragma: no cover - compiled
    """Updates recency/frequency history and policy structures after t is accessed (hit or admission)."""
    policy = S[S_POLICY]
    if T[t, F_LAST] >= 0:
        T[t, F_INTERVAL] = now - T[t, F_LAST]
    T[t, F_LAST] = now
    T[t, F_NACC] += 1
    if is_admit:
        T[t, F_FREQ] = 1
        T[t, F_INSERT] = now
        T[t, F_VISITED] = 0
        _push_head(T, S, t, F_QPREV, F_QNEXT, S_QHEAD, S_QTAIL)
        d = S[S_NDENSE]
        T[t, F_DENSE] = d
        S[S_NDENSE] = d + 1
    else:
        T[t, F_FREQ] += 1
        T[t, F_VISITED] = 1
        _unlink(T, S, t, F_LPREV, F_LNEXT, S_LHEAD, S_LTAIL)
    _push_head(T, S, t, F_LPREV, F_LNEXT, S_LHEAD, S_LTAIL)
    T[t, F_STAMP] += 1
    if policy in HEAP_POLICIES:
        k1, k2 = _heap_key(T, policy, t)
        _heap_push(T, H, S, k1, k2, t, T[t, F_STAMP])


@numba.njit(cache=True)
def _remove(T, S, t, dense_ids):  # pragma: no cover - compiled
    """Drops t from the cache structures (eviction or FREE)."""
    T[t, F_RES] = 0
    T[t, F_DIRTY] = 0
    T[t, F_STAMP] += 1
    S[S_USED] -= T[t, F_SIZE]
    if S[S_HAND] == t:
        S[S_HAND] = T[t, F_QPREV]
    _unlink(T, S, t, F_LPREV, F_LNEXT, S_LHEAD, S_LTAIL)
    _unlink(T, S, t, F_QPREV, F_QNEXT, S_QHEAD, S_QTAIL)
    d = T[t, F_DENSE]
    last = S[S_NDENSE] - 1
    moved = dense_ids[last]
    dense_ids[d] = moved
    T[moved, F_DENSE] = d
    S[S_NDENSE] = last
    T[t, F_DENSE] = -1


@numba.njit(cache=True)
def _pinned(T, S, t):  # pragma: no cover - compiled
    return S[S_CLASSIC] == 0 and T[t, F_PIN] == S[S_CUROP]


@numba.njit(cache=True)
def choose_victim(T, S, H, dense_ids):  # pragma: no cover - compiled
    """The built-in policy's victim (-1 if every resident tensor is pinned). May update policy state."""
    policy = S[S_POLICY]
    if policy == LRU:
        t = S[S_LTAIL]
        while t >= 0 and _pinned(T, S, t):
            t = T[t, F_LPREV]
        return t
    if policy == MRU:  # the recency list's head end (last accesses are distinct, so the order is the same)
        t = S[S_LHEAD]
        while t >= 0 and _pinned(T, S, t):
            t = T[t, F_LNEXT]
        return t
    if policy == FIFO:
        t = S[S_QTAIL]
        while t >= 0 and _pinned(T, S, t):
            t = T[t, F_QPREV]
        return t
    if policy == RANDOM:
        n = S[S_NDENSE]
        for _ in range(64 * n + 64):
            t = dense_ids[_xorshift(S) % n]
            if not _pinned(T, S, t):
                return t
        return -1
    if policy == SIEVE:
        hand = S[S_HAND]
        if hand < 0:
            hand = S[S_QTAIL]
        steps = 0
        n = S[S_NDENSE]
        while hand >= 0 and steps < 2 * n + 2:
            steps += 1
            if T[hand, F_VISITED] == 1:
                T[hand, F_VISITED] = 0
            elif not _pinned(T, S, hand):
                S[S_HAND] = T[hand, F_QPREV]
                return hand
            hand = T[hand, F_QPREV]
            if hand < 0:
                hand = S[S_QTAIL]
        return -1
    # heap policies
    stash_t = np.empty(8, dtype=np.int64)
    n_stash = 0
    victim = -1
    while S[S_HSIZE] > 0:
        t, stamp = _heap_pop(H, S)
        if T[t, F_RES] == 0 or T[t, F_STAMP] != stamp:
            continue
        if _pinned(T, S, t):
            if n_stash == stash_t.shape[0]:
                bigger = np.empty(n_stash * 2, dtype=np.int64)
                bigger[:n_stash] = stash_t
                stash_t = bigger
            stash_t[n_stash] = t
            n_stash += 1
            continue
        victim = t
        break
    for j in range(n_stash):
        t = stash_t[j]
        k1, k2 = _heap_key(T, policy, t)
        _heap_push(T, H, S, k1, k2, t, T[t, F_STAMP])
    return victim


# ---------------------------------------------------------------------------------------------- the loop
@numba.njit(cache=True, nogil=True)
def run(T, S, H, dense_ids, tid, opc, op_index, op_end, next_use, stop):  # pragma: no cover
    """Advances the simulation from ``S[S_POS]`` up to (not including) access ``stop``.

    Returns the status: NEED_DECISION when, with ``S[S_PAUSE]`` set, the caller must pick a victim (write it to
    ``S[S_VICTIM]`` and call again), REACHED_STOP when access ``stop`` is next, and DONE at the end of the trace.
    """
    n = min(tid.shape[0], stop)
    classic = S[S_CLASSIC] == 1
    external = S[S_PAUSE] == 1
    i = S[S_POS]
    while i < n:
        t = tid[i]
        op = opc[i]
        if classic and op == OP_FREE:
            i += 1
            continue
        if not classic and S[S_STAGE] == 0:
            k = op_index[i]
            if k != S[S_CUROP]:
                _close_op(S)
                S[S_CUROP] = k
                for j in range(i, op_end[i]):
                    if opc[j] != OP_FREE:
                        T[tid[j], F_PIN] = k
        size = T[t, F_SIZE]
        if S[S_STAGE] == 0:
            if op == OP_FREE:  # tensor mode (classic mode skipped it above)
                if T[t, F_RES] == 1:
                    _remove(T, S, t, dense_ids)
                i += 1
                continue
            S[S_NREQ] += 1
            S[S_REQB] += size
            T[t, F_NEXT] = next_use[i]
            if T[t, F_RES] == 1:
                S[S_HITS] += 1
                S[S_HITB] += size
                if op == OP_WRITE and not classic:
                    T[t, F_DIRTY] = 1
                _on_access(T, S, H, t, i, False)
                i += 1
                continue
            if size > S[S_CAP]:  # classic only: tensor mode rejects such ops up front
                S[S_NOTADMIT] += 1
                S[S_BIN] += size
                if i >= S[S_STEADY]:
                    S[S_STALLB] += size
                i += 1
                continue
            if classic or op == OP_READ:
                S[S_BIN] += size
                if i >= S[S_STEADY]:
                    if classic:  # every request is its own op
                        S[S_STALLB] += size
                    else:
                        S[S_OPIN] += size
            S[S_STAGE] = 1
        # stage 1: make room for t
        while S[S_USED] + size > S[S_CAP]:
            if external:
                v = S[S_VICTIM]
                if v < 0:
                    S[S_POS] = i
                    S[S_INCOMING] = t
                    S[S_DECISIONS] += 1
                    return NEED_DECISION
                S[S_VICTIM] = -1
            else:
                v = choose_victim(T, S, H, dense_ids)
                if v < 0:
                    raise RuntimeError("no evictable tensor: every resident tensor is pinned by the current op")
            if T[v, F_DIRTY] == 1:
                S[S_BOUT] += T[v, F_SIZE]
                if i >= S[S_STEADY]:
                    S[S_OPOUT] += T[v, F_SIZE]
            _remove(T, S, v, dense_ids)
            S[S_NEVICT] += 1
        T[t, F_RES] = 1
        T[t, F_DIRTY] = 1 if (op == OP_WRITE and not classic) else 0
        S[S_USED] += size
        if S[S_USED] > S[S_PEAK]:
            S[S_PEAK] = S[S_USED]
        dense_ids[S[S_NDENSE]] = t
        _on_access(T, S, H, t, i, True)
        S[S_STAGE] = 0
        S[S_INCOMING] = -1
        i += 1
    S[S_POS] = n
    if n < tid.shape[0]:
        return REACHED_STOP
    return DONE


@numba.njit(cache=True)
def lru_candidates(T, S, k, out):  # pragma: no cover - compiled
    """Fills ``out`` with up to k unpinned resident tensors, least recently used first; returns the count."""
    t = S[S_LTAIL]
    c = 0
    while t >= 0 and c < k:
        if not _pinned(T, S, t):
            out[c] = t
            c += 1
        t = T[t, F_LPREV]
    return c


@numba.njit(cache=True)
def evictable(T, S, dense_ids, out):  # pragma: no cover - compiled
    """Fills ``out`` with every unpinned resident tensor, in the dense array's order (contiguous loads, unlike
    :func:`lru_candidates`' list walk; for callers that rank them all themselves); returns the count."""
    c = 0
    for d in range(S[S_NDENSE]):
        t = dense_ids[d]
        if not _pinned(T, S, t):
            out[c] = t
            c += 1
    return c


@numba.njit(cache=True)
def mixed_candidates(T, S, dense_ids, k, out):  # pragma: no cover - compiled
    """Fills ``out`` with up to k unpinned resident tensors: first the ``(k + 1) // 2`` with the farthest
    *predicted* next use (last access + previous reuse interval; no interval = never; ties least recent first),
    then the least recently used of the rest. Uses only the past. Returns the count.

    The first pass scans the dense array of resident ids (independent loads, unlike a linked-list walk) and keeps
    the best in a small buffer sorted by (prediction descending, last access ascending); last accesses are
    distinct, so the order is total. The second pass fills the remaining slots from the LRU end.
    """
    h = (k + 1) // 2
    best_t = np.empty(h, dtype=np.int64)
    best_p = np.empty(h, dtype=np.int64)
    best_l = np.empty(h, dtype=np.int64)
    nb = 0
    for d in range(S[S_NDENSE]):
        t = dense_ids[d]
        if _pinned(T, S, t):
            continue
        iv = T[t, F_INTERVAL]
        last = T[t, F_LAST]
        p = last + iv if iv > 0 else NEVER
        if nb == h and (p < best_p[h - 1] or (p == best_p[h - 1] and last > best_l[h - 1])):
            continue
        j = nb if nb < h else h - 1
        while j > 0 and (best_p[j - 1] < p or (best_p[j - 1] == p and best_l[j - 1] > last)):
            best_p[j] = best_p[j - 1]
            best_l[j] = best_l[j - 1]
            best_t[j] = best_t[j - 1]
            j -= 1
        best_p[j] = p
        best_l[j] = last
        best_t[j] = t
        if nb < h:
            nb += 1
    c = 0
    for j in range(nb):
        out[c] = best_t[j]
        c += 1
    t = S[S_LTAIL]
    while t >= 0 and c < k:
        if not _pinned(T, S, t):
            taken = False
            for j in range(nb):
                if best_t[j] == t:
                    taken = True
                    break
            if not taken:
                out[c] = t
                c += 1
        t = T[t, F_LPREV]
    return c
