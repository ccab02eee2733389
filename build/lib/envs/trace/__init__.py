"""The trace: the record every other room reads (columns, metadata, SHA-256 content hash), its file formats (npz,
libCacheSim's oracleGeneral, CSV), its statistics, and the compiled scans over it (renumbering, next use).

Depends only on :mod:`envs.io`; it loads neither torch nor, until a scan runs, numba.

Modules:
    record: :class:`Trace`, :class:`Op`, :class:`Kind`, :class:`Phase`, :class:`TraceError`.
    formats: ``read_trace`` / ``write_trace`` over every format.
    stats: reuse distances, entropy, locality, KS / Wasserstein comparisons.
    scan_kernels: compiled whole-trace scans.
"""

from envs.trace.record import COLUMNS, COST_COLUMNS, Kind, Op, Phase, Trace, TraceError, classic_trace, renumber

__all__ = ["COLUMNS", "COST_COLUMNS", "Kind", "Op", "Phase", "Trace", "TraceError", "classic_trace", "renumber"]
