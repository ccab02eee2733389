"""``python -m eval.seeds --runs RUN [RUN ...]``: a learned agent's training seeds side by side.

Every run directory's exported policies (``bc/``: cloning only; ``best/``: the best validation checkpoint;
``export/``: the last step) are evaluated on the chosen splits with :func:`eval.evaluate.evaluate`. Prints each
seed's IQM with its 95% CI, the mean over seeds with a t-interval (n - 1 degrees of freedom), and which seed is
closest to the mean (the one to ship: never the best on test). ``--out FILE`` writes the same as JSON. Run it
after training, once; nothing here feeds back into training or checkpoint choice.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SeedsConfig:
    """Compare the seeds of one training recipe (every field is a CLI flag)."""

    runs: tuple[Path, ...]
    """Run directories of train_ppo, one per seed."""
    policies: tuple[str, ...] = ("bc", "best")
    """Exported policies of each run to evaluate (subdirectories: bc, best, export)."""
    split: tuple[str, ...] = ("test", "test-ood")
    """Splits to evaluate on."""
    suite: str = "tcb-v2"
    """Benchmark suite."""
    out: Path | None = None
    """Also write the table as JSON here."""
    max_instances: int = 0
    """Only the first n instances of each split (0 = all; for smoke tests)."""


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval over seeds."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def compare(cfg: SeedsConfig) -> dict:
    """Evaluates every (run, policy, split); returns the table."""
    from agents.ppo import PPOPolicy
    from eval.evaluate import evaluate

    if not cfg.runs:
        raise ValueError("--runs needs at least one run directory")
    table: dict = {"suite": cfg.suite, "splits": {}}
    for split in cfg.split:
        per_policy: dict = {}
        for name in cfg.policies:
            seeds = []
            for run in cfg.runs:
                policy = PPOPolicy.load(Path(run) / name, name=name)
                s = evaluate(policy, cfg.suite, split, max_instances=cfg.max_instances).summary()
                train_seed = json.loads((Path(run) / "config.json").read_text()).get("seed")
                seeds.append({"run": str(run), "seed": train_seed, **s})
            mean, lo, hi = mean_interval([s["iqm"] for s in seeds])
            closest = min(seeds, key=lambda s: abs(s["iqm"] - mean))
            per_policy[name] = {"seeds": seeds, "mean": mean, "ci_low": lo, "ci_high": hi, "closest_to_mean": closest["seed"]}
        table["splits"][split] = per_policy
    return table


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(SeedsConfig, prog="tensorcache-seeds", args=argv)
    try:
        table = compare(cfg)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, per_policy in table["splits"].items():
        for name, t in per_policy.items():
            cells = "  ".join(f"seed {s['seed']}: {s['iqm']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]" for s in t["seeds"])
            print(f"{split:<9} {name:<7} {cells}  mean {t['mean']:.3f} [{t['ci_low']:.3f}, {t['ci_high']:.3f}]"
                  f"  closest to mean: seed {t['closest_to_mean']}")  # fmt: skip
    if cfg.out is not None:
        from envs.io.atomic import write_text_atomic

        write_text_atomic(cfg.out, json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
