"""LLM policy throughput: ``python -m eval.bench_llm [--agent llm] [--split validation] [--instances N]
[--jobs J] [--max-batch B ...] [--json]``.

Plays a leaderboard LLM entry greedily on the first ``N`` instances of a tcb-v2 split through the process executor:
``J`` workers of one torch thread each, every worker running its traces in lockstep with at most ``B`` decisions
per forward pass (``B = 1``: one decision at a time). Prints decisions per second of wall time for each ``B``, its
ratio to the first ``B`` of the same run, and the machine's load. Wall time includes loading the model in each
worker (about a second; the workers' imports happen before the clock starts); the per-worker rates exclude it.
Every ``B`` must move exactly the same bytes (the bench refuses to report otherwise): batching changes how fast
decisions are made, never which.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _play(task: tuple[str, list, int]) -> tuple[list[tuple[int, int, int]], float]:
    from eval.evaluate import evaluate
    from eval.leaderboard.entries import registry

    agent, instances, max_batch = task
    policy = registry().make(agent)
    policy.max_batch = max_batch
    t0 = time.perf_counter()
    rows = evaluate(policy, instances=instances, name=agent).rows
    return [(r["decisions"], r["bytes_in"], r["bytes_out"]) for r in rows], time.perf_counter() - t0


def measure(agent: str, split: str, instances: int, jobs: int, batches: list[int]) -> dict:
    """Decisions per second of ``agent`` for each most-decisions-per-pass in ``batches`` (see the module docstring).

    Raises:
        RuntimeError: When two settings move different bytes.
    """
    from envs.benchmarks import get_suite
    from eval.executor import Executor

    insts = get_suite("tcb-v2").instances(split)[:instances]
    for inst in insts:
        inst.capacity  # prepared here, once, not inside the timed maps  # noqa: B018
    by_size = sorted(insts, key=lambda i: -len(i.prepared.tid))
    parts = [by_size[w::jobs] for w in range(jobs)]  # dealt largest first, so the workers get similar work
    out: dict = {"agent": agent, "split": split, "instances": len(insts), "jobs": jobs, "runs": []}
    reference = None
    with Executor("process", jobs) as executor:
        executor.map(_play, [(agent, [], 1)] * jobs)  # starts the workers (imports) before the clock
        for batch in batches:
            t0 = time.perf_counter()
            results = executor.map(_play, [(agent, part, batch) for part in parts])
            wall = time.perf_counter() - t0
            counts = sorted(c for rows, _ in results for c in rows)
            if reference is None:
                reference = counts
            elif counts != reference:
                raise RuntimeError(f"max batch {batch} moved different bytes than max batch {batches[0]}")
            decisions = sum(c[0] for c in counts)
            out["runs"].append({
                "max_batch": batch, "decisions": decisions, "wall_s": wall, "decisions_per_s": decisions / wall,
                "worker_decisions_per_s": [sum(r[0] for r in rows) / s for rows, s in results if s > 0],
                "load": os.getloadavg()[0],
            })  # fmt: skip
    first = out["runs"][0]["decisions_per_s"]
    for run in out["runs"]:
        run["ratio_to_first"] = run["decisions_per_s"] / first
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_llm", description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="llm", help="a leaderboard LLM entry (llm, llm-base)")
    ap.add_argument("--split", default="validation", choices=["train", "validation", "test", "test-ood"])
    ap.add_argument("--instances", type=int, default=8, help="the split's first N instances")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--max-batch", type=int, nargs="+", default=[1, 4], help="most decisions per forward pass")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = ap.parse_args(argv)
    if args.instances < 1 or args.jobs < 1 or min(args.max_batch) < 1:
        ap.error("--instances, --jobs and --max-batch must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = measure(args.agent, args.split, args.instances, args.jobs, args.max_batch)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['agent']} on {out['instances']} {out['split']} instances, {out['jobs']} workers of one thread")
    print("| max batch | decisions | wall s | decisions/s | per worker | ratio to first | load |")
    print("|---|---|---|---|---|---|---|")
    for r in out["runs"]:
        per = ", ".join(f"{x:.0f}" for x in r["worker_decisions_per_s"])
        print(f"| {r['max_batch']} | {r['decisions']:,} | {r['wall_s']:.1f} | {r['decisions_per_s']:.0f} | {per} | "
              f"{r['ratio_to_first']:.2f} | {r['load']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
