"""Atomic file writes: a temporary file in the destination folder, flushed and fsynced, then ``os.replace``.

A crash, a full disk or a kill -9 leaves either the old file or the new one, never a truncated mix. Every writer
of the project (traces, exports, caches, results, reports, checkpoints, labels) goes through here. The file gets
the mode an ordinary ``open()`` would give it (0666 less the umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with tmp_path.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask: from /proc where it can be read without changing it (other threads may be creating
    files), else by setting it and straight back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode())


def refuse_same_file(source: str | Path, destination: str | Path) -> None:
    """Raises ValueError when writing ``destination`` would overwrite the input ``source``."""
    src, dst = Path(source), Path(destination)
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise ValueError(f"refusing to write {dst} over its own input {src}")
