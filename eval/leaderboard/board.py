"""Aggregating leaderboard rows into the board (``leaderboard.json``) and its Markdown table.

Per agent: the IQM and the mean of the normalized byte score over all runs, each with a 95% stratified-bootstrap
CI (strata = tasks); the worst task (lowest mean score); the hit score (secondary); the mean byte hit ratio; the
mean ratio of LRU's bytes to the agent's; and the step-time speed-up over LRU (geometric mean of the rows' ratios of
seconds per step, see :mod:`envs.sim.step_time`; per task too, with the mean seconds per step).

Between each pair of the top legal agents (offline references excluded): the probability of
improvement (rliable).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from envs.sim.policies import OFFLINE_STRATEGIES
from eval.metrics import aggregate, probability_of_improvement

TOP_FOR_POI = 4


def _by_task(rows: list[dict], tasks: list[str], column: str) -> dict[str, np.ndarray]:
    return {t: np.array([r[column] for r in rows if r["task"] == t], dtype=np.float64) for t in tasks}


def geometric_mean(values: list[float]) -> float:
    """Geometric mean of positive ratios; NaN when there are none or any is unknown (NaN)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        return float("nan")
    return float(np.exp(np.mean(np.log(x))))


def _mean(values: list[float]) -> float:
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()) if x.size and np.all(np.isfinite(x)) else float("nan")


