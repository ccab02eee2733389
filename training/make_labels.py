"""Belady-labelled decision datasets: ``python -m training.make_labels --suite tcb-v1 --split train --out DIR``.

Writes ``DIR/{split}.jsonl`` (one decision per line) and ``DIR/manifest.json``. Each record (schema version
:data:`SCHEMA_VERSION`) holds the prompt (:mod:`agents.prompt`, past-only), the completion naming Belady's choice
among the offered candidates, the label index, each candidate's distance to its next use (``null`` = never; for
ranking losses), and where it came from (task, seed, decision step). ``--rollout AGENT`` rolls out that agent
instead of Belady and labels the states it visits (DAgger). Test splits are refused unless ``--allow-test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from envs.sim import engine as E

SCHEMA_VERSION = 1


@dataclass
class LabelConfig:
    suite: str = "tcb-v1"
    split: str = "train"
    out: str = "artifacts/labels"
    k: int = 16
    candidates: str = "mixed"
    stride: int = 4
    rollout: str | None = None
    max_instances: int = 0
    seed: int = 0


def write_labels(cfg: LabelConfig) -> Path:
    """Writes the dataset; returns the JSONL path."""
    from agents.prompt import PROMPT_VERSION, completion, serialize
    from eval.suites import get_suite
    from training.labels import iter_decisions

    suite = get_suite(cfg.suite)
    instances = suite.instances(cfg.split)[: cfg.max_instances or None]
    rollout = None
    if cfg.rollout:
        from eval.leaderboard.runner import make_agent

        rollout = make_agent(cfg.rollout)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cfg.split}.jsonl"
    n = 0
    t0 = time.perf_counter()
    with path.open("w") as fh:
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
    mpath.write_text(json.dumps({**manifest, "records": records}, indent=2))
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
    p = argparse.ArgumentParser(prog="python -m training.make_labels", description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="tcb-v1")
    p.add_argument("--split", default="train", help="train or validation (test needs --allow-test)")
    p.add_argument("--out", default="artifacts/labels", help="output directory")
    p.add_argument("--k", type=int, default=16, help="candidates per decision")
    p.add_argument("--candidates", default="mixed", help="candidate rule: lru or mixed")
    p.add_argument("--stride", type=int, default=4, help="keep every n-th decision of each trace")
    p.add_argument("--rollout", help="agent to roll out (DAgger); default: follow Belady")
    p.add_argument("--max-instances", type=int, default=0, help="first n suite instances only (0 = all)")
    p.add_argument("--allow-test", action="store_true", help="label the held-out test split (for analysis only)")
    args = p.parse_args(argv)
    if args.split == "test" and not args.allow_test:
        print("error: the test split is held out; pass --allow-test to label it anyway", file=sys.stderr)
        return 2
    if args.k < 1 or args.stride < 1:
        print("error: --k and --stride must be >= 1", file=sys.stderr)
        return 2
    cfg = LabelConfig(args.suite, args.split, args.out, args.k, args.candidates, args.stride, args.rollout, args.max_instances)
    try:
        path = write_labels(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
