"""Trace interchange formats: libCacheSim's oracleGeneral binary format and a plain CSV, and one reader for all."""

from __future__ import annotations

from pathlib import Path

from envs.trace.formats.csv_format import read_csv, write_csv
from envs.trace.formats.oracle_general import RECORD, read_oracle_general, write_oracle_general
from envs.trace.record import COLUMNS, Trace, TraceError

FORMATS = ("npz", "oracleGeneral", "csv")


def guess_format(path: str | Path) -> str:
    """Format from the file suffix: .npz, .csv, anything else oracleGeneral."""
    return {".npz": "npz", ".csv": "csv"}.get(Path(path).suffix.lower(), "oracleGeneral")


def read_trace(path: str | Path, fmt: str | None = None, max_accesses: int | None = None) -> Trace:
    """Loads a trace in any supported format (guessed from the suffix when ``fmt`` is None).

    Args:
        max_accesses: Refuse a file holding more accesses than this, before reading it all where the format allows
            (npz: from the archive's directory, so a zip bomb is never decompressed; oracleGeneral: from the file
            size; CSV: while reading).

    Raises:
        TraceError: On an unknown format, a malformed file, or one over ``max_accesses``.
    """
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; valid: {', '.join(FORMATS)}")
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    if fmt == "npz":
        # every column is at most 8 bytes an access; the op costs at most 16 bytes an op (at most one op an access)
        budget = None if max_accesses is None else max_accesses * 8 * (len(COLUMNS) + 2) + 2**20
        return Trace.load(path, max_bytes=budget)
    if fmt == "csv":
        return read_csv(path, max_accesses)
    if max_accesses is not None and path.stat().st_size // RECORD.itemsize > max_accesses:
        raise TraceError(f"{path}: {path.stat().st_size // RECORD.itemsize} requests; the limit here is {max_accesses}")
    return read_oracle_general(path)


def write_trace(trace: Trace, path: str | Path, fmt: str | None = None) -> Path:
    """Writes ``trace`` in ``fmt`` (guessed from the suffix when None), atomically."""
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "npz":
        return trace.save(path)
    from envs.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        (write_csv if fmt == "csv" else write_oracle_general)(trace, tmp)
    return Path(path)


__all__ = ["FORMATS", "guess_format", "read_csv", "read_oracle_general", "read_trace", "write_csv", "write_oracle_general",
           "write_trace"]  # fmt: skip
