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
