"""Environment throughput: ``python -m eval.bench_env [--steps N] [--repeats R] [--json]``.

Measures eviction decisions per second of ``tensorcache/Eviction-v1`` driven by a trivial policy (always
candidate 0, which is always valid) on one tcb-v2 test trace: a single env for each candidate rule (and v2's
observation with the schedule rule, Eviction-v2's defaults), a no-op env
with the same spaces (the floor of Python and the Gymnasium API, in the same process), ``gym.make`` with its
defaults (the train split's tasks, resets included), and a 4-env ``gymnasium.vector.AsyncVectorEnv`` (decisions
summed over envs). Prints the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def single_env_rate(trace, capacity: int, k: int, rule: str, steps: int, version: int = 1) -> float:
    from envs.gym.eviction_env import EvictionEnv

    env = EvictionEnv(trace=trace, capacity=capacity, k=k, candidates=rule, observation_version=version)
    env.reset(seed=0)
    for _ in range(100):  # warm-up (compiled kernels loaded)
        env.step(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, _, _ = env.step(0)
        if term:
            env.reset()
    return steps / (time.perf_counter() - t0)


def noop_env_rate(k: int, obs_size: int, steps: int) -> float:
    """Steps per second of a Gymnasium env that does nothing (same spaces, a fixed observation): the floor that
    Python and the Gymnasium API alone cost, printed beside the real env's rate."""
    import gymnasium as gym

    class NoOpEnv(gym.Env):
        def __init__(self) -> None:
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_size,), np.float32)
            self.action_space = gym.spaces.Discrete(k)
            self._obs = np.zeros(obs_size, dtype=np.float32)

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            return self._obs, {}

        def step(self, action: int):
            return self._obs, 0.0, False, False, {}

    env = NoOpEnv()
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(0)
    return steps / (time.perf_counter() - t0)


def default_make_rate(steps: int) -> tuple[float, int]:
    """Decisions per second through ``gym.make("tensorcache/Eviction-v1")`` with its defaults (the train split,
    a task drawn per episode), resets included, always the first candidate; and how many resets that took. The
    first reset (compiling, or loading the compiled kernels) is left out; every trace's first load is in."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers the env

    env = gym.make("tensorcache/Eviction-v1")
    env.reset(seed=0)
    resets = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(0)
        if term or trunc:
            env.reset()
            resets += 1
    return steps / (time.perf_counter() - t0), resets


def async_vector_rate(trace_path: str, capacity: int, k: int, rule: str, steps: int, n_envs: int = 4) -> float:
    import gymnasium as gym

    import envs  # noqa: F401 - registers the env

    vec = gym.make_vec(
        "tensorcache/Eviction-v1",
        num_envs=n_envs,
        vectorization_mode="async",
        trace_path=trace_path,
        capacity=capacity,
        k=k,
        candidates=rule,
    )
    try:
        vec.reset(seed=0)
        actions = np.zeros(n_envs, dtype=np.int64)
        for _ in range(100):
            vec.step(actions)
        t0 = time.perf_counter()
        for _ in range(steps // n_envs):
            vec.step(actions)  # autoreset handles finished episodes
        return (steps // n_envs) * n_envs / (time.perf_counter() - t0)
    finally:
        vec.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench_env", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50_000, help="decisions per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.k < 1:
        p.error("--steps, --repeats and --k must be >= 1")
    from envs.benchmarks import get_suite

    inst = get_suite("tcb-v2").instances("test")[0]
    trace = inst.trace()
    rows = []
    for rule, version in (("lru", 1), ("mixed", 1), ("schedule", 2)):
        rates = [single_env_rate(trace, inst.capacity, args.k, rule, args.steps, version) for _ in range(args.repeats)]
        setup = f"single env, {rule} candidates" + (f", observation v{version}" if version != 1 else "")
        rows.append({"setup": setup, "median_decisions_per_s": statistics.median(rates), "runs": rates})
    from envs.gym.features import observation_size

    rates = [noop_env_rate(args.k, observation_size(args.k), args.steps) for _ in range(args.repeats)]
    rows.append({"setup": "no-op Gymnasium env (floor)", "median_decisions_per_s": statistics.median(rates), "runs": rates})
    runs = [default_make_rate(20 * args.steps) for _ in range(args.repeats)]
    setup = f"gym.make defaults, resets in ({statistics.median(r[1] for r in runs):.0f} a run)"
    rows.append({"setup": setup, "median_decisions_per_s": statistics.median(r[0] for r in runs), "runs": [r[0] for r in runs]})
    rates = [async_vector_rate(str(inst.path), inst.capacity, args.k, "lru", args.steps) for _ in range(args.repeats)]
    rows.append({"setup": "AsyncVectorEnv x4, lru candidates", "median_decisions_per_s": statistics.median(rates), "runs": rates})
    meta = {"trace": inst.path.name, "task": inst.task, "k": args.k, "steps": args.steps, "repeats": args.repeats}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return 0
    print(f"trace {meta['trace']} ({meta['task']}), K={args.k}, {args.steps} decisions per run, medians of {args.repeats}")
    for r in rows:
        print(f"  {r['setup']:<44} {r['median_decisions_per_s']:>10,.0f} decisions/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
