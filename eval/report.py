"""Figures and the HTML report of a leaderboard run."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from eval.leaderboard.board import (
    KIND_LABELS,
    STEP_TIME_CAPTION,
    STEP_TIME_HEADERS,
    agent_label,
    ratio_text,
    step_time_rows,
)

_LINESTYLES = ("-", "--", ":", "-.")


def agent_styles(agents: list[str]) -> dict[str, dict]:
    """One colour per agent (matplotlib's 20-colour tab20, in sorted name order, so an agent keeps its colour in
    every figure of a report), and a line style that changes once the colours run out."""
    cmap = plt.get_cmap("tab20")
    return {a: {"color": cmap(i % 20), "linestyle": _LINESTYLES[(i // 20) % len(_LINESTYLES)]}
            for i, a in enumerate(sorted(agents))}  # fmt: skip


def bar_chart(board: dict, path: Path) -> Path:
    agents = list(reversed(board["ranking"]))
    vals = np.array([board["agents"][a]["byte_score"]["iqm"] for a in agents])
    lo = np.array([board["agents"][a]["byte_score"]["ci_low"] for a in agents])
    hi = np.array([board["agents"][a]["byte_score"]["ci_high"] for a in agents])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(agents) + 1.2))
    ax.barh(agents, vals, xerr=[vals - lo, hi - vals], color="#4C72B0", capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.axvline(1, color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"normalized byte score (IQM, 95% stratified bootstrap CI; LRU = 0, {anchor_name(board)} = 1)")
    ax.set_title(f"{board['suite']} / {board['split']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def heatmap(board: dict, path: Path) -> Path:
    agents = board["ranking"]
    tasks = board["tasks"]
    m = np.array([[board["agents"][a]["per_task"].get(t, np.nan) for t in tasks] for a in agents])
    fig, ax = plt.subplots(figsize=(0.75 * len(tasks) + 2.5, 0.5 * len(agents) + 2.0))
    shown = np.clip(m, -1.5, 1.5)
    im = ax.imshow(shown, cmap="RdBu", vmin=-1.5, vmax=1.5, aspect="auto")
    ax.set_xticks(range(len(tasks)), tasks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(agents)), agents)
    for i in range(len(agents)):
        for j in range(len(tasks)):
            if not np.isnan(m[i, j]):
                dark = abs(shown[i, j]) > 0.9  # white text on saturated cells, black elsewhere
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label="normalized byte score (clipped to ±1.5 for colour)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def capacity_curves(rows: list[dict], path: Path) -> Path:
    families = sorted({r["family"] for r in rows})
    agents = sorted({r["agent"] for r in rows})
    cols = min(len(families), 3)
    nrows = -(-len(families) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 4.0 * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(families) :]:
        ax.axis("off")
    styles = agent_styles(agents)
    for ax, fam in zip(flat, families, strict=False):
        for a in agents:
            pts = [(float(r["headroom"]), float(r["byte_hit_ratio"])) for r in rows if r["family"] == fam and r["agent"] == a]
            hs = sorted({h for h, _ in pts})
            ys = [np.mean([y for h2, y in pts if h2 == h]) for h in hs]
            ax.plot(hs, ys, marker="o", ms=3, label=a, **styles[a])
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("capacity (headroom fraction)")
        ax.set_ylabel("byte hit ratio")
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / (5.0 * cols), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def anchor_name(board: dict) -> str:
    return str(board.get("anchor", "belady")).replace("-", " ")


COLUMN_DEFINITIONS = (
    ("byte score", "(LRU bytes moved − agent bytes moved) / (LRU bytes moved − anchor bytes) per run; LRU = 0, "
     "the anchor = 1, higher is better. The anchor is the certified lower bound on bytes moved (tcb-v2), so no run "
     "scores above 1, or Belady's bytes (tcb-v1). IQM = mean of the middle 50% of all runs; 95% CI from a bootstrap "
     "that resamples runs within each task."),
    ("mean", "the plain mean of the same per-run scores, with its CI."),
    ("worst task", "the task with the lowest mean score: what a user of that workload would see."),
    ("hit score", "the same normalization applied to the hit ratio, with Belady's hit ratio as 1 (secondary). It can "
     "exceed 1: Belady keeps the tensors used soonest, which maximises hits only when every tensor is the same size; "
     "with tensors of different sizes, a policy that keeps many small tensors hits more often while moving more bytes."),
    ("byte hit ratio", "hit bytes / requested bytes, mean over runs."),
    ("LRU bytes / bytes", "LRU bytes moved / agent bytes moved, mean over runs: a ratio of bytes, not of time."),
    ("step speed-up vs LRU", "LRU's seconds per training or serving step / the agent's, geometric mean over runs. A "
     "step's time is roofline compute (FLOPs and bytes per op, recorded at capture) plus the waits for demand "
     "transfers on the host link, on the suite's accelerator (envs/sim/step_time.py); the first iteration is left "
     "out. Compute is the same for every policy, so this is always smaller than the bytes ratio. 'unknown' where a "
     "run cannot be timed (shipped rows from before step time)."),
)  # fmt: skip


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(d: dict, key: str) -> str:
    return f"{d[key]:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def _group(kind: str | None, groups: list[str]) -> int:
    return groups.index(kind) if kind in groups else len(groups)


def _split_section(board: dict, rows: list[dict], out: Path, first_figure: int, device: str) -> tuple[str, int]:
    """The HTML of one split: overall table, per-task table, step times, probabilities of improvement, captioned
    figures."""
    split = board["split"]
    anchor = anchor_name(board)
    rank = {a: i for i, a in enumerate(board["ranking"], 1)}
    groups = list(KIND_LABELS)  # the report groups agents by kind, each group in rank order
    grouped = sorted(board["ranking"], key=lambda a: (_group(board["agents"][a].get("kind"), groups), rank[a]))
    overall = [
        [str(rank[a]), agent_label(a, d), KIND_LABELS.get(d.get("kind", ""), "unknown"), _fmt(d["byte_score"], "iqm"),
         _fmt(d["byte_score_mean"], "mean"), f"{d['worst_task']['task']} ({d['worst_task']['score']:.2f})",
         f"{d['hit_score']['iqm']:.3f}", f"{d['mean_byte_hit_ratio']:.4f}", f"{d['mean_bytes_ratio_vs_lru']:.3f}",
         ratio_text(d["step_speedup_vs_lru"])]
        for a in grouped
        for d in [board["agents"][a]]
    ]  # fmt: skip
    if board.get("anchor") == "lower-bound":
        overall.append(["–", "lower bound", "bound", "1 (by construction)", "1", "–", "–", "–", "–", "–"])
    per_task = [[a, *(f"{board['agents'][a]['per_task'][t]:.2f}" for t in board["tasks"])] for a in board["ranking"]]
    poi = [[pair, f"{p:.2f}"] for pair, p in board.get("probability_of_improvement", {}).items()]
    split_rows = [r for r in rows if r["split"] == split and int(r.get("admitted", 1))]
    tag = split.replace("-", "_")
    figures = [
        (bar_chart(board, out / f"scores_{tag}.png"), f"Normalized byte score per agent (IQM, 95% CI). 0 = LRU, 1 = {anchor}."),
        (heatmap(board, out / f"heatmap_{tag}.png"), "Mean normalized byte score per task (columns: family@headroom), agents "
         "in rank order. Colours are clipped to ±1.5; the numbers are not."),
        (capacity_curves(split_rows, out / f"capacity_curves_{tag}.png"), "Byte hit ratio against capacity (headroom fraction "
         "between the largest op and the peak live bytes), mean over seeds, one panel per trace family."),
    ]  # fmt: skip
    figs = "".join(
        f'<figure><img src="{_data_uri(f)}" alt="{html.escape(c)}"><figcaption>Figure {i}. {html.escape(c)} '
        f"({html.escape(f.name)} beside this file.)</figcaption></figure>"
        for i, (f, c) in enumerate(figures, first_figure)
    )
    excluded = board.get("excluded_instances") or []
    left_out = ""
    if excluded:
        left_out = f"<p>Left out (LRU within the admission gap of the anchor): {html.escape(', '.join(excluded))}</p>"
    section = f"""<h2>{html.escape(split)} split</h2>