def agent_summary(rows: list[dict], tasks: list[str]) -> dict[str, Any]:
    """The board entry of one agent's rows."""
    if not rows:
        nan = {"iqm": float("nan"), "mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
        return {"byte_score": nan, "byte_score_mean": nan, "hit_score": nan, "worst_task": {"task": None, "score": nan["iqm"]},
                "per_task": dict.fromkeys(tasks, float("nan")), "mean_byte_hit_ratio": float("nan"),
                "mean_bytes_ratio_vs_lru": float("nan"), "step_speedup_vs_lru": float("nan"),
                "per_task_step_s": dict.fromkeys(tasks, float("nan")),
                "per_task_step_speedup": dict.fromkeys(tasks, float("nan")), "decisions_per_s": float("nan"),
                "n_rows": 0}  # fmt: skip
    by_task = _by_task(rows, tasks, "norm_byte_score")
    per_task = {t: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for t, v in by_task.items()}
    finite = {t: v for t, v in per_task.items() if np.isfinite(v)}
    worst = min(finite, key=finite.get) if finite else None
    return {
        "byte_score": aggregate(list(by_task.values())),
        "byte_score_mean": aggregate(list(by_task.values()), statistic="mean"),
        "hit_score": aggregate(list(_by_task(rows, tasks, "norm_hit_score").values())),
        "worst_task": {"task": worst, "score": finite[worst] if worst else float("nan")},
        "per_task": per_task,
        "mean_byte_hit_ratio": float(np.mean([r["byte_hit_ratio"] for r in rows])),
        "mean_bytes_ratio_vs_lru": float(np.mean([r["bytes_ratio_vs_lru"] for r in rows])),
        "step_speedup_vs_lru": geometric_mean([r["speedup_step_vs_lru"] for r in rows]),
        "per_task_step_s": {t: _mean([r["step_s"] for r in rows if r["task"] == t]) for t in tasks},
        "per_task_step_speedup": {t: geometric_mean([r["speedup_step_vs_lru"] for r in rows if r["task"] == t]) for t in tasks},
        "decisions_per_s": float(np.median([r["decisions_per_s"] for r in rows])),
        "n_rows": len(rows),
    }


def ranking(agents: dict[str, dict]) -> list[str]:
    """Agents by byte-score IQM, best first (NaN last)."""
    return sorted(agents, key=lambda a: -np.nan_to_num(agents[a]["byte_score"]["iqm"], nan=-1e9))


#: Agents that read the future: ranked, but left out of the probability-of-improvement pairs of legal agents.
OFFLINE_AGENTS = frozenset(OFFLINE_STRATEGIES)


#: How boards and reports name each kind of agent, in the order the report groups them.
KIND_LABELS = {"learned": "learned", "heuristic": "legal heuristic", "offline": "offline reference", "bound": "bound"}


def make_board(rows: list[dict], suite_description: dict, split: str, agents: list[str], tasks: list[str],
               kinds: dict[str, str] | None = None,
               replayed: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The board of one split: per-agent summaries over the admitted rows, the ranking, pairwise probabilities of
    improvement between the top legal agents, and the instances left out (LRU within the suite's gap of the
    anchor). ``replayed``: for agents whose rows were shipped, (rows replayed, rows) — shown beside their name."""
    excluded = sorted({(r["task"], int(r["seed"])) for r in rows if not int(r.get("admitted", 1))})
    rows = [r for r in rows if int(r.get("admitted", 1))]
    summaries = {a: agent_summary([r for r in rows if r["agent"] == a], tasks) for a in agents}
    for a in agents:
        summaries[a]["kind"] = (kinds or {}).get(a, "offline" if a in OFFLINE_AGENTS else "unknown")
        if a in (replayed or {}):
            k, n = replayed[a]
            summaries[a]["shipped"] = {"replayed": k, "rows": n}
    order = ranking(summaries)
    poi = {}
    legal = [a for a in order if a not in OFFLINE_AGENTS]
    for a, b in itertools.combinations(legal[:TOP_FOR_POI], 2):  # each pair once, the higher-ranked first
        xa = _by_task([r for r in rows if r["agent"] == a], tasks, "norm_byte_score")
        xb = _by_task([r for r in rows if r["agent"] == b], tasks, "norm_byte_score")
        poi[f"{a} > {b}"] = probability_of_improvement([xa[t] for t in tasks], [xb[t] for t in tasks])
    return {
        "suite": suite_description["suite"],
        "split": split,
        "tasks": tasks,
        "n_rows": len(rows),
        "env_version": suite_description["env_version"],
        "generator_version": suite_description["generator_version"],
        "ranking": order,
        "agents": summaries,
        "kinds": {a: summaries[a]["kind"] for a in order},
        "probability_of_improvement": poi,
        "anchor": suite_description.get("anchor", "belady"),
        "excluded_instances": [f"{t} seed {s}" for t, s in excluded],
    }


def _ci(d: dict, key: str) -> str:
    return f"{d[key]:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"


def table_markdown(board: dict) -> str:
    """The ranked table of a board."""
    lines = [
        "| rank | agent | kind | byte score IQM [95% CI] | mean [95% CI] | worst task | hit score IQM | byte hit ratio | "
        "LRU bytes / bytes | step speed-up vs LRU |",
        "|---:|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for i, a in enumerate(board["ranking"], 1):
        d = board["agents"][a]
        w = d["worst_task"]
        lines.append(
            f"| {i} | {agent_label(a, d)} | {KIND_LABELS.get(d.get('kind', ''), '')} | {_ci(d['byte_score'], 'iqm')} | "
            f"{_ci(d['byte_score_mean'], 'mean')} | "
            f"{w['task']} ({w['score']:.2f}) | {d['hit_score']['iqm']:.3f} | {d['mean_byte_hit_ratio']:.4f} | "
            f"{d['mean_bytes_ratio_vs_lru']:.3f} | {ratio_text(d['step_speedup_vs_lru'])} |"
        )
    if board.get("anchor") == "lower-bound":
        lines.append("| – | lower bound | bound | 1 (by construction) | 1 | – | – | – | – | – |")
    if board.get("excluded_instances"):
        lines.append(f"\nLeft out (LRU within the admission gap of the anchor): {', '.join(board['excluded_instances'])}")
    return "\n".join(lines)


def agent_label(name: str, summary: dict) -> str:
    """The agent's name, with "(shipped rows: k of N replayed)" when its rows came from its entry."""
    shipped = summary.get("shipped")
    return name if not shipped else f"{name} (shipped rows: {shipped['replayed']} of {shipped['rows']} replayed)"


def ratio_text(x: float) -> str:
    """A ratio as ``1.234×``, or "unknown" for NaN."""
    return f"{x:.3f}×" if np.isfinite(x) else "unknown"


def step_time_rows(board: dict) -> list[list[str]]:
    """Per task: LRU's seconds per step, the fastest legal agent's (name, seconds, speed-up over LRU) and
    best-offline's speed-up, from the agents' per-task means (seconds per steady-state step on the suite's device)."""
    agents = board["agents"]
    out = []
    for t in board["tasks"]:
        lru = agents.get("lru", {}).get("per_task_step_s", {}).get(t, float("nan"))
        legal = {a: d["per_task_step_s"][t] for a, d in agents.items()
                 if a not in OFFLINE_AGENTS and np.isfinite(d.get("per_task_step_s", {}).get(t, float("nan")))}  # fmt: skip
        best = min(legal, key=legal.get) if legal else None
        offline = agents.get("best-offline", {}).get("per_task_step_speedup", {}).get(t, float("nan"))
        out.append([
            t, f"{lru:.3f}" if np.isfinite(lru) else "unknown",
            best or "–", f"{legal[best]:.3f}" if best else "–",
            ratio_text(agents[best]["per_task_step_speedup"][t]) if best else "–", ratio_text(offline),
        ])  # fmt: skip
    return out


#: What the step-time table shows (``device``: the suite's accelerator preset).
STEP_TIME_CAPTION = ("Seconds per steady-state step on {device} (roofline compute plus link stalls, "
                     "envs/sim/step_time.py; mean over seeds) and speed-ups over LRU in step time (geometric mean).")  # fmt: skip
#: Headers of :func:`step_time_rows`.
STEP_TIME_HEADERS = ["task", "LRU s/step", "fastest legal agent", "its s/step", "its speed-up", "best-offline speed-up"]


def step_time_markdown(board: dict) -> str:
    """:func:`step_time_rows` as a Markdown table."""
    lines = ["| " + " | ".join(STEP_TIME_HEADERS) + " |", "|---|---:|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in step_time_rows(board)]
    return "\n".join(lines)


def side_by_side_markdown(boards: dict) -> str:
    """Every split's IQM [CI] and worst task, side by side, agents in the order of the first split's ranking."""
    splits = list(boards["splits"])
    first = boards["splits"][splits[0]]
    head = "| agent | " + " | ".join(f"{s} IQM [95% CI] | {s} worst task" for s in splits) + " |"
    lines = [head, "|---|" + "---|---|" * len(splits)]
    for a in first["ranking"]:
        cells = []
        for s in splits:
            d = boards["splits"][s]["agents"][a]
            w = d["worst_task"]
            cells.append(f"{_ci(d['byte_score'], 'iqm')} | {w['task']} ({w['score']:.2f})")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_markdown(board: dict) -> str:
    """Mean normalized byte score per agent and task, agents in rank order."""
    tasks = board["tasks"]
    lines = ["| agent | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for a in board["ranking"]:
        d = board["agents"][a]
        lines.append(f"| {a} | " + " | ".join(f"{d['per_task'][t]:.2f}" for t in tasks) + " |")
    return "\n".join(lines)
