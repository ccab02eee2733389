"""The Trace record type: an ordered sequence of tensor accesses plus metadata.

A trace is stored column-wise (one numpy array per field) so that the simulator's compiled loops can read it
without conversion. Every access belongs to an *op* (``op_index``); all accesses of one op share it, and in tensor
mode all tensors of an op must be resident together.

Files are compressed ``.npz`` archives holding the arrays and one JSON string with the metadata. The content hash
(SHA-256 over the arrays and the canonical metadata, excluding the hash itself) identifies a trace in results.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TRACE_FORMAT_VERSION = 1


class Op(enum.IntEnum):
    """What an access does to a tensor."""

    READ = 0
    WRITE = 1
    FREE = 2


class Kind(enum.IntEnum):
    """What a tensor is."""

    WEIGHT = 0
    ACTIVATION = 1
    GRADIENT = 2
    OPTIMIZER_STATE = 3
    KV_CACHE = 4
    TEMPORARY = 5
    INPUT = 6


class Phase(enum.IntEnum):
    """Which part of an iteration an op belongs to."""

    FORWARD = 0
    BACKWARD = 1
    OPTIMIZER = 2
    PREFILL = 3
    DECODE = 4


#: The most accesses a trace may hold unless a caller says otherwise: the Copilot's limit and the default of
#: ``tensorcache-trace generate``, so what the command writes the Copilot can load.
DEFAULT_ACCESS_LIMIT = 3_000_000


class TraceError(ValueError):
    """A trace file or array set is malformed."""


#: Column name -> dtype, in the order used for hashing.
COLUMNS: dict[str, np.dtype] = {
    "tensor_id": np.dtype(np.int64),
    "size": np.dtype(np.int64),
    "op": np.dtype(np.uint8),
    "kind": np.dtype(np.uint8),
    "layer": np.dtype(np.int32),
    "phase": np.dtype(np.uint8),
    "op_index": np.dtype(np.int64),
    "iteration": np.dtype(np.int32),
}

#: Optional per-op cost columns (index = ``op_index``; length = the number of ops), written at capture: the op's
#: floating-point operations (as :class:`torch.utils.flop_counter.FlopCounterMode` counts them: matmuls,
#: convolutions and attention; elementwise ops count 0) and the bytes it reads and writes in device memory (its
#: tensors' own sizes, views included, not their storages'). They feed the step-time model
#: (:mod:`envs.sim.step_time`); a trace without them still replays, and its step time is unknown.
COST_COLUMNS: dict[str, np.dtype] = {"op_flops": np.dtype(np.int64), "op_bytes": np.dtype(np.int64)}


@dataclass(frozen=True)
class Trace:
    """A tensor-access trace.

    Attributes:
        tensor_id: Compact tensor ids (0..n_tensors-1, numbered by first appearance).
        size: Size in bytes of the accessed tensor (constant per tensor id).
        op: :class:`Op` codes.
        kind: :class:`Kind` codes.
        layer: Layer index (0 = embeddings/stem, 1..L = blocks, L+1 = head/loss; -1 = none).
        phase: :class:`Phase` codes.
        op_index: Index of the op the access belongs to (non-decreasing).
        iteration: Training step or decode step the access belongs to.
        meta: Workload, preset, config, seed, generator name and version, ``content_hash``, and ``cost_hash`` when
            the trace carries op costs.
        op_flops: FLOPs of every op (see :data:`COST_COLUMNS`), or None when the trace does not know them.
        op_bytes: Device-memory bytes every op reads and writes, or None.

    The content hash covers the access columns and the metadata: it names what a simulation replays, so rows stay
    comparable whether or not a trace carries op costs. The costs have their own hash (``cost_hash``, checked on
    load like the content hash).
    """

    tensor_id: np.ndarray
    size: np.ndarray
    op: np.ndarray
    kind: np.ndarray
    layer: np.ndarray
    phase: np.ndarray
    op_index: np.ndarray
    iteration: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)
    op_flops: np.ndarray | None = None
    op_bytes: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column (and the op costs, when the trace has them): what :meth:`from_arrays` takes back."""
        cols = {name: getattr(self, name) for name in COLUMNS}
        if self.has_costs:
            cols.update(op_flops=self.op_flops, op_bytes=self.op_bytes)
        return cols

    @property
    def has_costs(self) -> bool:
        """Whether the trace carries per-op FLOPs and bytes (the step-time model needs them)."""
        return self.op_flops is not None and self.op_bytes is not None

    @property
    def n_ops(self) -> int:
        """Number of ops (one past the largest ``op_index``)."""
        return int(self.op_index[-1]) + 1 if len(self) else 0

    @property
    def total_flops(self) -> int | None:
        """FLOPs of the whole trace (None without op costs)."""
        return int(self.op_flops.sum()) if self.op_flops is not None else None

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> Trace:
        """Builds a validated trace and stamps its content hash into the metadata.

        Args:
            arrays: One array-like per name in :data:`COLUMNS`, and optionally both of :data:`COST_COLUMNS`.
            meta: JSON-serialisable metadata (``content_hash`` and ``cost_hash`` are recomputed).

        Raises:
            TraceError: If a column is missing, lengths differ or values are out of range.
        """
        missing = [name for name in COLUMNS if name not in arrays]
        if missing:
            raise TraceError(f"trace is missing column(s): {', '.join(missing)}")
        if not isinstance(meta, Mapping):
            raise TraceError(f"trace metadata must be a JSON object, got {type(meta).__name__}")
        cols = {name: _as_column(name, arrays[name], dt) for name, dt in COLUMNS.items()}
        ids = cols["tensor_id"]
        if ids.ndim == 1 and ids.size and int(ids.min()) >= 0 and int(ids.max()) >= ids.shape[0]:
            cols["tensor_id"] = renumber(ids)  # sparse ids: memory follows the distinct tensors, not the largest id
        _validate_columns(cols)
        costs = _cost_columns(arrays, cols["op_index"])
        clean_meta = {k: v for k, v in dict(meta).items() if k not in ("content_hash", "cost_hash")}
        clean_meta.setdefault("trace_format_version", TRACE_FORMAT_VERSION)
        clean_meta["content_hash"] = _content_hash(cols, clean_meta)
        if costs:
            clean_meta["cost_hash"] = _cost_hash(costs)
        return cls(**cols, meta=clean_meta, **costs)

    @classmethod
    def from_requests(
        cls,
        ids: Any,
        sizes: Any = None,
        ops: Any = None,
        *,
        op_index: Any = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Trace:
        """A trace from plain requests: arrays of ids and sizes (and ops), or a list of ``(id, size[, op])``.

        Ids may be any integers (renumbered densely by first appearance); ops are :class:`Op` values or their names
        (``"read"``, ``"write"``, ``"free"``; default READ). Each request is its own op unless ``op_index`` groups
        them (requests of one op must be resident together in tensor mode).

        Raises:
            TraceError: On mismatched lengths, unknown op names, or one id with two sizes.
        """
        if sizes is None:
            rows = list(ids)
            if not all(isinstance(r, (tuple, list)) and len(r) in (2, 3) for r in rows):
                raise TraceError("give ids and sizes, or a list of (id, size) or (id, size, op) tuples")
            ids = [r[0] for r in rows]
            sizes = [r[1] for r in rows]
            ops = [r[2] if len(r) == 3 else Op.READ for r in rows] if any(len(r) == 3 for r in rows) else None
        ids_arr = _as_column("tensor_id", ids, np.dtype(np.int64))
        n = ids_arr.shape[0]
        if ops is None:
            op_arr = np.full(n, Op.READ)
        else:
            names = {m.name.lower(): int(m) for m in Op}
            try:
                op_arr = np.array([names[o.lower()] if isinstance(o, str) else int(o) for o in ops])
            except KeyError as exc:
                raise TraceError(f"unknown op {exc.args[0]!r}; valid: {', '.join(names)}") from None
        arrays = {**default_columns(n), "tensor_id": renumber(ids_arr) if n else ids_arr, "size": sizes, "op": op_arr}
        if op_index is not None:
            arrays["op_index"] = op_index
        return cls.from_arrays(arrays, {"workload": "requests", **(meta or {})})

    # -- derived quantities -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.tensor_id.shape[0])

    @property
    def content_hash(self) -> str:
        """SHA-256 hex digest identifying this trace."""
        return str(self.meta["content_hash"])

    @property
    def access_hash(self) -> str:
        """SHA-256 of the access columns alone (metadata excluded): equal for traces that replay identically, even
        when they were generated from different seeds. Splits are kept disjoint by this hash."""
        h = hashlib.sha256()
        _hash_columns(h, {name: getattr(self, name) for name in COLUMNS})
        return h.hexdigest()

    @property
    def n_tensors(self) -> int:
        """Number of distinct tensor ids."""
        return int(self.tensor_id.max()) + 1 if len(self) else 0

    def tensor_sizes(self) -> np.ndarray:
        """Size in bytes of every tensor id (index = id)."""
        sizes = np.zeros(self.n_tensors, dtype=np.int64)
        sizes[self.tensor_id] = self.size
        return sizes

    def tensor_kinds(self) -> np.ndarray:
        """Kind of every tensor id (index = id)."""
        kinds = np.zeros(self.n_tensors, dtype=np.uint8)
        kinds[self.tensor_id] = self.kind
        return kinds

    def bytes_by_kind(self) -> dict[str, int]:
        """Unique bytes per tensor kind (each tensor counted once)."""
        sizes, kinds = self.tensor_sizes(), self.tensor_kinds()
        return {k.name.lower(): int(sizes[kinds == k].sum()) for k in Kind}

    def live_bytes(self) -> np.ndarray:
        """Bytes of live tensors after each access (live = from first access until its FREE)."""
        n = len(self)
        delta = np.zeros(n, dtype=np.int64)
        first = np.full(self.n_tensors, -1, dtype=np.int64)
        idx = np.arange(n)
        # first access of each id: reversed assignment keeps the smallest index
        first[self.tensor_id[::-1]] = idx[::-1]
        np.add.at(delta, first, self.tensor_sizes())
        frees = self.op == Op.FREE
        np.add.at(delta, idx[frees], -self.size[frees].astype(np.int64))
        return np.cumsum(delta)

    def peak_live_bytes(self) -> int:
        """Maximum over the trace of the bytes of live tensors."""
        return int(self.live_bytes().max()) if len(self) else 0

    def requests(self) -> np.ndarray:
        """Indices of the accesses that are requests in classic mode (every access but FREE)."""
        return np.flatnonzero(self.op != Op.FREE)

    # -- I/O ------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes the trace as a compressed ``.npz`` file (atomically) and returns its path."""
        from envs.io.atomic import atomic_path

        path = Path(path)
        payload = {name: canonical_column(name, getattr(self, name)) for name in COLUMNS}
        if self.has_costs:
            payload.update({name: getattr(self, name) for name in COST_COLUMNS})
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, **payload, meta=np.array(json.dumps(dict(self.meta), sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: str | Path, max_bytes: int | None = None) -> Trace:
        """Reads a ``.npz`` trace, checking its columns and content hash.

        Args:
            max_bytes: Refuse an archive whose members would decompress to more than this (a zip bomb), checked
                from the archive's directory before anything is decompressed.

        Raises:
            TraceError: If the file is missing, not an npz archive, too large, lacks columns or its hash does not
                match.
        """
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"{path}: no such trace file")
        try:
            if max_bytes is not None:
                with zipfile.ZipFile(path) as zf:
                    infos = zf.infolist()
                    total = sum(i.file_size for i in infos)
                if len(infos) > 2 * (len(COLUMNS) + len(COST_COLUMNS)) or total > max_bytes:
                    raise TraceError(f"{path}: decompresses to {total} bytes in {len(infos)} members; the limit is "
                                     f"{max_bytes} bytes")  # fmt: skip
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files if name != "meta"}
                if "meta" not in data.files:
                    raise TraceError(f"{path}: not a TensorCache trace (no 'meta' entry)")
                meta = json.loads(str(data["meta"]))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, zlib.error, struct.error) as exc:
            if isinstance(exc, TraceError):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TraceError(f"{path}: not a readable .npz trace ({reason})") from None
        stored_hash = meta.get("content_hash") if isinstance(meta, dict) else None
        stored_cost_hash = meta.get("cost_hash") if isinstance(meta, dict) else None
        try:
            trace = cls.from_arrays(arrays, meta)
        except TraceError as exc:
            raise TraceError(f"{path}: {exc}") from None
        if stored_hash is not None and stored_hash != trace.content_hash:
            raise TraceError(f"{path}: content hash mismatch (file corrupted or edited)")
        if stored_cost_hash is not None and stored_cost_hash != trace.meta.get("cost_hash"):
            raise TraceError(f"{path}: op cost hash mismatch (op_flops/op_bytes corrupted or edited)")
        return trace


