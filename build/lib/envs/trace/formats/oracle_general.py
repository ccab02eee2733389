"""libCacheSim's ``oracleGeneral`` binary trace format.

Each request is a 24-byte little-endian record: ``uint32`` timestamp, ``uint64`` object id, ``uint32`` size in
bytes, ``int64`` next access (1-based index of the next request for the same object; -1 if it is never requested
again). The format has no notion of writes or frees: exporting keeps every READ and WRITE as a request and drops
FREE records (this is classic mode, see :mod:`envs.sim`). Importing makes every request a READ of kind ``input``,
each its own op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from envs.trace.record import Trace, TraceError, classic_trace

RECORD = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
MAX_SIZE = np.iinfo(np.uint32).max
#: Records per read when importing (24 MiB).
READ_CHUNK = 1 << 20


def next_access_index(ids: np.ndarray) -> np.ndarray:
    """For every request, the 0-based index of the next request for the same id (-1 if none)."""
    n = ids.shape[0]
    nxt = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((np.arange(n), ids))
    same = ids[order][1:] == ids[order][:-1]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def write_oracle_general(trace: Trace, path: str | Path) -> Path:
    """Exports the classic-mode requests of ``trace`` (all but FREE) as an oracleGeneral file.

    Raises:
        TraceError: If a tensor is larger than the format's 32-bit size field.
    """
    req = trace.requests()
    ids = trace.tensor_id[req]
    sizes = trace.size[req]
    if sizes.size and sizes.max() > MAX_SIZE:
        raise TraceError(f"a tensor of {int(sizes.max())} bytes does not fit oracleGeneral's uint32 size field")
    records = np.zeros(req.shape[0], dtype=RECORD)
    records["t"] = np.arange(req.shape[0], dtype=np.uint32)
    records["id"] = ids.astype(np.uint64)
    records["size"] = sizes.astype(np.uint32)
    nxt = next_access_index(ids)
    records["next"] = np.where(nxt >= 0, nxt + 1, -1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.tofile(path)
    return path


def read_oracle_general(path: str | Path) -> Trace:
    """Imports an oracleGeneral file as a trace of READs (zero-size requests are skipped, as libCacheSim does).

    Raises:
        TraceError: If the file is missing, truncated, not in time order (every oracleGeneral trace is; random bytes
            are not), or gives one object two different sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    nbytes = path.stat().st_size
    if nbytes % RECORD.itemsize:
        raise TraceError(
            f"{path}: {nbytes} bytes is not a whole number of {RECORD.itemsize}-byte oracleGeneral records "
            "(truncated or not an oracleGeneral file)"
        )
    if nbytes == 0:
        raise TraceError(f"{path}: no requests with a positive size")
    from envs.trace.scan_kernels import RequestRenumbering

    n = nbytes // RECORD.itemsize
    ids = np.empty(n, dtype=np.int32 if n <= np.iinfo(np.int32).max else np.int64)
    renumbering = RequestRenumbering(ids)
    last_t = 0
    with path.open("rb") as fh:  # read a chunk at a time: the file is never held (or mapped) whole
        for start in range(0, n, READ_CHUNK):
            records = np.fromfile(fh, dtype=RECORD, count=min(READ_CHUNK, n - start))
            t = records["t"]
            back = np.flatnonzero(np.diff(t.astype(np.int64), prepend=last_t) < 0)
            if back.size:
                raise TraceError(f"{path}: timestamps go backwards at record {start + int(back[0])} (not an "
                                 "oracleGeneral trace: its requests are in time order)")  # fmt: skip
            last_t = int(t[-1])
            bad = renumbering.add(records["id"].view(np.int64), records["size"])
            if bad >= 0:
                raise TraceError(f"{path}: object {int(records['id'][bad])} has two sizes (record {start + bad})")
    if renumbering.filled == 0:
        raise TraceError(f"{path}: no requests with a positive size")
    ids = ids[: renumbering.filled]
    sizes = renumbering.sizes().astype(np.uint32)[ids]  # the file's own size type: half the memory of int64
    meta = {"workload": "imported", "source": str(path.name), "source_format": "oracleGeneral"}
    return classic_trace(ids, sizes, meta)
