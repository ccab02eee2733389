"""Training-curve figures for leaderboard entries: ``python -m training.curves RUN_DIR --out FILE.png``.

Reads what a run already logs: a PPO run's ``tb/progress.csv`` (SB3's CSV of the TensorBoard scalars) or an LLM
run's ``summary.json`` (trainer log history) and ``validation.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(rows: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    pts = [(float(r[x]), float(r[y])) for r in rows if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def ppo_curve(run_dir: Path, out: Path) -> Path:
    rows = list(csv.DictReader((run_dir / "tb" / "progress.csv").open()))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    xs, ys = _series(rows, "time/total_timesteps", "rollout/ep_rew_mean")
    a.plot(xs, ys)
    a.set(xlabel="environment steps", ylabel="episode reward (−bytes moved / capacity)", title="training episodes")
    evals = json.loads((run_dir / "checkpoints" / "trainer_state.json").read_text()).get("evals", [])
    b.plot([e["step"] for e in evals], [e["normalized_score"] for e in evals], marker="o")
    b.set(xlabel="environment steps", ylabel="normalized byte score (IQM)", title="validation split")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def llm_curve(run_dir: Path, out: Path) -> Path:
    history = json.loads((run_dir / "summary.json").read_text())["log_history"]
    val = [json.loads(line) for line in (run_dir / "validation.jsonl").read_text().splitlines()]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    xs, ys = _series(history, "step", "loss")
    a.plot(xs, ys)
    a.set(xlabel="LoRA step", ylabel="completion loss", title="4-bit LoRA SFT")
    xs, ys = _series(val, "step", "eval_top1_agreement")
    b.plot(xs, ys, marker="o", label="top-1 agreement with Belady")
    xs2, ys2 = _series(val, "step", "eval_top1_first")
    b.plot(xs2, ys2, ls="--", label="always candidate 0")
    xs3, ys3 = _series(val, "step", "eval_normalized_score")
    if xs3:
        b.plot(xs3, ys3, marker="s", label="normalized byte score")
    b.set(xlabel="LoRA step", title="validation split")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.curves", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if (args.run_dir / "tb" / "progress.csv").is_file():
        ppo_curve(args.run_dir, args.out)
    elif (args.run_dir / "summary.json").is_file():
        llm_curve(args.run_dir, args.out)
    else:
        p.error(f"{args.run_dir}: neither a PPO run (tb/progress.csv) nor a finished LLM run (summary.json)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