def default_columns(n: int) -> dict[str, np.ndarray]:
    """What a column means when a plain request list leaves it out, for ``n`` accesses: every access a READ of an
    input tensor in its own forward op, outside any layer, in iteration 0."""
    return {
        "op": np.full(n, int(Op.READ), dtype=np.int64),
        "kind": np.full(n, int(Kind.INPUT), dtype=np.int64),
        "layer": np.full(n, -1, dtype=np.int64),
        "phase": np.full(n, int(Phase.FORWARD), dtype=np.int64),
        "op_index": np.arange(n, dtype=np.int64),
        "iteration": np.zeros(n, dtype=np.int64),
    }


def _as_column(name: str, values: Any, dtype: np.dtype) -> np.ndarray:
    """``values`` as an array whose values ``dtype`` holds exactly, refusing non-integers and values the dtype cannot
    hold (a cast would wrap or truncate them silently).

    An integer array of a narrower type (say ``int32`` ids for the ``int64`` column) and a broadcast constant (stride
    0, as :func:`classic_trace` builds) are kept as they are, so a 10M-request trace does not pay for columns it
    does not need; everything else becomes a contiguous array of ``dtype``. The content hash and the ``.npz`` files
    see every column in ``dtype`` whatever it is held in, and arithmetic on a column widens it first (a negated
    ``uint32`` size would wrap)."""
    try:
        arr = np.asarray(values)
        if arr.dtype == object:
            arr = np.asarray(values, dtype=np.int64)
    except (OverflowError, ValueError, TypeError):
        raise TraceError(f"column {name} holds values that are not 64-bit integers") from None
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise TraceError(f"column {name} must hold integers (found a fraction, NaN or infinity)")
    elif arr.dtype.kind not in "iub":
        raise TraceError(f"column {name} must hold integers, got {arr.dtype}")
    narrow = arr.dtype.kind in "iu" and np.can_cast(arr.dtype, dtype, "safe")
    if narrow and arr.ndim == 1 and (arr.flags.c_contiguous or arr.strides == (0,)):
        return arr  # every value fits by the cast rule: no range scan needed
    if arr.size:
        info = np.iinfo(dtype)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise TraceError(f"column {name} values must be in [{info.min}, {info.max}], found {lo}..{hi}")
    return np.ascontiguousarray(arr, dtype=dtype)


