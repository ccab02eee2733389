"""Trace command line: ``python -m envs.traces {generate,info,export,import} ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from envs.formats import read_csv, read_oracle_general, write_csv, write_oracle_general
from envs.trace import Trace, TraceError

FORMAT_CHOICES = ("npz", "oracleGeneral", "csv")


def guess_format(path: Path) -> str:
    """Format from the file suffix: .npz, .csv, anything else oracleGeneral."""
    suffix = path.suffix.lower()
    return {".npz": "npz", ".csv": "csv"}.get(suffix, "oracleGeneral")


def load_any(path: str | Path, fmt: str | None = None) -> Trace:
    """Loads a trace in any supported format (guessed from the suffix when ``fmt`` is None)."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt == "npz":
        return Trace.load(path)
    if fmt == "csv":
        return read_csv(path)
    if fmt == "oracleGeneral":
        return read_oracle_general(path)
    raise TraceError(f"unknown trace format {fmt!r}; valid: {', '.join(FORMAT_CHOICES)}")


def _generate(args: argparse.Namespace) -> int:
    from envs.workloads import generate_trace

    trace = generate_trace(
        args.workload,
        args.preset,
        layers=args.layers,
        iterations=args.iterations,
        seed=args.seed,
        method=args.method,
        batch=args.batch,
    )
    trace.save(args.out)
    print(f"wrote {args.out}: {len(trace)} accesses, {trace.n_tensors} tensors, hash {trace.content_hash[:12]}")
    return 0


def _info(args: argparse.Namespace) -> int:
    trace = load_any(args.file, args.format)
    info = {
        "n_accesses": len(trace),
        "n_requests": int(trace.requests().size),
        "n_tensors": trace.n_tensors,
        "peak_live_bytes": trace.peak_live_bytes(),
        "bytes_by_kind": trace.bytes_by_kind(),
        "content_hash": trace.content_hash,
        "meta": dict(trace.meta),
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for k, v in info.items():
            if k != "meta":
                print(f"{k:>16}: {v}")
        print(f"{'workload':>16}: {trace.meta.get('workload')} / {trace.meta.get('preset')}")
    return 0


def _export(args: argparse.Namespace) -> int:
    trace = load_any(args.file)
    writer = {"oracleGeneral": write_oracle_general, "csv": write_csv, "npz": lambda t, p: t.save(p)}[args.format]
    writer(trace, args.out)
    print(f"wrote {args.out} ({args.format})")
    return 0


def _import(args: argparse.Namespace) -> int:
    trace = load_any(args.file, args.format)
    trace.save(args.out)
    print(f"wrote {args.out}: {len(trace)} accesses, {trace.n_tensors} tensors")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from envs.workloads import WORKLOADS

    parser = argparse.ArgumentParser(prog="python -m envs.traces", description="Generate and convert traces.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a trace from a workload preset")
    g.add_argument("--workload", required=True, help=f"one of: {', '.join(WORKLOADS)}")
    g.add_argument("--preset", required=True, help="preset of the workload (e.g. mistral-7b, resnet50)")
    g.add_argument("--layers", type=int, help="override the preset's depth")
    g.add_argument("--iterations", type=int, help="training or decode steps (default: the workload's)")
    g.add_argument("--batch", type=int, help="largest per-step batch of a training workload (steps draw batch/2 or batch)")
    g.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    g.add_argument("--method", default="captured", choices=("captured", "analytic"))
    g.add_argument("--out", required=True, type=Path, help="output .npz")
    g.set_defaults(func=_generate)
    i = sub.add_parser("info", help="summarise a trace")
    i.add_argument("file", type=Path)
    i.add_argument("--format", choices=FORMAT_CHOICES)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)
    e = sub.add_parser("export", help="convert a trace to oracleGeneral or CSV")
    e.add_argument("file", type=Path)
    e.add_argument("--format", required=True, choices=FORMAT_CHOICES)
    e.add_argument("--out", required=True, type=Path)
    e.set_defaults(func=_export)
    m = sub.add_parser("import", help="convert an oracleGeneral or CSV file to .npz")
    m.add_argument("file", type=Path)
    m.add_argument("--format", choices=FORMAT_CHOICES)
    m.add_argument("--out", required=True, type=Path)
    m.set_defaults(func=_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
