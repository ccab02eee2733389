"""The Copilot dashboard (Streamlit): pick a model, a memory size and strategies; see what moves the fewest bytes.

Run with ``bash scripts/dashboard.sh``. Every number comes from the HTTP API (:mod:`app.api`) at
``$TENSORCACHE_API_URL`` (default ``http://127.0.0.1:8000``); with ``TENSORCACHE_API_URL=inprocess`` the same
requests go to an in-process app (tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st

from app.run_report import byte_unit, step_headline, strategy_colour

KIND_COLORS = {"weight": "#1f77b4", "activation": "#ff7f0e", "gradient": "#2ca02c", "optimizer_state": "#d62728",
               "kv_cache": "#9467bd", "temporary": "#8c564b", "input": "#e377c2"}  # fmt: skip
#: Where each kind of background job starts.
JOB_PATHS = {"simulate": "/jobs", "curve": "/jobs/curve", "trace": "/jobs/trace"}
DEFAULT_STRATEGIES = ["lru", "fifo", "sieve", "next-use", "schedule", "belady", "best-offline", "lower-bound"]


@st.cache_resource
def api_client():
    """An HTTP client for the API (or the in-process app for tests)."""
    url = os.environ.get("TENSORCACHE_API_URL", "http://127.0.0.1:8000")
    if url == "inprocess":
        from fastapi.testclient import TestClient

        from app.api import create_app

        client = TestClient(create_app(warm=False))
        client.__enter__()
        return client
    import httpx

    return httpx.Client(base_url=url, timeout=600)


def call(method: str, path: str, **kwargs) -> dict | list | str:
    resp = api_client().request(method, path, **kwargs)
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        raise RuntimeError(f"{detail}")
    return resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _once(key: tuple, make) -> dict:
    """``make()``'s trace for ``key`` (an upload's bytes and its options), asked once per session: a rerun does not
    send or parse the same file again (unless the API has since dropped the trace)."""
    digest = hashlib.sha256()
    for part in key:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    seen = st.session_state.setdefault("uploads", {})
    name = digest.hexdigest()
    if name in seen:
        try:
            return call("GET", f"/traces/{seen[name]['trace_id']}")
        except RuntimeError:
            del seen[name]  # evicted from the API's cache: send it again
    seen[name] = make()
    return seen[name]


def sidebar() -> dict | None:
    st.sidebar.header("1. Workload")
    workloads = call("GET", "/workloads")
    labels = {w["label"]: w for w in workloads}
    source = st.sidebar.radio("Trace", ["built-in model", "your model", "upload a trace"], key="source", horizontal=True)
    ref: dict
    if source == "built-in model":
        label = st.sidebar.selectbox("Model family", list(labels), key="family")
        w = labels[label]
        preset = st.sidebar.selectbox("Preset", w["presets"], key="preset")
        has_layers = w["name"] != "cnn-train"
        layers = st.sidebar.slider("Layers", 1, 96, 4, key="layers") if has_layers else None
        steps_label = "Decode steps" if w["name"].endswith("infer") else "Training steps"
        iterations = st.sidebar.slider(steps_label, 1, 16, 2, key="iterations")
        batch = None
        if w["name"].endswith("train"):
            b = st.sidebar.number_input("Largest batch (0 = the preset's choices)", 0, 256, 0, key="batch")
            batch = int(b) or None
        seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
        ref = {"scenario": {"workload": w["name"], "preset": preset, "layers": layers, "iterations": iterations,
                            "batch": batch, "seed": int(seed)}}  # fmt: skip
    elif source == "your model":
        examples = {m["name"]: m for m in call("GET", "/model-configs")}
        example = st.sidebar.selectbox("Example model (or upload your config.json below)", ["", *examples], key="hf_example",
                                       format_func=lambda n: n or "none: upload a config")  # fmt: skip
        cfg = st.sidebar.file_uploader("Hugging Face config.json (no weights needed)", type=["json"], key="hf_config")
        task = st.sidebar.radio("Step", ["train", "infer"], key="hf_task", horizontal=True,
                                format_func={"train": "training", "infer": "serving"}.get)  # fmt: skip
        seq = st.sidebar.number_input("Sequence length", 16, 32768, 512, step=128, key="hf_seq")
        hf_layers = st.sidebar.number_input("Blocks (0 = all)", 0, 128, 4, key="hf_layers")
        if cfg is None and not example:
            st.info("Pick an example model or upload your model's config.json: it is traced without weights (about a "
                    "second per block).")  # fmt: skip
            return None
        params = {"task": task, "seq": int(seq), **({"layers": int(hf_layers)} if hf_layers else {})}
        what = f"{cfg.name if cfg is not None else example}: {'training step' if task == 'train' else 'serving'}, "
        what += f"sequence {int(seq)}, {f'{int(hf_layers)} blocks' if hf_layers else 'every block'}, bfloat16"
        data = cfg.getvalue() if cfg is not None else None

        def start() -> dict:
            if data is not None:
                return call("POST", "/jobs/hf-config", files={"file": ("config.json", data)}, params=params)
            return call("POST", "/jobs/hf-config", params={**params, "example": example})

        digest = hashlib.sha256(data).hexdigest() if data is not None else example
        info = _traced({"config": digest, **params}, start, f"Tracing {what}")
        st.sidebar.caption(f"Traced {what}: {info['n_accesses']:,} accesses.")
        ref = {"trace_id": info["trace_id"]}
    else:
        up = st.sidebar.file_uploader(
            "Trace file (.npz, oracleGeneral .bin, or .csv: at least tensor_id,size,op; ≤ 64 MiB)", key="upload"
        )
        if up is None:
            st.info("Upload a trace to continue.")
            return None
        data = up.getvalue()
        info = _once(("upload", up.name, data), lambda: call("POST", "/traces/upload", files={"file": (up.name, data)}))
        ref = {"trace_id": info["trace_id"]}
    if "scenario" in ref:
        sc = ref["scenario"]
        label = f"{sc['preset']}, {sc['layers'] or 'all'} layers, {sc['iterations']} steps"
        trace = _traced(sc, lambda: call("POST", "/jobs/trace", json=sc), f"Generating the trace of {label}")
    else:
        trace = call("GET", f"/traces/{ref['trace_id']}")
    st.sidebar.header("2. Memory")
    lo, peak = trace["min_capacity_bytes"], trace["peak_live_bytes"]
    st.sidebar.caption(f"Feasible: from {fmt_bytes(lo)} (the largest op's operands) to {fmt_bytes(peak)} (everything fits).")
    unit = st.sidebar.radio("Size as", ["headroom", "GiB"], key="unit", horizontal=True)
    if unit == "GiB":
        gib = st.sidebar.number_input("Memory (GiB)", min_value=0.001, value=round((lo + 0.3 * (peak - lo)) / 2**30, 3),
                                      step=0.5, format="%.3f", key="gib")  # fmt: skip
        memory = {"gib": float(gib)}
    else:
        h = st.sidebar.slider("Headroom (0 = tightest, 1 = peak)", 0.0, 1.0, 0.3, 0.05, key="headroom")
        memory = {"headroom": float(h)}
    st.sidebar.header("3. Strategies")
    catalogue = call("GET", "/strategies")
    names = [s["name"] for s in catalogue]
    kinds = {s["name"]: s["kind"] for s in catalogue}
    slow = [s["name"] for s in catalogue if s["slow"]]
    chosen = st.sidebar.multiselect("Strategies", names, [s for s in DEFAULT_STRATEGIES if s in names], key="strategies",
                                    format_func=lambda n: f"{n} ({kinds[n]}{', seconds' if n in slow else ''})",
                                    help="Heuristics and learned agents answer at once; offline references, the bound "
                                    f"and {', '.join(slow) or 'slow agents'} run in the background and fill in.")  # fmt: skip
    accelerators = call("GET", "/accelerators")
    accelerator = st.sidebar.selectbox("Accelerator", [a["name"] for a in accelerators], key="accelerator",
                                       help="for the step time: peak FLOP/s, memory bandwidth and host link")  # fmt: skip
    own = next(a["link"] for a in accelerators if a["name"] == accelerator)
    links = [x["name"] for x in call("GET", "/links")]
    link = st.sidebar.selectbox("Link", links, index=links.index(own), key="link")
    st.sidebar.caption("Every change of a control answers at once: there is no Run button to press.")
    return {**ref, "memory": memory, "strategies": chosen, "link": link, "accelerator": accelerator, "trace": trace,
            "catalogue": catalogue}  # fmt: skip


def metric_cards(res: dict) -> None:
    if res["best"] is None:
        st.info("Only the lower bound was chosen: add a strategy to compare.")
        return
    best = next(r for r in res["strategies"] if r["strategy"] == res["best"])
    st.markdown(f"**{step_headline(res['step_time'])}**")
    st.subheader(f"Fewest bytes moved by a deployable policy: {best['strategy']} ({best.get('kind', '')})")
    if res.get("best_offline"):
        ceiling = next(r for r in res["strategies"] if r["strategy"] == res["best_offline"])
        st.caption(f"{ceiling['strategy']} moves {fmt_bytes(ceiling['bytes_moved'])} (vs {fmt_bytes(best['bytes_moved'])}) "
                   "but reads the future: a ceiling, not a policy you can deploy.")  # fmt: skip
    lru = next((r for r in res["strategies"] if r["strategy"] == "lru"), None)

    def vs_lru(key: str, text) -> str | None:  # the change from LRU, shown under each card
        return None if lru is None or best is lru else f"{text(best[key] - lru[key])} vs LRU"

    top, bottom = st.columns(4), st.columns(4)
    top[0].metric("Hit rate", f"{best['hit_ratio']:.3f}", vs_lru("hit_ratio", lambda d: f"{d:+.3f}"))
    top[1].metric("Byte hit ratio", f"{best['byte_hit_ratio']:.3f}", vs_lru("byte_hit_ratio", lambda d: f"{d:+.3f}"))

    def signed(d: float) -> str:
        return ("+" if d >= 0 else "-") + fmt_bytes(abs(d))  # an ASCII sign: Streamlit reads the direction from it

    top[2].metric("Bytes in", fmt_bytes(best["bytes_in"]), vs_lru("bytes_in", signed), delta_color="inverse",
                  help="read misses transferred to the accelerator")  # fmt: skip
    top[3].metric("Bytes out", fmt_bytes(best["bytes_out"]), vs_lru("bytes_out", signed), delta_color="inverse",
                  help="dirty tensors written back on eviction")  # fmt: skip
    if lru is not None and best is not lru:
        st.caption(f"LRU beside it: hit rate {lru['hit_ratio']:.3f}, {fmt_bytes(lru['bytes_moved'])} moved"
                   + (f", {lru['step_s']:.4g} s/step" if lru.get("step_s") else "") + ".")  # fmt: skip
    bottom[0].metric("Step time", "–" if best["step_s"] is None else f"{best['step_s']:.4g} s",
                     help=f"seconds per steady-state step on {res['accelerator']} over {res['link']}: roofline compute "
                     "plus waits for transfers")  # fmt: skip
    bottom[1].metric(
        "Step speed-up vs LRU",
        f"{best['speedup_step_vs_lru']:.2f}×" if best["speedup_step_vs_lru"] else "–",
        help=f"LRU's seconds per step / this one's (LRU moves {best['bytes_ratio_vs_lru'] or 0:.2f}× its bytes)",
    )
    score = best["score_vs_bound"]
    bottom[2].metric("Score vs bound", "–" if score is None else f"{score:.3f}",
                     help="(LRU bytes − bytes) / (LRU bytes − lower bound): 0 = LRU, 1 = nothing can do better")  # fmt: skip
    bottom[3].metric("Lower bound", fmt_bytes(res["lower_bound_bytes"]), help="no policy can move fewer bytes")


def bar_chart(res: dict) -> go.Figure:
    rows = res["strategies"]
    unit, scale = byte_unit(max(r["bytes_moved"] for r in rows))
    fig = go.Figure(go.Bar(x=[r["bytes_moved"] / scale for r in rows], y=[r["strategy"] for r in rows], orientation="h",
                           marker_color=[strategy_colour(r["strategy"]) for r in rows],
                           hovertemplate=f"%{{y}}: %{{x:.3f}} {unit}<extra></extra>"))  # fmt: skip
    fig.update_layout(title=f"Bytes moved ({unit}; fewer is better)", yaxis={"autorange": "reversed"},
                      height=60 + 34 * len(rows), margin={"l": 10, "r": 10, "t": 40, "b": 30})  # fmt: skip
    return fig


def step_chart(res: dict) -> go.Figure | None:
    """Seconds per step of every timed strategy: compute (the same for all) and link stalls, stacked."""
    rows = sorted((r for r in res["strategies"] if r.get("step_s") is not None), key=lambda r: r["step_s"])
    if not rows:
        return None
    names = [r["strategy"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[r["compute_s"] for r in rows], y=names, orientation="h", name="compute",
                         marker_color="#7f7f7f", hovertemplate="%{y}: %{x:.4g} s compute<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Bar(x=[r["stall_s"] for r in rows], y=names, orientation="h", name="waiting on the link",
                         marker_color="#ff7f0e", hovertemplate="%{y}: %{x:.4g} s stalled<extra></extra>"))  # fmt: skip
    fig.update_layout(title=f"Seconds per step on {res['accelerator']} (fewer is better)", barmode="stack",
                      yaxis={"autorange": "reversed"}, height=80 + 34 * len(rows), xaxis_title="s/step",
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})  # fmt: skip
    return fig


def timeline_chart(row: dict, kinds: list[str], capacity: int) -> go.Figure:
    tl = row["timeline"]
    unit, scale = byte_unit(capacity)
    fig = go.Figure()
    for kind, series in zip(kinds, tl["resident_by_kind"], strict=True):
        if any(series):
            fig.add_trace(go.Scatter(x=tl["position"], y=[v / scale for v in series], name=kind, stackgroup="one",
                                     line={"color": KIND_COLORS.get(kind)}))  # fmt: skip
    fig.add_hline(y=capacity / scale, line_dash="dash", line_color="#000000", annotation_text="capacity")
    fig.update_layout(title=f"Resident bytes by kind ({row['strategy']})", xaxis_title="access", yaxis_title=unit, height=340)
    return fig


def heatmap_chart(row: dict) -> go.Figure:
    tl = row["timeline"]
    z = tl["layer_residency"]
    fig = go.Figure(go.Heatmap(z=z, x=tl["position"], y=["none"] + [str(i) for i in range(len(z) - 1)],
                               colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "resident"}))  # fmt: skip
    fig.update_layout(title=f"Residency by layer over the trace ({row['strategy']})", xaxis_title="access", yaxis_title="layer",
                      height=360, yaxis={"type": "category"})  # fmt: skip  # "none", "0", "1": labels, not numbers
    return fig


def curve_chart(curve: dict, chosen: int) -> go.Figure:
    unit, scale = byte_unit(max(curve["capacity_bytes"]))
    fig = go.Figure()
    for name, ys in curve["moved_per_requested_byte"].items():
        line = {"color": strategy_colour(name), "dash": "dash" if name == "lower-bound" else None}
        fig.add_trace(go.Scatter(x=[c / scale for c in curve["capacity_bytes"]], y=ys, name=name, mode="lines+markers",
                                 line=line))  # fmt: skip
    fig.add_vline(x=chosen / scale, line_dash="dot", line_color="#444444", annotation_text="your memory")
    fig.update_layout(title="Bytes moved per byte requested, against memory size", xaxis_title=f"memory ({unit})",
                      yaxis_title="(in + write-back) / requested", height=360)  # fmt: skip
    return fig


def _job_key(kind: str, body: dict) -> str:
    """The session's key of the background job of ``kind`` for ``body``."""
    return json.dumps([kind, body], sort_keys=True)


