"""Figures and the HTML report of a leaderboard run."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def bar_chart(board: dict, path: Path) -> Path:
    agents = sorted(board["agents"], key=lambda a: board["agents"][a]["byte_score"]["iqm"])
    vals = np.array([board["agents"][a]["byte_score"]["iqm"] for a in agents])
    lo = np.array([board["agents"][a]["byte_score"]["ci_low"] for a in agents])
    hi = np.array([board["agents"][a]["byte_score"]["ci_high"] for a in agents])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(agents) + 1.2))
    ax.barh(agents, vals, xerr=[vals - lo, hi - vals], color="#4C72B0", capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.axvline(1, color="k", lw=0.8, ls="--")
    ax.set_xlabel("normalized byte score (IQM, 95% stratified bootstrap CI; LRU = 0, Belady = 1)")
    ax.set_title(f"{board['suite']} / {board['split']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def heatmap(board: dict, path: Path) -> Path:
    agents = sorted(board["agents"])
    tasks = board["tasks"]
    m = np.array([[board["agents"][a]["per_task"].get(t, np.nan) for t in tasks] for a in agents])
    fig, ax = plt.subplots(figsize=(0.6 * len(tasks) + 2.5, 0.45 * len(agents) + 1.8))
    im = ax.imshow(np.clip(m, -1.5, 1.5), cmap="RdBu", vmin=-1.5, vmax=1.5, aspect="auto")
    ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(agents)), agents)
    for i in range(len(agents)):
        for j in range(len(tasks)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="normalized byte score (clipped to ±1.5 for colour)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def capacity_curves(rows: list[dict], path: Path) -> Path:
    families = sorted({r["family"] for r in rows})
    agents = sorted({r["agent"] for r in rows})
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3.2), squeeze=False)
    for ax, fam in zip(axes[0], families, strict=True):
        for a in agents:
            pts = [(float(r["headroom"]), float(r["byte_hit_ratio"])) for r in rows if r["family"] == fam and r["agent"] == a]
            hs = sorted({h for h, _ in pts})
            ys = [np.mean([y for h2, y in pts if h2 == h]) for h in hs]
            ax.plot(hs, ys, marker="o", ms=3, label=a)
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("capacity (headroom fraction)")
        ax.set_ylabel("byte hit ratio")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 0.9 / (3.2 * len(families)), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(board: dict, rows: list[dict], out: Path, table_md: str) -> Path:
    """Writes the PNG figures and ``report.html`` into ``out``."""
    figs = [
        bar_chart(board, out / "scores.png"),
        heatmap(board, out / "heatmap.png"),
        capacity_curves(rows, out / "capacity_curves.png"),
    ]
    body = "".join(f'<figure><img src="{f.name}" style="max-width:100%"></figure>' for f in figs)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{board["suite"]} leaderboard</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} pre{{background:#f6f6f6;padding:8px}}</style>
</head><body><h1>{html.escape(board["suite"])} — {html.escape(board["split"])} split</h1>
<p>Normalized byte score: LRU = 0, Belady = 1 (higher is better). Env {html.escape(board["env_version"])},
generator v{board["generator_version"]}, {board["n_rows"]} runs.</p>
<pre>{html.escape(table_md)}</pre>{body}</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path
