"""Where an env's traces come from: a trace object, a file, a generated workload, or a suite split."""

from __future__ import annotations

from envs.sim.capacity import Headroom
from envs.trace import Trace


def trace_sources(trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, task, capacity):
    """The env's trace sources: a list of zero-argument loaders, each returning (a trace or a prepared trace, capacity spec).

    Exactly one of ``trace`` (a :class:`~envs.trace.Trace`), ``trace_path`` (any format
    :func:`envs.trace.formats.read_trace` reads), ``workload`` (with ``preset``; one loader per seed) or ``suite``
    (the instances of ``split``, or of its ``task``) is given; see :class:`envs.gym.eviction_env.EvictionEnv`.

    Raises:
        ValueError: On a missing or ambiguous source, or an unknown preset.
    """
    given = [x is not None for x in (trace, trace_path, workload, suite)]
    if sum(given) != 1:
        raise ValueError("give at most one of trace, trace_path, workload (with preset) or suite")
    if task is not None and suite is None:
        raise ValueError("task= picks a task of a suite; give suite= too (or no trace argument)")
    if trace is not None:
        if not isinstance(trace, Trace):
            raise ValueError(f"trace must be an envs.Trace, got {type(trace).__name__}")
        return [lambda: (trace, capacity)]
    if trace_path is not None:
        from envs.trace.formats import read_trace

        loaded = read_trace(trace_path)
        return [lambda: (loaded, capacity)]
    if workload is not None:
        from envs.workloads import generate_trace, get_workload

        w = get_workload(workload)
        if preset is None or preset not in w.presets():
            raise ValueError(f"workload {workload!r} needs a preset; valid: {', '.join(w.presets())}")
        if not seeds:
            raise ValueError("seeds must not be empty")
        return [
            (
                lambda s=s: (
                    generate_trace(workload, preset, layers=layers, iterations=iterations, seed=s, method=method),
                    capacity,
                )
            )
            for s in seeds
        ]
    from envs.benchmarks import get_suite

    instances = get_suite(suite).instances(split, tasks=None if task is None else (task,))
    # the trace read once; Headroom(h) resolves to exactly inst.capacity, and the info says what it means
    return [(lambda inst=inst: (inst.prepared, Headroom(inst.headroom))) for inst in instances]
