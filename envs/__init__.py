"""TensorCache Gym environments: traces, workloads, the cache simulator and the Gymnasium env.

Importing this package registers ``tensorcache/Eviction-v0`` with Gymnasium. Heavy modules (torch, numba) are
imported only by the submodules that need them.
"""

from envs.trace import Kind, Op, Phase, Trace, TraceError

__all__ = ["Kind", "Op", "Phase", "Trace", "TraceError"]
