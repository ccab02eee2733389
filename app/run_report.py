"""A self-contained HTML report of one Copilot simulation: tables and inline SVG figures, no external assets."""

from __future__ import annotations

import html

#: 20 distinct colours (matplotlib's tab20 order); the lower bound is black, in every chart and the report.
PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)
#: Strategies in a fixed order, so each keeps one colour on every page; others take a colour from their name.
_ORDER = ("lru", "fifo", "mru", "lfu", "random", "sieve", "next-use", "schedule", "belady", "cost-belady", "lp-guided",
          "best-offline", "bc", "bc-v2", "ppo", "llm", "llm-base", "s3fifo")  # fmt: skip


def strategy_colour(name: str) -> str:
    """The one colour of strategy ``name`` in the dashboard's charts and the HTML report."""
    if name == "lower-bound":
        return "#000000"
    if name in _ORDER:
        return PALETTE[_ORDER.index(name) % len(PALETTE)]
    return PALETTE[sum(name.encode()) % len(PALETTE)]


def byte_unit(largest: float) -> tuple[str, int]:
    """The unit for byte values up to ``largest``: the largest binary unit it reaches (at least KiB)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if largest >= scale:
            return unit, scale
    return "KiB", 2**10


def _bars(rows: list[dict]) -> str:
    width, bar_h = 640, 22
    top = max(r["bytes_moved"] for r in rows) or 1
    unit, scale = byte_unit(top)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{bar_h * len(rows) + 10}" role="img">']
    for i, r in enumerate(rows):
        w = (width - 220) * r["bytes_moved"] / top
        y = 5 + i * bar_h
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(r["strategy"])}</text>')
        parts.append(f'<rect x="120" y="{y}" width="{w:.1f}" height="{bar_h - 6}" fill="{strategy_colour(r["strategy"])}"/>')
        parts.append(f'<text x="{124 + w:.1f}" y="{y + 13}" font-size="11">{r["bytes_moved"] / scale:.2f} {unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _timeline(row: dict, kinds: list[str], capacity: int) -> str:
    tl = row.get("timeline")
    if not tl:
        return ""
    width, height = 640, 200
    pos = tl["position"]
    n = max(pos[-1], 1)
    series = tl["resident_by_kind"]
    total = [sum(col) for col in zip(*series, strict=True)]
    top = max(max(total), capacity, 1)
    pts = " ".join(
        f"{40 + (width - 50) * p / n:.1f},{height - 20 - (height - 30) * t / top:.1f}" for p, t in zip(pos, total, strict=True)
    )
    cap_y = height - 20 - (height - 30) * capacity / top
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
            f'<line x1="40" x2="{width - 10}" y1="{cap_y:.1f}" y2="{cap_y:.1f}" stroke="#d62728" stroke-dasharray="4"/>'
            f'<text x="42" y="{cap_y - 4:.1f}" font-size="11">capacity</text>'
            f'<text x="40" y="{height - 4}" font-size="11">access 0 … {n}</text></svg>')  # fmt: skip


def step_headline(step: dict) -> str:
    """One sentence on step time from a simulation's ``step_time`` summary, e.g. "LRU: 1.420 s/step, best legal
    policy (schedule): 1.183 s/step, 1.20× faster", or why step time is unknown."""
    if step.get("unknown") or step.get("lru_step_s") is None:
        return f"Step time unknown: {step.get('unknown') or 'no run could be timed'}."
    text = f"LRU: {step['lru_step_s']:.4g} s/step"
    best = step.get("best_legal")
    if best is not None:
        text += f", best legal policy ({best['strategy']}): {best['step_s']:.4g} s/step, {best['speedup_vs_lru']:.2f}× faster"
    return text + f" (on {step['device']}; compute alone: {step['compute_floor_s']:.4g} s/step)."


def report_html(result: dict, trace: dict) -> str:
    rows = result["strategies"]
    cols = ["strategy", "kind", "bytes_moved", "bytes_in", "bytes_out", "hit_ratio", "byte_hit_ratio", "transfer_s",
            "bytes_ratio_vs_lru", "step_s", "stall_s", "speedup_step_vs_lru", "score_vs_bound"]  # fmt: skip

    def fmt(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))

    table = "<table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows) + "</table>"
    best = next(r for r in rows if r["strategy"] == result["best"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TensorCache Copilot report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>Which strategy moves the fewest bytes?</h1>
<p>Trace {html.escape(trace["trace_id"])} ({trace["n_accesses"]} accesses, {trace["n_tensors"]} tensors, hash
{html.escape(result["trace_hash"][:16])}), memory {result["capacity_bytes"] / 2**30:.3f} GiB, link {html.escape(result["link"])}.
Best: <b>{html.escape(result["best"])}</b>. Lower bound on bytes moved:
{"–" if result["lower_bound_bytes"] is None else f"{result['lower_bound_bytes'] / 2**30:.3f} GiB"}.</p>
<p><b>{html.escape(step_headline(result["step_time"]))}</b> A step's time is roofline compute plus waits for
demand transfers on the host link; the first iteration (cold weights, prefill) is left out.</p>
{table}<h2>Bytes moved</h2>{_bars(rows)}
<h2>Resident bytes over the trace ({html.escape(best["strategy"])})</h2>
{_timeline(best, result["kinds"], result["capacity_bytes"])}
<h2>Reproduce</h2><pre>{html.escape(result["command"])}</pre></body></html>"""
