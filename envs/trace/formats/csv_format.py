"""A plain, lossless CSV form of a trace.

The first line is ``# meta: {json}``; the second is the header
``tensor_id,size,op,kind,layer,phase,op_index,iteration``; ``op``, ``kind`` and ``phase`` are written by name
(``READ``, ``weight``, ``forward``, ...). Reading accepts names or integer codes.
"""

from __future__ import annotations

import csv
import json
from array import array
from pathlib import Path

import numpy as np

from envs.trace.record import COLUMNS, Kind, Op, Phase, Trace, TraceError

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
    value = value.strip()
    if value.lstrip("-").isdigit():
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
    """Reads a CSV trace written by :func:`write_csv` (or by hand with the same header).

    Raises:
        TraceError: On a missing file, a wrong header, a short row, a value that does not parse, or more than
            ``max_accesses`` rows.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    try:
        return _read_csv(path, max_accesses)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{path}: not a text CSV trace ({type(exc).__name__})") from None


def _read_csv(path: Path, max_accesses: int | None) -> Trace:
    meta: dict = {}
    with path.open(newline="", encoding="utf-8") as fh:
        first = fh.readline()
        if first.startswith(_META_PREFIX):
            try:
                meta = json.loads(first[len(_META_PREFIX) :])
            except json.JSONDecodeError as exc:
                raise TraceError(f"{path}:1: metadata line is not JSON ({exc.msg})") from None
            header_line = fh.readline()
        else:
            header_line = first
        header = [h.strip() for h in header_line.strip().split(",")]
        if header != list(COLUMNS):
            raise TraceError(f"{path}: header must be {','.join(COLUMNS)}; got {header_line.strip()!r}")
        columns = {c: array("q") for c in COLUMNS}  # 8 bytes a value, not a Python int object each
        start = 3 if meta else 2
        for line, row in enumerate(csv.reader(fh), start=start):
            if not row:
                continue
            if max_accesses is not None and len(columns["tensor_id"]) >= max_accesses:
                raise TraceError(f"{path}: more than {max_accesses} accesses (the limit here)")
            if len(row) != len(COLUMNS):
                raise TraceError(f"{path}:{line}: expected {len(COLUMNS)} fields, got {len(row)}")
            for col, value in zip(COLUMNS, row, strict=True):
                if col in _ENUMS:
                    columns[col].append(_parse_enum(col, value, line, path))
                else:
                    try:
                        columns[col].append(int(value))
                    except ValueError:
                        raise TraceError(f"{path}:{line}: {col} {value!r} is not an integer") from None
                    except OverflowError:
                        raise TraceError(f"{path}:{line}: {col} {value!r} does not fit in a 64-bit integer") from None
    arrays = {c: np.frombuffer(v, dtype=np.int64) if len(v) else np.zeros(0, dtype=np.int64) for c, v in columns.items()}
    try:
        return Trace.from_arrays(arrays, meta)
    except TraceError as exc:
        raise TraceError(f"{path}: {exc}") from None
