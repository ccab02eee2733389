"""Belady-labelled decision datasets: ``python -m training.make_labels --suite tcb-v2 --split train --out DIR``.

Writes ``DIR/{split}.jsonl`` (one decision per line) and ``DIR/manifest.json``. Each record (schema version
:data:`SCHEMA_VERSION`) holds the prompt (:mod:`agents.prompt`, past-only), the completion naming Belady's choice
among the offered candidates, the label index, each candidate's distance to its next use (``null`` = never; for
ranking losses), and where it came from (task, seed, decision step). ``--rollout AGENT`` rolls out that agent
instead of Belady and labels the states it visits (DAgger). Test splits are refused unless ``--allow-test``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from envs.sim import engine as E

SCHEMA_VERSION = 1


@dataclass
class LabelConfig:
    """Which decisions to label and where to write them (every field is a CLI flag)."""

    suite: str = "tcb-v2"
    """Benchmark suite."""
    split: str = "train"
    """train or validation (test needs --allow-test)."""
    out: str = "artifacts/labels"
    """Output directory."""
    k: int = 16
    """Candidates per decision."""
    candidates: Literal["lru", "mixed"] = "mixed"
    """Candidate rule."""
    stride: int = 4
    """Keep every n-th decision of each trace."""
    rollout: str | None = None
    """Agent to roll out (DAgger); default: follow Belady."""
    max_instances: int = 0
    """First n suite instances only (0 = all)."""
    allow_test: bool = False
    """Label the held-out test split (for analysis only)."""


def write_labels(cfg: LabelConfig) -> Path:
    """Writes the dataset; returns the JSONL path."""
    from agents.prompt import PROMPT_VERSION, completion, serialize
    from envs.atomic_io import atomic_path, write_text_atomic
    from envs.benchmarks import get_suite
    from training.labels import iter_decisions

    if cfg.split == "test" and not cfg.allow_test:
        raise ValueError("the test split is held out; pass --allow-test to label it anyway")
    if cfg.k < 1 or cfg.stride < 1:
        raise ValueError("--k and --stride must be >= 1")
    if cfg.max_instances < 0:
        raise ValueError(f"--max-instances must be >= 0, got {cfg.max_instances}")

    suite = get_suite(cfg.suite)
    instances = suite.instances(cfg.split)[: cfg.max_instances or None]
    rollout = None
    if cfg.rollout:
        from eval.leaderboard.entries import registry

        rollout = registry().make(cfg.rollout)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cfg.split}.jsonl"
    n = 0
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for inst in instances:
            for rec in iter_decisions(inst.prepared, inst.capacity, cfg.k, cfg.candidates, rollout, inst.task, inst.seed):
                if rec.step % cfg.stride:
                    continue
                nu = [None if int(x) >= E.NEVER // 2 else int(x) for x in rec.next_use]
                row = {
                    "schema_version": SCHEMA_VERSION,
                    "prompt_version": PROMPT_VERSION,
                    "task": inst.task,
                    "seed": inst.seed,
                    "step": rec.step,
                    "n_candidates": rec.view.n,
                    "prompt": serialize(rec.view),
                    "completion": completion(rec.label),
                    "label": rec.label,
                    "next_use": nu,
                }
                fh.write(json.dumps(row) + "\n")
                n += 1
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "prompt_version": PROMPT_VERSION,
        "config": asdict(cfg),
        "records": {cfg.split: n},
        "trace_hashes": sorted({i.prepared.trace.content_hash for i in instances}),
        "seconds": time.perf_counter() - t0,
    }
    mpath = out / "manifest.json"
    old = json.loads(mpath.read_text()) if mpath.is_file() else {}
    records = {**old.get("records", {}), cfg.split: n}
    write_text_atomic(mpath, json.dumps({**manifest, "records": records}, indent=2))
    return path


def read_labels(path: str | Path) -> list[dict]:
    """Reads a labels JSONL file, checking its schema version.

    Raises:
        ValueError: On a missing file, a malformed line or another schema version.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such labels file")
    rows = []
    with p.open() as fh:
        for i, line in enumerate(fh, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{p}:{i}: not a JSON line") from None
            if row.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"{p}:{i}: schema version {row.get('schema_version')!r}, expected {SCHEMA_VERSION}")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(LabelConfig, prog="python -m training.make_labels", args=argv)
    try:
        path = write_labels(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