def _job(kind: str, body: dict, start: Callable[[], dict] | None = None) -> str:
    """The id of the background job for ``body`` (started once per distinct request by ``start``, by default a POST
    of ``body`` to the kind's endpoint, then polled). Starting one cancels this session's previous job of the same
    kind, whose answer nobody will read (a moved slider, another model)."""
    jobs = st.session_state.setdefault("jobs", {})
    active = st.session_state.setdefault("active_jobs", {})
    key = _job_key(kind, body)
    if key not in jobs:
        jobs[key] = (start or (lambda: call("POST", JOB_PATHS[kind], json=body)))()["id"]
    previous = active.get(kind)
    if previous is not None and previous != jobs[key]:
        with contextlib.suppress(RuntimeError):  # finished and expired: nothing to stop
            call("DELETE", f"/jobs/{previous}")
        jobs.pop(next((k for k, v in jobs.items() if v == previous), None), None)
    active[kind] = jobs[key]
    return jobs[key]


def _poll(kind: str, body: dict, start: Callable[[], dict] | None = None) -> dict:
    """The job's state; a job the API no longer knows (restarted, expired) is started again."""
    try:
        return call("GET", f"/jobs/{_job(kind, body, start)}")
    except RuntimeError as exc:
        if "unknown job" not in str(exc):
            raise
        st.session_state["jobs"].pop(_job_key(kind, body), None)
        return call("GET", f"/jobs/{_job(kind, body, start)}")


