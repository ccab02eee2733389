"""Specialised compiled loops for whole-trace classic-mode runs of LRU, FIFO, Belady, SIEVE and S3-FIFO.

The general engine (:mod:`envs.sim.engine`) keeps every policy's bookkeeping in one row-major state matrix so
it can pause at any decision; that generality costs a factor of several on the hot path. These kernels keep
only what their policy needs, as separate arrays (struct of arrays), and run a whole trace in one call. They
implement exactly the engine's classic semantics (tests compare both with each other and with libCacheSim):
FREE records are skipped, a resident request is a hit, a miss evicts until the object fits, and an object larger
than the capacity is a miss that is not admitted.

Each kernel returns ``[n_req, n_hit, req_bytes, hit_bytes, bytes_in, n_evictions, peak_used]``.
"""

from __future__ import annotations

import numba
import numpy as np

from envs.sim.engine import OP_FREE
from envs.sim.policies import CLASSIC_KERNELS


# ---------------------------------------------------------------------------------------------- request accounting
# Every kernel counts the same way, with these: counters are one tuple
# ``(n_req, n_hit, req_bytes, hit_bytes, bytes_in, n_evictions, peak_used)``, inlined so they compile to the same
# scalar registers a hand-written loop uses.
@numba.njit(cache=True, nogil=True, inline="always")
def _no_counts():  # pragma: no cover - compiled
    return (0, 0, 0, 0, 0, 0, 0)


@numba.njit(cache=True, nogil=True, inline="always")
def _count_request(c, s, hit):  # pragma: no cover - compiled
    """A request of ``s`` bytes: a hit, or a miss whose bytes are transferred in (admitted or not)."""
    if hit:
        return (c[0] + 1, c[1] + 1, c[2] + s, c[3] + s, c[4], c[5], c[6])
    return (c[0] + 1, c[1], c[2] + s, c[3], c[4] + s, c[5], c[6])


@numba.njit(cache=True, nogil=True, inline="always")
def _count_eviction(c):  # pragma: no cover - compiled
    return (c[0], c[1], c[2], c[3], c[4], c[5] + 1, c[6])


@numba.njit(cache=True, nogil=True, inline="always")
def _count_occupancy(c, used):  # pragma: no cover - compiled
    """After an admission: the peak of the bytes in use."""
    return (c[0], c[1], c[2], c[3], c[4], c[5], max(c[6], used))