<p>{board["n_rows"]} runs over {len(board["tasks"])} tasks; 1 = {html.escape(anchor)}. Higher is better.</p>{left_out}
<p>Grouped by kind: learned agents, legal heuristics (past accesses only), offline references (they read the
future: a ceiling, not something to deploy), and the bound; the rank is over all of them.</p>
<div class="wide">{_table(["rank", "agent", "kind", "byte score IQM [95% CI]", "mean [95% CI]", "worst task", "hit score IQM",
         "byte hit ratio", "LRU bytes / bytes", "step speed-up vs LRU"], overall)}</div>
<h3>Per task</h3><div class="wide">{_table(["agent", *board["tasks"]], per_task)}</div>
<h3>Step time</h3><p>{html.escape(STEP_TIME_CAPTION.format(device=device))}</p>
{_table(STEP_TIME_HEADERS, step_time_rows(board))}
<h3>Probability of improvement</h3><p>P(first agent beats second on a random run of a random task), as in rliable, for
each pair of the top legal agents once, the higher-ranked first (the reverse is one minus it, ties counted half;
offline references read the future and are left out).</p>
{_table(["pair", "P(improvement)"], poi)}
{figs}"""  # fmt: skip
    return section, first_figure + len(figures)


def _data_uri(path: Path) -> str:
    """The PNG at ``path`` inline, so report.html is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _provenance_html(boards: dict) -> str:
    prov = boards.get("provenance") or {}
    versions = prov.get("versions") or {}
    desc = boards.get("suite_definition") or {}
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    return (f"<p class=\"prov\">Made {html.escape(str(prov.get('created', 'unknown')))} from commit "
            f"<code>{html.escape(str(prov.get('commit', 'unknown')))}</code>; suite {html.escape(boards['suite'])} "
            f"v{html.escape(str(desc.get('version', '?')))}, device {html.escape(str(desc.get('device', '?')))}; "
            f"{html.escape(listed)}.</p>")  # fmt: skip