def _traced(body: dict, start: Callable[[], dict], what: str) -> dict:
    """The trace (as GET /traces/{id}) of a tracing job, started once per distinct request, with a progress bar of
    what it records while it runs (a full-depth preset or an 8B-class config takes seconds). Changing a control
    meanwhile reruns the page, which stops waiting; the superseded job is cancelled."""
    bar = None
    while True:
        state = _poll("trace", body, start)
        if state["status"] == "done":
            if bar is not None:
                bar.empty()
            return state["result"]
        if state["status"] in ("failed", "cancelled"):
            st.session_state["jobs"].pop(_job_key("trace", body), None)  # try again next run
            raise RuntimeError(state["error"] or "the trace was cancelled")
        text = state["detail"] or f"{what}..."
        bar = bar or st.progress(0.0, text=text)
        bar.progress(state["progress"], text=text)
        time.sleep(0.25)


def _curve_body(base: dict, strategies: list[str], curve_ok: set[str]) -> dict:
    engine = [s for s in strategies if s in curve_ok and s not in ("ppo", "lower-bound")][:6]
    bound = ["lower-bound"] if "lower-bound" in strategies else []
    return {k: base[k] for k in ("scenario", "trace_id") if k in base} | {"strategies": engine + bound}


def _pending(base: dict, strategies: list[str], background: list[str], curve_ok: set[str]) -> bool:
    """Whether a background job of this request is still queued or running (starting the jobs if need be)."""
    states = [_poll("simulate", {**base, "strategies": background})] if background else []
    curve = _curve_body(base, strategies, curve_ok)
    if curve["strategies"]:
        states.append(_poll("curve", curve))
    return any(state["status"] in ("queued", "running") for state in states)


