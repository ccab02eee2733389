"""``python -m envs.simulate``: run policies over a trace at one or more capacities."""

from __future__ import annotations

import argparse
import json
import sys

from envs.sim.simulator import MODES, SIM_POLICIES, SimError, parse_capacity, prepare, simulate
from envs.traces import FORMAT_CHOICES, guess_format, load_any


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m envs.simulate", description="Simulate eviction policies.")
    p.add_argument("--trace", required=True, help="trace file")
    p.add_argument("--format", choices=FORMAT_CHOICES, help="trace format (default: from the suffix)")
    p.add_argument("--policy", default="lru", help=f"comma-separated: {','.join(SIM_POLICIES)}")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--capacity", help="comma-separated sizes, e.g. 128MiB,1GiB")
    group.add_argument("--capacity-fraction", help="comma-separated fractions of the peak live bytes")
    p.add_argument("--mode", choices=MODES, help="default: classic for oracleGeneral, tensor otherwise")
    p.add_argument("--link", default="pcie4-x16", help="link preset for transfer time")
    p.add_argument("--json", action="store_true", help="print one JSON array")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        fmt = args.format or guess_format(__import__("pathlib").Path(args.trace))
        mode = args.mode or ("classic" if fmt == "oracleGeneral" else "tensor")
        trace = load_any(args.trace, fmt)
        policies = [p.strip() for p in args.policy.split(",") if p.strip()]
        for p in policies:
            if p not in SIM_POLICIES:
                raise SimError(f"unknown policy {p!r}; valid: {', '.join(SIM_POLICIES)}")
        if args.capacity:
            caps = [parse_capacity(c) for c in args.capacity.split(",")]
        else:
            fracs = [float(f) for f in args.capacity_fraction.split(",")]
            if any(not 0 < f <= 1 for f in fracs):
                raise SimError("capacity fractions must be in (0, 1]")
            peak = trace.peak_live_bytes()
            caps = [max(int(f * peak), 1) for f in fracs]
        prepared = prepare(trace, mode)
        rows = []
        lru_moved = {c: simulate(prepared, "lru", c).bytes_moved for c in caps}
        for p in policies:
            for c in caps:
                r = simulate(prepared, p, c)
                d = r.to_dict()
                d["speedup_vs_lru"] = lru_moved[c] / r.bytes_moved if r.bytes_moved else float("inf")
                d["transfer_s"] = r.transfer_seconds(args.link)
                rows.append(d)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'policy':<10} {'capacity':>12} {'hit ratio':>9} {'byte HR':>8} {'GiB moved':>10} {'vs LRU':>7}")
        for d in rows:
            print(
                f"{d['policy']:<10} {d['capacity_bytes']:>12} {d['hit_ratio']:>9.4f} {d['byte_hit_ratio']:>8.4f} "
                f"{d['bytes_moved'] / 2**30:>10.3f} {d['speedup_vs_lru']:>7.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