def canonical_column(name: str, column: np.ndarray) -> np.ndarray:
    """``column`` as a contiguous array of its :data:`COLUMNS` dtype (a copy only when it is held narrow)."""
    return np.ascontiguousarray(column, dtype=COLUMNS[name])


#: Elements per chunk when a column held narrow is widened for hashing (8 MiB of int64).
_HASH_CHUNK = 1 << 20


def _hash_columns(h: Any, cols: Mapping[str, np.ndarray]) -> None:
    """Feeds every column to ``h`` as the bytes of its :data:`COLUMNS` dtype: a column held in that dtype is read in
    place, a narrow or broadcast one is widened a chunk at a time (same digest, no full-size copy)."""
    for name, dtype in COLUMNS.items():
        h.update(name.encode())
        col = cols[name]
        if col.dtype == dtype and col.flags.c_contiguous:
            h.update(memoryview(col).cast("B"))
            continue
        for start in range(0, col.shape[0], _HASH_CHUNK):
            h.update(memoryview(np.ascontiguousarray(col[start : start + _HASH_CHUNK], dtype=dtype)).cast("B"))


def _values(column: np.ndarray) -> np.ndarray:
    """The values a column holds, once each for a broadcast constant (so range checks do not scan n copies)."""
    return column[:1] if column.strides == (0,) else column


