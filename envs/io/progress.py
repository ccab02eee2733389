"""Progress lines for long phases: one timestamped line each on stderr, flushed, so a log file or a CI console shows
what a run is doing (no carriage-return bars)."""

from __future__ import annotations

import sys
import time


def log_progress(message: str) -> None:
    """Writes ``[HH:MM:SS] message`` to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Progress:
    """Counts finished items of a long phase and logs ``what: done/total (elapsed, ETA)`` at every tenth of the
    way, and at least once a minute; call it once per finished item."""

    def __init__(self, what: str, total: int, every_s: float = 60.0) -> None:
        self.what, self.total, self.every_s = what, max(int(total), 1), every_s
        self.done = 0
        self._start = self._last = time.monotonic()
        self._next_tenth = 1

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        tenth = self.done * 10 // self.total
        if tenth >= self._next_tenth or now - self._last >= self.every_s or self.done >= self.total:
            self._next_tenth, self._last = tenth + 1, now
            elapsed = now - self._start
            eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            log_progress(f"{self.what}: {self.done}/{self.total} ({elapsed:.0f} s, about {eta:.0f} s left)")
