"""``tensorcache-stats`` (``python -m envs.cli.stats_cli``): a trace's statistics, optionally against a reference."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import tyro

from envs.cli import run_cli


@dataclass(frozen=True)
class StatsConfig:
    """Reuse distance, reuse entropy, temporal locality and sizes of a trace (see envs/trace/stats.py for definitions)."""

    trace: Annotated[Path, tyro.conf.Positional]
    """Trace file (.npz, oracleGeneral, or .csv)."""
    reference: Path | None = None
    """Reference trace to compare against (KS D, Wasserstein distance)."""
    json: bool = False
    """Print JSON instead of a table."""


def run(cfg: StatsConfig) -> int:
    from envs.trace.formats import read_trace
    from envs.trace.stats import compare, format_table, trace_stats

    trace = read_trace(cfg.trace)
    ref = read_trace(cfg.reference) if cfg.reference else None
    s = trace_stats(trace)
    out: dict = {"trace": str(cfg.trace), "content_hash": trace.content_hash, **asdict(s)}
    if ref is not None:
        out["reference"] = str(cfg.reference)
        out["comparison"] = asdict(compare(trace, ref))
    if cfg.json:
        print(json.dumps(out, indent=2))
    else:
        print(format_table([(cfg.trace.name, s)]))
        print("bytes by kind: " + ", ".join(f"{k}={v / 2**20:.1f}MiB" for k, v in s.bytes_by_kind.items() if v))
        if ref is not None:
            print("vs reference: " + ", ".join(f"{k}={v:.4g}" for k, v in out["comparison"].items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(StatsConfig, prog="tensorcache-stats", args=argv)
    return run_cli(lambda: run(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
