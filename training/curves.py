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
import matplotlib.ticker


def _series(rows: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    pts = [(float(r[x]), float(r[y])) for r in rows if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def _ppo_progress(run_dir: Path) -> list[dict]:
    """Every progress CSV of a run (the first and one per resume), in step order."""
    rows: list[dict] = []
    for f in sorted((run_dir / "tb").glob("progress*.csv")):
        rows += list(csv.DictReader(f.open()))
    return sorted(rows, key=lambda r: float(r.get("time/total_timesteps") or 0))


def _ppo_evals(run_dir: Path) -> list[dict]:
    """The validation evaluations recorded in the run's latest checkpoint (:mod:`training.checkpoint`)."""
    ckpt = run_dir / "checkpoints"
    latest = json.loads((ckpt / "latest.json").read_text())["latest"]
    return json.loads((ckpt / latest / "trainer_state.json").read_text()).get("evals", [])


def ppo_curve(run_dirs: list[Path], out: Path) -> Path:
    """Episode reward and validation score along each run (one line per training seed)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    configs = [json.loads((run_dir / "config.json").read_text()) for run_dir in run_dirs]
    names = {c.get("exp_name") for c in configs}
    for run_dir, cfg in zip(run_dirs, configs, strict=True):
        # one line per seed; runs of several experiments are told apart by their names
        label = f"seed {cfg.get('seed')}" if len(names) == 1 else f"{cfg.get('exp_name')}, seed {cfg.get('seed')}"
        xs, ys = _series(_ppo_progress(run_dir), "time/total_timesteps", "rollout/ep_rew_mean")
        a.plot(xs, ys, label=label)
        evals = _ppo_evals(run_dir)
        b.plot([e["step"] for e in evals], [e["normalized_score"] for e in evals], marker="o", label=label)
    a.set(xlabel="environment steps", ylabel="episode reward (−bytes moved / capacity)", title="training episodes")
    b.set(xlabel="environment steps (0 = cloned policy)", ylabel="normalized byte score (IQM)", title="validation split")
    b.legend(fontsize=8)
    thousands = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k")
    for ax in (a, b):
        ax.xaxis.set_major_formatter(thousands)
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
    b.plot(xs, ys, marker="o", label="top-1 agreement with the teacher")
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
    p = argparse.ArgumentParser(prog="tensorcache-curves", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, nargs="+", help="one LLM run, or PPO runs (one line per seed)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if all((d / "tb" / "progress.csv").is_file() for d in args.run_dir):
        ppo_curve(args.run_dir, args.out)
    elif len(args.run_dir) == 1 and (args.run_dir[0] / "summary.json").is_file():
        llm_curve(args.run_dir[0], args.out)
    else:
        p.error("give PPO run directories (tb/progress.csv) or one finished LLM run (summary.json)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
