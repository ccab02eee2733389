"""Versions recorded with every result: the package, the env and the observation layout."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("tensorcache-gym")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: Version of the environment's observation, candidate and reward semantics (see the env's Version History).
ENV_VERSION = "Eviction-v1"
ENV_ID = "tensorcache/Eviction-v1"
#: The env with observation version 2 and the schedule candidate rule (kept beside v1 for old results).
ENV_ID_V2 = "tensorcache/Eviction-v2"
