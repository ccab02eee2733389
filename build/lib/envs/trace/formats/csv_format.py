"""A plain, lossless CSV form of a trace.

The first line is ``# meta: {json}``; the second is the header
``tensor_id,size,op,kind,layer,phase,op_index,iteration``; ``op``, ``kind`` and ``phase`` are written by name
(``READ``, ``weight``, ``forward``, ...). Reading accepts names (any case) or integer codes, the columns in any
order, and a plain ``tensor_id,size,op`` request list; the meta line is optional.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from envs.trace.formats import csv_kernel
from envs.trace.record import COLUMNS, Kind, Op, Phase, Trace, TraceError, default_columns

_ENUMS = {"op": Op, "kind": Kind, "phase": Phase}
_META_PREFIX = "# meta: "


def write_csv(trace: Trace, path: str | Path) -> Path:
    """Writes ``trace`` as CSV (metadata in the first comment line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {col: [m.name if col == "op" else m.name.lower() for m in enum] for col, enum in _ENUMS.items()}
    with path.open("w", newline="") as fh:
        fh.write(_META_PREFIX + json.dumps(dict(trace.meta), sort_keys=True) + "\n")
        writer = csv.writer(fh)
        writer.writerow(list(COLUMNS))
        cols = [getattr(trace, c).tolist() for c in COLUMNS]
        for row in zip(*cols, strict=True):
            writer.writerow([names[c][v] if c in names else v for c, v in zip(COLUMNS, row, strict=True)])
    return path


def _parse_enum(col: str, value: str, line: int, path: Path) -> int:
    enum = _ENUMS[col]
    value = value.strip().strip('"').strip()
    if value.lstrip("-+").isdigit():
        code = int(value)
        if code in {m.value for m in enum}:
            return code
    else:
        for member in enum:
            if member.name.lower() == value.lower():
                return int(member)
    valid = ", ".join(m.name.lower() for m in enum)
    raise TraceError(f"{path}:{line}: bad {col} {value!r} (valid: {valid})")


def read_csv(path: str | Path, max_accesses: int | None = None) -> Trace:
    """Reads a CSV trace written by :func:`write_csv`, or by hand.

    The header names the columns, in any order. ``tensor_id``, ``size`` and ``op`` are required; a column left out
    takes the value :func:`~envs.trace.record.default_columns` gives it (each access its own op, kind ``input``,
    layer -1, phase ``forward``, iteration 0), so ``tensor_id,size,op`` is a complete trace of plain requests.

    Raises:
        TraceError: On a missing file, a bad header, a row with the wrong number of fields, a value that does not
            parse, or more than ``max_accesses`` rows.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    return _read_csv(path, np.fromfile(path, dtype=np.uint8), max_accesses)


def _next_line(buf: np.ndarray, start: int) -> tuple[str, int]:
    """The text line starting at ``start`` and where the next one starts."""
    hits = np.flatnonzero(buf[start:] == 10)
    end = start + int(hits[0]) if hits.size else buf.shape[0]
    try:
        text = buf[start:end].tobytes().decode("utf-8-sig" if start == 0 else "utf-8")
    except UnicodeDecodeError:
        raise TraceError("not a text CSV trace (the header is not UTF-8)") from None
    return text.rstrip("\r"), end + 1


def _read_csv(path: Path, buf: np.ndarray, max_accesses: int | None) -> Trace:
    meta: dict = {}
    try:
        first, pos = _next_line(buf, 0)
        if first.startswith(_META_PREFIX):
            try:
                meta = json.loads(first[len(_META_PREFIX) :])
            except (json.JSONDecodeError, RecursionError) as exc:
                raise TraceError(f"1: metadata line is not JSON ({getattr(exc, 'msg', 'nested too deeply')})") from None
            header_line, pos = _next_line(buf, pos)
            lines_before = 2
        else:
            header_line, lines_before = first, 1
    except TraceError as exc:
        raise TraceError(f"{path}:{exc}") from None
    header = [h.strip().strip('"') for h in header_line.split(",")]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [h for h in ("tensor_id", "size", "op") if h not in header]
    if unknown or missing or len(set(header)) != len(header):
        what = f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else (
            f"missing {', '.join(missing)}" if missing else "a column named twice")  # fmt: skip
        raise TraceError(f"{path}: bad header ({what}): the columns are tensor_id,size,op (required) and any of "
                         f"{','.join(c for c in COLUMNS if c not in ('tensor_id', 'size', 'op'))}")  # fmt: skip
    body = buf[min(pos, buf.shape[0]) :]
    lines = int(np.count_nonzero(body == 10)) + 1
    cap = lines if max_accesses is None else min(lines, max_accesses)
    out = np.empty((len(header), cap), dtype=np.int64)
    rows, status, line, col = csv_kernel.parse_rows(body, *_enum_tables(header), out)
    if status != csv_kernel.OK:
        where = f"{path}:{line + lines_before + 1}"
        if status == csv_kernel.TOO_MANY:
            raise TraceError(f"{path}: more than {max_accesses} accesses (the limit here)")
        row = _line_text(body, line).split(",")
        if status == csv_kernel.FIELD_COUNT:
            raise TraceError(f"{where}: expected {len(header)} fields, got {col}")
        name, value = header[col], row[col].strip().strip('"').strip()
        if name in _ENUMS:
            _parse_enum(name, value, line + lines_before + 1, path)  # raises, naming the valid values
        if value.lstrip("-+").isdigit():
            raise TraceError(f"{where}: {name} {value!r} does not fit in a 64-bit integer")
        raise TraceError(f"{where}: {name} {value!r} is not an integer")
    arrays = default_columns(rows)
    arrays.update({name: out[i, :rows] for i, name in enumerate(header)})
    try:
        return Trace.from_arrays(arrays, meta)
    except TraceError as exc:
        raise TraceError(f"{path}: {exc}") from None


def _enum_tables(header: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The parser's view of the enum columns: per column the enum's row (-1: integer), lower-case names padded
    to one width, their lengths and codes."""
    enums = list(_ENUMS.values())
    width, most = max(len(m.name) for e in enums for m in e), max(len(e) for e in enums)
    names = np.zeros((len(enums), most, width), dtype=np.uint8)
    name_len = np.zeros((len(enums), most), dtype=np.int64)
    codes = np.zeros((len(enums), most), dtype=np.int64)
    for k, enum in enumerate(enums):
        for m, member in enumerate(enum):
            raw = member.name.lower().encode()
            names[k, m, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            name_len[k, m], codes[k, m] = len(raw), int(member)
    order = list(_ENUMS)
    enum_of = np.array([order.index(h) if h in _ENUMS else -1 for h in header], dtype=np.int64)
    return enum_of, names, name_len, codes


def _line_text(body: np.ndarray, line: int) -> str:
    """Line ``line`` (0-based) of ``body``, decoded leniently for an error message."""
    breaks = np.flatnonzero(body == 10)
    start = int(breaks[line - 1]) + 1 if line > 0 else 0
    end = int(breaks[line]) if line < breaks.shape[0] else body.shape[0]
    return body[start:end].tobytes().decode("utf-8", "replace").rstrip("\r")
