"""``python -m eval.leaderboard --suite tcb-v1 --split test --agents lru,fifo,... --out DIR``
and ``python -m eval.leaderboard validate DIR/results.csv [--suite tcb-v1]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from eval.suites import SUITES, get_suite

    if argv[:1] == ["validate"]:
        p = argparse.ArgumentParser(prog="python -m eval.leaderboard validate")
        p.add_argument("results", type=Path)
        p.add_argument("--suite", default="tcb-v1", choices=list(SUITES))
        args = p.parse_args(argv[1:])
        from eval.leaderboard.runner import validate

        if not args.results.is_file():
            print(f"error: {args.results}: no such file", file=sys.stderr)
            return 2
        problems = validate(args.results, get_suite(args.suite))
        for prob in problems:
            print(f"MISMATCH {prob}")
        print("all rows confirmed" if not problems else f"{len(problems)} mismatches")
        return 0 if not problems else 1
    p = argparse.ArgumentParser(prog="python -m eval.leaderboard", description="Run a leaderboard evaluation.")
    p.add_argument("--suite", default="tcb-v1", help=f"one of: {', '.join(SUITES)}")
    p.add_argument("--split", default="test", help="train, validation or test (held out)")
    p.add_argument("--agents", default="all", help="'all' or a comma-separated list")
    p.add_argument("--out", type=Path, default=Path("artifacts/leaderboard"))
    p.add_argument(
        "--recompute", action="store_true", help="run every agent, ignoring rows an entry ships (see eval/leaderboard/entries.py)"
    )
    args = p.parse_args(argv)
    from eval.leaderboard.runner import LeaderboardRun, resolve_agents, table_markdown, write_outputs

    try:
        suite = get_suite(args.suite)
        agents = resolve_agents(args.agents)
        suite.instances(args.split)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    lb = LeaderboardRun(suite, args.split, agents, recompute=args.recompute)
    lb.run()
    board = write_outputs(lb, args.out)
    print(table_markdown(board))
    if lb.precomputed_agents:
        print(
            f"\nrows shipped by entries (trace hashes, capacities and env version checked; rerun with --recompute): "
            f"{', '.join(lb.precomputed_agents)}"
        )
    print(
        f"\n{len(lb.rows)} runs in {time.perf_counter() - t0:.1f}s; wrote {args.out}/results.csv, "
        "leaderboard.json, leaderboard.md, report.html"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
