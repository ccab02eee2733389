"""Where generated suite traces are cached: ``$TENSORCACHE_CACHE`` or the per-user cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$TENSORCACHE_CACHE/traces`` if set, else ``$XDG_CACHE_HOME/tensorcache/traces`` (``~/.cache`` by default)."""
    root = os.environ.get("TENSORCACHE_CACHE")
    if root:
        return Path(root).expanduser() / "traces"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tensorcache" / "traces"
