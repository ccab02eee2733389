"""An exclusive lock on a run or output directory, so two processes never write the same one."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DirectoryBusyError(OSError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """``with DirectoryLock(path):`` holds ``path/.lock`` (an OS-level lock, released when the process dies).

    Raises:
        DirectoryBusyError: If another process holds it.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryBusyError(f"{self.directory} is in use by another run (its .lock is held)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_writable_dir(directory: str | Path) -> Path:
    """Creates ``directory`` if needed and checks a file can be written there (before any long work).

    Raises:
        OSError: With a one-line reason when it cannot.
    """
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(f"{d} exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    probe = d / f".write-probe-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
    return d