def _validate_columns(cols: dict[str, np.ndarray]) -> None:
    lengths = {name: arr.shape for name, arr in cols.items()}
    if any(len(s) != 1 for s in lengths.values()):
        raise TraceError("every trace column must be one-dimensional")
    if len({s[0] for s in lengths.values()}) != 1:
        raise TraceError(f"trace columns have different lengths: {lengths}")
    n = cols["tensor_id"].shape[0]
    if n == 0:
        return
    if _values(cols["tensor_id"]).min() < 0:
        raise TraceError("tensor ids must be non-negative")
    if _values(cols["size"]).min() <= 0:
        raise TraceError("tensor sizes must be positive (zero-byte accesses are dropped when a trace is built)")
    if _values(cols["op"]).max() > max(Op):
        raise TraceError(f"op codes must be in 0..{max(Op)}")
    if _values(cols["kind"]).max() > max(Kind):
        raise TraceError(f"kind codes must be in 0..{max(Kind)}")
    if _values(cols["phase"]).max() > max(Phase):
        raise TraceError(f"phase codes must be in 0..{max(Phase)}")
    op_index = _values(cols["op_index"])
    if op_index.shape[0] > 1 and np.any(op_index[1:] < op_index[:-1]):
        raise TraceError("op_index must be non-decreasing")
    from envs.trace.scan_kernels import first_size_conflict

    tid = cols["tensor_id"]
    if first_size_conflict(tid, cols["size"], int(tid.max()) + 1) >= 0:  # sizes are positive (checked above)
        raise TraceError("a tensor id appears with more than one size")


