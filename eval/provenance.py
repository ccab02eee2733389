"""What every result records about the software that produced it."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("tensorcache-gym", "numpy", "numba", "gymnasium", "torch", "scipy")


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on ("absent" when not installed)."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def source_commit() -> str:
    """The git commit of the source tree this code runs from (``-dirty`` with uncommitted changes), or
    ``"unknown"`` outside a git checkout (an installed wheel)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown"
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if sha.returncode != 0:
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def run_provenance() -> dict[str, object]:
    """When and from what a run's outputs were made: UTC time, source commit, package versions."""
    import datetime

    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"created": created, "commit": source_commit(), "versions": package_versions()}