def _in_fragment_rerun() -> bool:
    """Whether this run redraws fragments only (their timer), not the whole page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and getattr(ctx, "fragment_ids_this_run", None))


def show_results(res: dict) -> None:
    """Cards, charts, timeline and heatmap of one /simulate answer."""
    metric_cards(res)
    bars, steps = st.columns(2)
    bars.plotly_chart(bar_chart(res), width="stretch", key="bars")
    step_fig = step_chart(res)
    if step_fig is not None:
        steps.plotly_chart(step_fig, width="stretch", key="steps")
    else:
        steps.info(res["step_time"]["unknown"] or "No strategy could be timed.")
    timed = [r for r in res["strategies"] if r.get("timeline")]
    if timed:
        names = [r["strategy"] for r in timed]  # the recommended policy first shown
        pick = st.selectbox("Strategy for the timeline and heatmap", names, key="timeline_strategy",
                            index=names.index(res["best"]) if res["best"] in names else 0)  # fmt: skip
        row = next(r for r in timed if r["strategy"] == pick)
        left, right = st.columns(2)
        left.plotly_chart(timeline_chart(row, res["kinds"], res["capacity_bytes"]), width="stretch", key="timeline")
        right.plotly_chart(heatmap_chart(row), width="stretch", key="heatmap")


def results(base: dict, strategies: list[str], background: list[str], curve_ok: set[str], res: dict, waited: float,
            polling: bool) -> None:  # fmt: skip
    """What the page shows for one request, filled in as the background jobs (the bound, the LP-based offline
    references, the capacity curve) finish: the heuristics' and learned agents' results come first; while a job
    runs this is a fragment redrawn once a second (``polling``), and once all are done the page reruns whole
    without the timer."""
    pending = []
    if background:
        state = _poll("simulate", {**base, "strategies": background})
        if state["status"] == "done":  # every run is cached now, so the full answer is immediate
            res = call("POST", "/simulate", json={**base, "strategies": strategies})
        elif state["status"] == "failed":
            st.error(f"{', '.join(background)}: {state['error']}")
        else:
            pending.append(", ".join(background))
    show_results(res)
    curve_body = _curve_body(base, strategies, curve_ok)
    if curve_body["strategies"]:
        curve = _poll("curve", curve_body)
        if curve["status"] == "done":
            st.plotly_chart(curve_chart(curve["result"], res["capacity_bytes"]), width="stretch", key="curve")
        elif curve["status"] == "failed":
            st.error(f"capacity curve: {curve['error']}")
        else:
            pending.append("the capacity curve")
    with st.expander("Trace statistics"):
        stats = call("GET", f"/traces/{res['trace_id']}/stats")
        shown = {k: fmt_bytes(v) if "bytes" in k and isinstance(v, (int, float)) else v
                 for k, v in stats.items() if not isinstance(v, list)}  # fmt: skip
        st.table({"statistic": list(shown), "value": [str(v) for v in shown.values()]})
    if pending:
        st.info(f"Computing {' and '.join(pending)} in the background; the page fills in when ready.", icon="⏳")
        return
    if polling and _in_fragment_rerun():  # everything is in: redraw the page once, without the timer
        st.rerun()
    body = {**base, "strategies": strategies}
    st.subheader("Export")
    table = call("POST", "/export/csv", json=body)  # reuses the runs above (one run per strategy and memory size)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Results (CSV)", table, "copilot.csv", "text/csv", key="dl_csv")
    c2.download_button("Results (JSON)", json.dumps(res, indent=2), "copilot.json", "application/json", key="dl_json")
    c3.download_button("Report (HTML)", call("POST", "/export/report", json=body), "copilot.html", "text/html", key="dl_html")
    st.code(res["command"], language="bash")
    st.caption(f"Answered in {waited:.2f} s as you waited, the trace included ({res['seconds'] * 1000:.0f} ms of it "
               "simulating in the API); "
               f"trace {res['trace_hash'][:12]}.")  # fmt: skip


def main() -> None:
    st.set_page_config(page_title="TensorCache Copilot", layout="wide")
    st.title("TensorCache Copilot")
    st.caption("Which eviction policy moves the fewest bytes between host and accelerator, for this model and this memory?")
    try:
        asked = time.perf_counter()  # what the user waits for: a trace being generated too, not only /simulate
        choice = sidebar()
        if choice is None:
            return
        strategies = choice["strategies"]
        if not strategies:
            st.warning("Choose at least one strategy.")
            return
        base = {k: choice[k] for k in ("memory", "link", "accelerator", "scenario", "trace_id") if k in choice}
        slow = {s["name"] for s in choice["catalogue"] if s["background"]}
        curve_ok = {s["name"] for s in choice["catalogue"] if s["curve"]}
        background = [s for s in strategies if s in slow]
        first = [s for s in strategies if s not in slow] or ["lru"]
        with st.spinner(f"Running {len(first)} strategies..."):
            res = call("POST", "/simulate", json={**base, "strategies": first})
        waited = time.perf_counter() - asked
        polling = _pending(base, strategies, background, curve_ok)
        view = st.fragment(results, run_every=1.0 if polling else None)
        view(base, strategies, background, curve_ok, res, waited, polling)
    except RuntimeError as exc:
        st.error(str(exc))


if __name__ == "__main__":  # Streamlit runs the page as __main__; a process that imports it does not run it
    main()