def write_report(boards: dict, rows: list[dict], out: Path) -> Path:
    """Writes the PNG figures and ``report.html`` (per split: tables, definitions, captioned figures)."""
    from envs.io.atomic import write_text_atomic

    sections, fig = [], 1
    for board in boards["splits"].values():
        device = boards.get("suite_definition", {}).get("device", "the suite's device")
        html_part, fig = _split_section(board, rows, out, fig, device)
        sections.append(html_part)
    first = next(iter(boards["splits"].values()))
    defs = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in COLUMN_DEFINITIONS)
    title = html.escape(boards["suite"])
    refused = "".join(
        f"<p><b>Refused {html.escape(a)}</b>: {html.escape(why)}</p>" for a, why in boards.get("refused", {}).items()
    )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} leaderboard</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}}
table{{border-collapse:collapse;margin:1em 0;font-size:0.9em}} th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:nth-child(2),th:nth-child(2){{text-align:left}} thead{{background:#f0f0f0}} img{{max-width:100%}}
figcaption{{font-size:0.9em;color:#444}} dt{{font-weight:bold}} .wide{{overflow-x:auto;max-width:100%}}
.wide table{{font-size:0.8em}} .prov{{font-size:0.85em;color:#444}}</style>
</head><body><h1>{html.escape(boards["suite"])} leaderboard</h1>{_provenance_html(boards)}
<p>Env {html.escape(first["env_version"])}, trace generator v{first["generator_version"]}.
Splits: {html.escape(", ".join(boards["splits"]))}. Shipped rows checked by a replayed sample drawn with seed
{boards.get("replay_seed", "–")}.</p>{refused}
<h2>Columns</h2><dl>{defs}</dl>
{"".join(sections)}</body></html>"""  # fmt: skip
    path = out / "report.html"
    write_text_atomic(path, page)
    return path