def _cost_columns(arrays: Mapping[str, Any], op_index: np.ndarray) -> dict[str, np.ndarray]:
    """The op cost columns of ``arrays``, checked: both or neither, one non-negative integer per op."""
    present = [name for name in COST_COLUMNS if arrays.get(name) is not None]
    if not present:
        return {}
    if len(present) != len(COST_COLUMNS):
        raise TraceError(f"op costs need both {' and '.join(COST_COLUMNS)}; got only {present[0]}")
    n_ops = int(op_index[-1]) + 1 if op_index.shape[0] else 0
    out = {}
    for name, dtype in COST_COLUMNS.items():
        col = _as_column(name, arrays[name], dtype)
        if col.ndim != 1 or col.shape[0] != n_ops:
            raise TraceError(f"{name} must hold one value per op ({n_ops}), got shape {col.shape}")
        if col.shape[0] and _values(col).min() < 0:
            raise TraceError(f"{name} must be non-negative")
        out[name] = np.ascontiguousarray(col, dtype=dtype)
    return out


def _cost_hash(costs: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in COST_COLUMNS:
        h.update(name.encode())
        h.update(memoryview(costs[name]).cast("B"))
    return h.hexdigest()


def _content_hash(cols: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    _hash_columns(h, cols)
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


def classic_trace(ids: np.ndarray, sizes: np.ndarray, meta: Mapping[str, Any]) -> Trace:
    """A trace of READ requests, each its own op (what oracleGeneral files and synthetic benchmarks hold).

    Args:
        ids: Tensor id of every request.
        sizes: Size in bytes of every request (constant per id).
        meta: Metadata to stamp.
    """
    n = ids.shape[0]
    index_type = np.int32 if n <= np.iinfo(np.int32).max else np.int64
    arrays = {  # the constant columns are broadcast scalars: no memory however long the trace
        "tensor_id": ids,
        "size": sizes,
        "op": np.broadcast_to(np.uint8(Op.READ), (n,)),
        "kind": np.broadcast_to(np.uint8(Kind.INPUT), (n,)),
        "layer": np.broadcast_to(np.int32(-1), (n,)),
        "phase": np.broadcast_to(np.uint8(Phase.FORWARD), (n,)),
        "op_index": np.arange(n, dtype=index_type),
        "iteration": np.broadcast_to(np.int32(0), (n,)),
    }
    return Trace.from_arrays(arrays, meta)


def renumber(tensor_keys: np.ndarray) -> np.ndarray:
    """Maps arbitrary integer keys to compact ids numbered by first appearance (one O(n) hash-table pass)."""
    from envs.trace.scan_kernels import renumber_first_seen

    keys = np.asarray(tensor_keys)
    if keys.dtype == np.uint64:
        keys = keys.view(np.int64)  # the hash works on the bits; distinct keys stay distinct
    ids, _ = renumber_first_seen(np.ascontiguousarray(keys, dtype=np.int64))
    return ids
