"""The decision layer over the simulator: the sealed past-only :class:`~envs.gym.features.DecisionView` and its
observation (one feature table), the one episode driver, the fused compiled step, run timelines, and the
Gymnasium env ``tensorcache/Eviction-v1``.

Depends on :mod:`envs.trace` and :mod:`envs.sim` (and, for trace sources, :mod:`envs.workloads` and
:mod:`envs.benchmarks`, imported on use). Submodules are imported where they are needed, so importing this
package loads nothing heavy.
"""
