"""Teacher-labelled decision datasets for the LLM policy: ``python -m training.make_labels --split train --out DIR``.

Writes ``DIR/{split}.jsonl`` (one decision per line) and ``DIR/manifest.json``. Each record (schema version
:data:`SCHEMA_VERSION`) holds the prompt (:mod:`agents.prompt`, past-only), the completion naming the teacher's
choice among the offered candidates (``--teacher``: ``lp-guided``, the best offline reference of tcb-v2, by
default; ``belady``; ``cost-belady``), the label index, each candidate's distance to its next use (``null`` =
never; for ranking losses), and where it came from (task, seed, decision step). ``--rollout AGENT`` plays that
agent instead of the teacher and labels the states it visits (DAgger); AGENT is a leaderboard name or an LLM run
directory of :mod:`training.train_llm` (its ``base/`` and ``adapter/``), so a model can be labelled on its own
mistakes. Instances are labelled independently through ``--executor`` (same records whichever runs them). Test
splits are refused unless ``--allow-test``.
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
    k: int = 8
    """Candidates per decision."""
    candidates: Literal["lru", "mixed", "schedule"] = "schedule"
    """Candidate rule."""
    stride: int = 4
    """Keep every n-th decision of each trace."""
    teacher: Literal["belady", "cost-belady", "lp-guided"] = "lp-guided"
    """Offline reference whose choices are the labels."""
    rollout: str | None = None
    """Agent to roll out (DAgger): a leaderboard name or an LLM run directory; default: follow the teacher."""
    max_instances: int = 0
    """First n suite instances only (0 = all; applied after --every)."""
    every: int = 1
    """Every n-th suite instance only (e.g. a subset for costly DAgger rollouts)."""
    allow_test: bool = False
    """Label the held-out test split (for analysis only)."""
    executor: Literal["serial", "process", "ray"] = "process"
    """Where instances are labelled (eval.executor)."""
    jobs: int = 2
    """Worker processes (process) or local Ray CPUs."""


def make_rollout(spec: str | None, k: int, rule: str):
    """The DAgger rollout policy: None, a leaderboard agent name, or an LLM run directory (``base/`` and, when
    present, ``adapter/``)."""
    if not spec:
        return None
    run = Path(spec)
    if run.is_dir():
        from agents.llm import LLMPolicy

        if not (run / "base").is_dir():
            raise ValueError(f"--rollout {spec}: an LLM run directory needs base/ (and adapter/ for LoRA)")
        adapter = run / "adapter" if (run / "adapter").is_dir() else None
        return LLMPolicy.load(run / "base", adapter, k=k, rule=rule, name=f"llm-run:{run.name}")
    from eval.leaderboard.entries import registry

    return registry().make(spec)


def _instance_lines(job: tuple) -> list[str]:
    """The JSONL records of one instance (run in a worker)."""
    from agents.prompt import PROMPT_VERSION, completion, serialize
    from training.labels import instance_decisions

    inst, cfg = job
    rollout = make_rollout(cfg.rollout, cfg.k, cfg.candidates)
    version = getattr(rollout, "prompt_version", PROMPT_VERSION)
    lines = []
    for rec in instance_decisions(inst, cfg.k, cfg.candidates, rollout, cfg.stride, cfg.teacher):
        row = {
            "schema_version": SCHEMA_VERSION,
            "prompt_version": version,
            "task": inst.task,
            "seed": inst.seed,
            "step": rec.step,
            "n_candidates": rec.view.n,
            "prompt": serialize(rec.view, version),
            "completion": completion(rec.label),
            "label": rec.label,
            "next_use": [None if int(x) >= E.NEVER // 2 else int(x) for x in rec.next_use],
        }
        lines.append(json.dumps(row) + "\n")
    return lines


def write_labels(cfg: LabelConfig) -> Path:
    """Writes the dataset; returns the JSONL path."""
    from agents.prompt import PROMPT_VERSION
    from envs.benchmarks import get_suite
    from envs.io.atomic import atomic_path, write_text_atomic
    from eval.executor import Executor

    if cfg.split == "test" and not cfg.allow_test:
        raise ValueError("the test split is held out; pass --allow-test to label it anyway")
    if cfg.k < 1 or cfg.stride < 1 or cfg.every < 1:
        raise ValueError("--k, --stride and --every must be >= 1")
    if cfg.max_instances < 0:
        raise ValueError(f"--max-instances must be >= 0, got {cfg.max_instances}")
    executor = Executor(cfg.executor, cfg.jobs)
    version = getattr(make_rollout(cfg.rollout, cfg.k, cfg.candidates), "prompt_version", PROMPT_VERSION)  # fail early
    from agents.prompt import SCHEDULE_VERSIONS

    if version in SCHEDULE_VERSIONS and cfg.candidates != "schedule":
        raise ValueError(f"prompt version {version} reads the schedule's predictions: use --candidates schedule")

    suite = get_suite(cfg.suite)
    instances = suite.instances(cfg.split)[:: cfg.every][: cfg.max_instances or None]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{cfg.split}.jsonl"
    mpath = out / "manifest.json"
    old = json.loads(mpath.read_text()) if mpath.is_file() else {}
    if old and old.get("prompt_version") not in (None, version):
        raise ValueError(f"{mpath} describes labels of prompt version {old.get('prompt_version')}, these are {version}")
    t0 = time.perf_counter()
    from envs.io.progress import Progress, log_progress

    log_progress(f"labelling {len(instances)} {cfg.split} instances of {cfg.suite} ({cfg.teacher}, every {cfg.stride}. decision)")
    with executor:
        parts = executor.map(_instance_lines, [(inst, cfg) for inst in instances], Progress("instances labelled", len(instances)))
    n = sum(len(p) for p in parts)
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for part in parts:
            fh.writelines(part)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "prompt_version": version,
        "config": asdict(cfg),
        "records": {cfg.split: n},
        "trace_hashes": sorted({i.prepared.trace.content_hash for i in instances}),
        "seconds": time.perf_counter() - t0,
    }
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

    cfg = tyro.cli(LabelConfig, prog="tensorcache-make-labels", args=argv)
    try:
        path = write_labels(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