@numba.njit(cache=True, nogil=True, inline="always")
def _counts_array(c):  # pragma: no cover - compiled
    return np.array([c[0], c[1], c[2], c[3], c[4], c[5], c[6]], dtype=np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def _push_head(newer, older, head, tail, t):  # pragma: no cover - compiled
    """Links t at the head of a doubly linked list (``newer``/``older`` = neighbour links); returns (head, tail)."""
    newer[t] = -1
    older[t] = head
    if head >= 0:
        newer[head] = t
    else:
        tail = t
    return t, tail


@numba.njit(cache=True, nogil=True, inline="always")
def _unlink(newer, older, head, tail, t):  # pragma: no cover - compiled
    """Unlinks t from a doubly linked list; returns the new (head, tail)."""
    p, q = newer[t], older[t]
    if p >= 0:
        older[p] = q
    else:
        head = q
    if q >= 0:
        newer[q] = p
    else:
        tail = p
    newer[t] = -1
    older[t] = -1
    return head, tail


@numba.njit(cache=True, nogil=True)
def lru(tid, opc, sizes, cap):  # pragma: no cover - compiled
    n_obj = sizes.shape[0]
    prev = np.full(n_obj, -1, dtype=np.int64)
    nxt = np.full(n_obj, -1, dtype=np.int64)
    res = np.zeros(n_obj, dtype=np.bool_)
    head = -1
    tail = -1
    used = 0
    c = _no_counts()
    for i in range(tid.shape[0]):
        if opc[i] == OP_FREE:
            continue
        t = tid[i]
        s = sizes[t]
        hit = res[t]
        c = _count_request(c, s, hit)
        if hit:
            if head != t:  # move to the head
                head, tail = _unlink(prev, nxt, head, tail, t)
                head, tail = _push_head(prev, nxt, head, tail, t)
            continue
        if s > cap:
            continue
        while used + s > cap:
            v = tail
            head, tail = _unlink(prev, nxt, head, tail, v)
            res[v] = False
            used -= sizes[v]
            c = _count_eviction(c)
        head, tail = _push_head(prev, nxt, head, tail, t)
        res[t] = True
        used += s
        c = _count_occupancy(c, used)
    return _counts_array(c)


@numba.njit(cache=True, nogil=True)
def fifo(tid, opc, sizes, cap):  # pragma: no cover - compiled
    n_obj = sizes.shape[0]
    res = np.zeros(n_obj, dtype=np.bool_)
    queue = np.empty(n_obj + 1, dtype=np.int64)  # ring buffer of resident ids, oldest at ``qh``
    m = queue.shape[0]
    qh = qt = 0
    used = 0
    c = _no_counts()
    for i in range(tid.shape[0]):
        if opc[i] == OP_FREE:
            continue
        t = tid[i]
        s = sizes[t]
        hit = res[t]
        c = _count_request(c, s, hit)
        if hit:
            continue
        if s > cap:
            continue
        while used + s > cap:
            v = queue[qh]
            qh = qh + 1 if qh + 1 < m else 0
            res[v] = False
            used -= sizes[v]
            c = _count_eviction(c)
        queue[qt] = t
        qt = qt + 1 if qt + 1 < m else 0
        res[t] = True
        used += s
        c = _count_occupancy(c, used)
    return _counts_array(c)


@numba.njit(cache=True, nogil=True, inline="always")
def _sift_up(hk, hid, pos, i):  # pragma: no cover - compiled
    k, t = hk[i], hid[i]
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= k:
            break
        hk[i] = hk[p]
        hid[i] = hid[p]
        pos[hid[i]] = i
        i = p
    hk[i] = k
    hid[i] = t
    pos[t] = i


@numba.njit(cache=True, nogil=True, inline="always")
def _sift_down(hk, hid, pos, i, n):  # pragma: no cover - compiled
    k, t = hk[i], hid[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] < hk[c]:
            c += 1
        if k <= hk[c]:
            break
        hk[i] = hk[c]
        hid[i] = hid[c]
        pos[hid[i]] = i
        i = c
    hk[i] = k
    hid[i] = t
    pos[t] = i


@numba.njit(cache=True, nogil=True)
def belady(tid, opc, sizes, next_use, cap):  # pragma: no cover - compiled
    """Evicts the farthest next use; objects never used again go first, least recently used first.

    An indexed min-heap over residents with key ``(n - next) << 32 | last``: a larger next use (``n`` for never)
    gives a smaller key, and equal next uses (only "never") fall back to the last access.
    """
    n = tid.shape[0]
    n_obj = sizes.shape[0]
    hk = np.empty(n_obj, dtype=np.int64)
    hid = np.empty(n_obj, dtype=np.int64)
    pos = np.full(n_obj, -1, dtype=np.int64)
    hn = 0
    used = 0
    c = _no_counts()
    for i in range(n):
        if opc[i] == OP_FREE:
            continue
        t = tid[i]
        s = sizes[t]
        nx = next_use[i]
        if nx > n:
            nx = n
        key = ((n - nx) << 32) | i
        j = pos[t]
        c = _count_request(c, s, j >= 0)
        if j >= 0:
            hk[j] = key  # next use only moves later, so the key only shrinks
            _sift_up(hk, hid, pos, j)
            continue
        if s > cap:
            continue
        while used + s > cap:
            v = hid[0]
            pos[v] = -1
            hn -= 1
            if hn > 0:
                hk[0] = hk[hn]
                hid[0] = hid[hn]
                _sift_down(hk, hid, pos, 0, hn)
            used -= sizes[v]
            c = _count_eviction(c)
        hk[hn] = key
        hid[hn] = t
        _sift_up(hk, hid, pos, hn)
        hn += 1
        used += s
        c = _count_occupancy(c, used)
    return _counts_array(c)


@numba.njit(cache=True, nogil=True)
def s3fifo(tid, opc, sizes, cap):  # pragma: no cover - compiled
    """S3-FIFO (Yang et al., SOSP 2023) with libCacheSim's parameters and byte accounting.

    A small FIFO (10% of the bytes), a main FIFO (the rest) run as a 2-bit CLOCK, and a ghost FIFO of ids
    evicted from the small queue (90% of the bytes, sizes counted). New objects enter the small queue (the main
    queue if their id is in the ghost, or if the small queue is full before the first eviction). Evicting from
    the small queue moves objects hit at least twice to the main queue and evicts the first other one into the
    ghost; evicting from the main queue re-inserts hit objects with their counter decremented (capped at 3) and
    evicts the first unhit one. An object of at least the small queue's size is not admitted (a miss).
    """
    n_obj = sizes.shape[0]
    small_size = np.int64(cap * 0.1)
    main_size = cap - small_size
    ghost_size = np.int64(cap * 0.9)
    where = np.zeros(n_obj, dtype=np.int8)  # 0 absent, 1 small, 2 main
    freq = np.zeros(n_obj, dtype=np.int64)
    m = n_obj + 1
    sq = np.empty(m, dtype=np.int64)  # small ring, oldest at sh
    mq = np.empty(m, dtype=np.int64)  # main ring, oldest at mh
    sh = st = mh = mt = 0
    s_occ = m_occ = 0
    in_ghost = np.zeros(n_obj, dtype=np.bool_)
    gprev = np.full(n_obj, -1, dtype=np.int64)
    gnext = np.full(n_obj, -1, dtype=np.int64)
    ghead = gtail = -1
    g_occ = 0
    has_evicted = False
    c = _no_counts()
    for i in range(tid.shape[0]):
        if opc[i] == OP_FREE:
            continue
        t = tid[i]
        s = sizes[t]
        c = _count_request(c, s, where[t] != 0)
        # find
        hit_on_ghost = False
        if where[t] == 1:
            freq[t] += 1
            continue
        if in_ghost[t]:
            in_ghost[t] = False
            g_occ -= s
            ghead, gtail = _unlink(gprev, gnext, ghead, gtail, t)
            hit_on_ghost = True
        if where[t] == 2:
            freq[t] += 1
            continue
        if s > small_size or s > cap:  # cannot insert
            continue
        while s_occ + m_occ + s > cap:
            has_evicted = True
            if m_occ > main_size or s_occ == 0:
                done = False
                while not done and m_occ > 0:
                    v = mq[mh]
                    mh = mh + 1 if mh + 1 < m else 0
                    if freq[v] >= 1:
                        freq[v] = min(freq[v], 3) - 1
                        mq[mt] = v
                        mt = mt + 1 if mt + 1 < m else 0
                    else:
                        where[v] = 0
                        m_occ -= sizes[v]
                        c = _count_eviction(c)
                        done = True
            else:
                done = False
                while not done and s_occ > 0:
                    v = sq[sh]
                    sh = sh + 1 if sh + 1 < m else 0
                    s_occ -= sizes[v]
                    if freq[v] >= 2:
                        where[v] = 2
                        freq[v] = 0
                        mq[mt] = v
                        mt = mt + 1 if mt + 1 < m else 0
                        m_occ += sizes[v]
                    else:
                        where[v] = 0
                        c = _count_eviction(c)
                        done = True
                        vs = sizes[v]
                        if ghost_size > 0 and vs <= ghost_size and not in_ghost[v]:
                            while g_occ + vs > ghost_size:
                                g = gtail
                                ghead, gtail = _unlink(gprev, gnext, ghead, gtail, g)
                                in_ghost[g] = False
                                g_occ -= sizes[g]
                            in_ghost[v] = True
                            ghead, gtail = _push_head(gprev, gnext, ghead, gtail, v)
                            g_occ += vs
        # insert
        if hit_on_ghost:
            where[t] = 2
            mq[mt] = t
            mt = mt + 1 if mt + 1 < m else 0
            m_occ += s
        elif s >= small_size:
            continue  # libCacheSim refuses an object that would fill the whole small queue
        elif not has_evicted and s_occ >= small_size:
            where[t] = 2
            mq[mt] = t
            mt = mt + 1 if mt + 1 < m else 0
            m_occ += s
        else:
            where[t] = 1
            sq[st] = t
            st = st + 1 if st + 1 < m else 0
            s_occ += s
        freq[t] = 0
        c = _count_occupancy(c, s_occ + m_occ)
    return _counts_array(c)


@numba.njit(cache=True, nogil=True)
def sieve(tid, opc, sizes, cap):  # pragma: no cover - compiled
    """SIEVE (Zhang et al., NSDI 2024): a FIFO list (new objects at the head), a visited bit set by hits, and a
    hand that walks from the tail toward the head, clearing visited bits and evicting the first unvisited
    object, then wrapping around to the tail."""
    n_obj = sizes.shape[0]
    toward_head = np.full(n_obj, -1, dtype=np.int64)
    toward_tail = np.full(n_obj, -1, dtype=np.int64)
    visited = np.zeros(n_obj, dtype=np.bool_)
    res = np.zeros(n_obj, dtype=np.bool_)
    head = tail = hand = -1
    used = 0
    c = _no_counts()
    for i in range(tid.shape[0]):
        if opc[i] == OP_FREE:
            continue
        t = tid[i]
        s = sizes[t]
        hit = res[t]
        c = _count_request(c, s, hit)
        if hit:
            visited[t] = True
            continue
        if s > cap:
            continue
        while used + s > cap:
            h = hand if hand >= 0 else tail
            while visited[h]:
                visited[h] = False
                h = toward_head[h]
                if h < 0:
                    h = tail
            hand = toward_head[h]
            head, tail = _unlink(toward_head, toward_tail, head, tail, h)
            res[h] = False
            used -= sizes[h]
            c = _count_eviction(c)
        head, tail = _push_head(toward_head, toward_tail, head, tail, t)
        visited[t] = False
        res[t] = True
        used += s
        c = _count_occupancy(c, used)
    return _counts_array(c)


#: Policies with a specialised classic kernel (catalogue entries marked ``classic_kernel``).
KERNELS = CLASSIC_KERNELS
#: The kernel of each; those that read the future take the next-use array too.
_KERNEL_OF = {"lru": lru, "fifo": fifo, "belady": belady, "sieve": sieve, "s3fifo": s3fifo}
_READS_NEXT_USE = frozenset({"belady"})


def run_classic(policy: str, tid: np.ndarray, opc: np.ndarray, sizes: np.ndarray, next_use: np.ndarray, cap: int) -> np.ndarray:
    """Counters of a whole classic-mode run of ``policy`` (one of :data:`KERNELS`)."""
    if policy not in KERNELS:
        raise ValueError(f"no classic kernel for {policy!r}; valid: {', '.join(KERNELS)}")
    kernel = _KERNEL_OF[policy]
    if policy in _READS_NEXT_USE:
        return kernel(tid, opc, sizes, next_use, cap)
    return kernel(tid, opc, sizes, cap)
