"""The Copilot's HTTP API: every endpoint, and bad input as a 4xx with a one-line reason."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from envs.trace.formats import write_trace
from tests.conftest import make_classic_trace

SMALL = {"workload": "transformer-train", "preset": "gpt2-small", "layers": 1, "iterations": 2, "method": "analytic"}


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(warm=False)) as c:
        yield c


def _one_line(resp) -> str:
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    return detail


def test_catalogue_endpoints(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    workloads = {w["name"]: w for w in client.get("/workloads").json()}
    assert "mistral-7b" in workloads["transformer-train"]["presets"]
    strategies = {s["name"]: s for s in client.get("/strategies").json()}
    assert {"lru", "belady", "lower-bound", "best-offline", "ppo", "llm"} <= set(strategies)
    assert strategies["llm"]["slow"] and strategies["lower-bound"]["kind"] == "bound"
    assert {x["name"] for x in client.get("/links").json()} == {"pcie4-x16", "pcie5-x16", "nvlink-c2c"}
    assert "/simulate" in client.get("/openapi.json").json()["paths"]
    # the docs work without internet: Swagger UI and ReDoc come from the package, not a CDN
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "/static-offline-docs/" in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static-offline-docs/redoc.standalone.js").status_code == 200


def test_trace_simulate_curve_stats_and_exports(client: TestClient) -> None:
    trace = client.post("/traces", json=SMALL).json()
    assert trace["n_accesses"] > 0 and trace["min_capacity_bytes"] <= trace["peak_live_bytes"]
    tid = trace["trace_id"]
    assert client.get(f"/traces/{tid}").json()["content_hash"] == trace["content_hash"]
    assert client.get(f"/traces/{tid}/stats").json()["n_requests"] > 0
    body = {"trace_id": tid, "memory": {"headroom": 0.3}, "strategies": ["lru", "mru", "belady", "best-offline", "lower-bound"],
            "points": 20}  # fmt: skip
    res = client.post("/simulate", json=body).json()
    rows = {r["strategy"]: r for r in res["strategies"]}
    assert rows["lru"]["score_vs_bound"] == 0.0 and rows["lower-bound"]["score_vs_bound"] == 1.0
    assert all(r["bytes_moved"] >= res["lower_bound_bytes"] for r in res["strategies"])
    assert rows["best-offline"]["bytes_moved"] <= rows["belady"]["bytes_moved"]
    assert res["best"] != "lower-bound" and len(rows["lru"]["timeline"]["position"]) == 20
    # the recommendation is deployable: an oracle that moves fewer bytes is named as the ceiling, never recommended
    assert rows[res["best"]]["kind"] in ("heuristic", "learned")
    assert res["best_offline"] is None or rows[res["best_offline"]]["kind"] == "offline"
    assert rows[res["best_offline"] or res["best"]]["bytes_moved"] <= rows[res["best"]]["bytes_moved"]
    assert "tensorcache-leaderboard score trace.npz --agents best-offline" in res["command"]
    assert sum(rows["lru"]["timeline"]["hits"]) + sum(rows["lru"]["timeline"]["misses"]) > 0
    assert "tensorcache-trace generate" in res["command"] and "tensorcache-simulate" in res["command"]
    gib = client.post("/simulate", json={**body, "memory": {"gib": res["capacity_bytes"] / 2**30}}).json()
    assert gib["capacity_bytes"] == pytest.approx(res["capacity_bytes"], abs=1)
    curve = client.post("/capacity-curve", json={"trace_id": tid, "strategies": ["lru", "belady", "lower-bound"], "points": 4})
    curve = curve.json()
    assert len(curve["capacity_bytes"]) == 4
    for a, b in zip(curve["moved_per_requested_byte"]["lower-bound"], curve["moved_per_requested_byte"]["belady"], strict=True):
        assert a <= b + 1e-12
    csv_text = client.post("/export/csv", json=body).text
    assert csv_text.splitlines()[0].startswith("trace_hash,capacity_bytes,strategy")
    html = client.post("/export/report", json=body).text
    assert "<svg" in html and "tensorcache-simulate" in html
    assert 'src="http' not in html and 'href="http' not in html  # self-contained: nothing loaded from elsewhere


def test_upload_and_jobs(client: TestClient, tmp_path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    path = write_trace(make_classic_trace(rng.integers(0, 30, 400), rng.integers(1, 50, 30)), tmp_path / "t.bin")
    up = client.post("/traces/upload", files={"file": ("t.bin", path.read_bytes())}).json()
    assert up["mode"] == "classic" and up["n_accesses"] == 400
    res = client.post("/simulate", json={"trace_id": up["trace_id"], "memory": {"bytes": 400}, "strategies": ["lru", "sieve"]})
    assert res.status_code == 200
    job = client.post("/jobs", json={"scenario": SMALL, "memory": {"headroom": 0.5}, "strategies": ["lru", "llm"]})
    assert job.status_code == 202
    jid = job.json()["id"]
    deadline = time.time() + 300
    while (state := client.get(f"/jobs/{jid}").json())["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert state["status"] == "done", state
    assert {r["strategy"] for r in state["result"]["strategies"]} == {"lru", "llm"}


BAD = [
    ("POST", "/simulate", {"scenario": {"layers": 999}}, 422, "layers"),
    ("POST", "/simulate", {"scenario": {"workload": "rnn"}}, 422, "workload"),
    ("POST", "/simulate", {"scenario": {"preset": "llama-9000"}}, 400, "unknown preset"),
    ("POST", "/simulate", {"scenario": SMALL, "memory": {"gib": 0.0001}}, 400, "cannot hold op"),
    ("POST", "/simulate", {"scenario": SMALL, "memory": {"gib": -1}}, 422, "memory.gib"),
    ("POST", "/simulate", {"scenario": SMALL, "memory": {"gib": 1, "headroom": 0.5}}, 422, "exactly one"),
    ("POST", "/simulate", {"scenario": SMALL, "strategies": ["oracle9000"]}, 400, "unknown strategy"),
    ("POST", "/simulate", {"scenario": SMALL, "strategies": ["llm"]}, 400, "as a job"),
    ("POST", "/simulate", {"scenario": SMALL, "strategies": []}, 422, "strategies"),
    ("POST", "/simulate", {"scenario": SMALL, "trace_id": "x"}, 422, "exactly one of trace_id"),
    ("POST", "/simulate", {"trace_id": "nope"}, 404, "unknown trace"),
    ("GET", "/traces/nope/stats", None, 404, "unknown trace"),
    ("GET", "/jobs/nope", None, 404, "unknown job"),
    ("POST", "/jobs/trace", {"preset": "llama-9000"}, 400, "unknown preset"),
    ("POST", "/jobs/trace", {"layers": 0}, 422, "layers"),
    ("POST", "/jobs/hf-config", None, 422, "exactly one of a config.json file or an example"),
    ("POST", "/capacity-curve", {"scenario": SMALL, "points": 1000}, 422, "points"),
    # out-of-range numbers are a 4xx, never a 500 (1e300 GiB overflowed an int)
    ("POST", "/simulate", {"scenario": SMALL, "memory": {"gib": 1e300}}, 422, "memory.gib"),
    ("POST", "/simulate", {"scenario": SMALL, "memory": {"bytes": 2**70}}, 422, "memory.bytes"),
    # slow strategies never run inside a capacity curve: one run per point
    ("POST", "/capacity-curve", {"scenario": SMALL, "strategies": ["llm"], "points": 24}, 400, "too slow"),
    ("POST", "/capacity-curve", {"scenario": SMALL, "strategies": ["lp-guided"], "points": 4}, 400, "too slow"),
    ("POST", "/capacity-curve", {"scenario": SMALL, "strategies": ["lower-bound"], "points": 24}, 400, "at most 8"),
    # inside the validation limits but far past the access limit: refused from an estimate, in seconds, not minutes
    (
        "POST",
        "/traces",
        {"workload": "transformer-train", "preset": "mistral-7b", "layers": 128, "iterations": 64},
        400,
        "would record about",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD, ids=[f"{b[1]}-{b[4]}" for b in BAD])
def test_bad_requests_get_a_4xx_and_one_line(client: TestClient, method, path, body, status, message) -> None:
    resp = client.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert message in _one_line(resp)


def test_bad_uploads(client: TestClient) -> None:
    resp = client.post("/traces/upload", files={"file": ("t.exe", b"MZ")})
    assert resp.status_code == 400 and "unknown trace file type" in _one_line(resp)
    resp = client.post("/traces/upload", files={"file": ("t.npz", b"not a zip")})
    assert resp.status_code == 400 and "not a readable .npz" in _one_line(resp)
    resp = client.post("/traces/upload", files={"file": ("t.csv", b"a,b\n1,2\n")})
    assert resp.status_code == 400 and "header" in _one_line(resp)
    resp = client.post("/traces/upload", files={"file": ("big.bin", b"\0" * (64 * 2**20 + 24))})
    assert resp.status_code == 400 and "limit" in _one_line(resp)


def test_hostile_uploads_are_refused_before_they_cost_memory(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import zipfile

    import numpy as np

    # a zip bomb: a small .npz whose member decompresses to 1 GiB; refused from the archive's directory
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("tensor_id.npy", "w", force_zip64=True) as fh:
        for _ in range(1024):
            fh.write(b"\0" * 2**20)
    assert len(buf.getvalue()) < 2 * 2**20
    resp = client.post("/traces/upload", files={"file": ("bomb.npz", buf.getvalue())})
    assert resp.status_code == 400 and "decompresses to" in _one_line(resp)
    # random bytes are not an oracleGeneral trace (its requests are in time order)
    noise = np.random.default_rng(0).integers(0, 256, 24 * 1000, dtype=np.uint8).tobytes()
    resp = client.post("/traces/upload", files={"file": ("noise.bin", noise)})
    assert resp.status_code == 400 and "timestamps go backwards" in _one_line(resp)
    # a CSV with more rows than the server takes stops being read at the limit
    from app import service

    header = "tensor_id,size,op,kind,layer,phase,op_index,iteration\n"
    rows = "".join(f"{i},8,read,input,0,forward,{i},0\n" for i in range(50))
    monkeypatch.setattr(service, "MAX_ACCESSES", 40)
    resp = client.post("/traces/upload", files={"file": ("long.csv", (header + rows).encode())})
    assert resp.status_code == 400 and "more than 40 accesses" in _one_line(resp)


def test_the_job_queue_is_bounded_and_ids_stay_valid() -> None:
    import threading

    from app.service import MAX_PENDING_JOBS, Copilot

    copilot = Copilot()
    gate = threading.Event()
    real = copilot.simulate
    copilot.simulate = lambda *a, **k: (gate.wait(60), real(*a, **k))[1]  # type: ignore[method-assign]
    with TestClient(create_app(copilot, warm=False)) as c:
        body = {"scenario": SMALL, "memory": {"headroom": 0.5}, "strategies": ["lru"]}
        ids = [c.post("/jobs", json=body).json()["id"] for _ in range(MAX_PENDING_JOBS)]
        busy = c.post("/jobs", json=body)
        assert busy.status_code == 429 and busy.headers["Retry-After"] and "retry later" in _one_line(busy)
        gate.set()
        deadline = time.time() + 120
        while any(c.get(f"/jobs/{j}").json()["status"] in ("queued", "running") for j in ids) and time.time() < deadline:
            time.sleep(0.2)
        assert all(c.get(f"/jobs/{j}").json()["status"] == "done" for j in ids)  # every id still answers
        assert c.post("/jobs", json=body).status_code == 202
        # a cancelled job frees its place in the queue: a queued one never starts
        gate.clear()
        ids = [c.post("/jobs", json=body).json()["id"] for _ in range(MAX_PENDING_JOBS - 1)]
        assert c.delete(f"/jobs/{ids[-1]}").json()["status"] == "cancelled"
        assert c.post("/jobs", json=body).status_code == 202
        gate.set()
        assert c.delete("/jobs/nope").status_code == 404


def test_the_page_s_background_work_runs_as_jobs() -> None:
    """The LP-based strategies and the capacity curve are background jobs the page polls; the rest answers at once."""
    with TestClient(create_app(warm=False)) as c:
        marked = {s["name"]: s["background"] for s in c.get("/strategies").json()}
        assert marked["lower-bound"] and marked["best-offline"] and marked["lp-guided"]
        assert not marked["lru"] and not marked["schedule"] and not marked["belady"]
        curve = c.post("/jobs/curve", json={"scenario": SMALL, "strategies": ["lru", "lower-bound"], "points": 3})
        assert curve.status_code == 202
        deadline = time.time() + 120
        while (state := c.get(f"/jobs/{curve.json()['id']}").json())["status"] != "done" and time.time() < deadline:
            time.sleep(0.2)
        moved = state["result"]["moved_per_requested_byte"]
        assert state["kind"] == "curve" and len(moved["lru"]) == 3
        assert all(b <= m for b, m in zip(moved["lower-bound"], moved["lru"], strict=True))


def test_work_stops_when_cancelled_over_budget_or_the_server_stops() -> None:
    from app.service import Budget, CancelledError, Copilot, CopilotError, Memory, Scenario

    copilot = Copilot()
    key = copilot.add_scenario(Scenario(**{k: v for k, v in SMALL.items()}))
    gone = Budget()
    gone.cancel.set()
    with pytest.raises(CancelledError, match="client went away"):
        copilot.capacity_curve(key, ["lru", "fifo"], points=4, budget=gone)
    with pytest.raises(CopilotError, match="budget"):
        copilot.simulate(key, Memory(headroom=0.3), ["lru", "fifo"], budget=Budget(seconds=0.0))
    # generation checks too: a cancelled request stops within a few hundred ops, long before the trace is done
    t0 = time.perf_counter()
    with pytest.raises(CancelledError):
        copilot.add_scenario(Scenario(preset="mistral-7b", layers=32, iterations=4), gone)
    assert time.perf_counter() - t0 < 5
    # the server stopping ends every request at its next check
    budget = copilot.budget()
    copilot.close()
    with pytest.raises(CancelledError, match="server is stopping"):
        copilot.simulate(key, Memory(headroom=0.3), ["lru"], budget=budget)


def test_your_own_model_from_a_config_json(client: TestClient) -> None:
    """A Hugging Face config.json becomes a trace (no weights), then simulates like any other."""
    import json

    config = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 1024}  # fmt: skip
    data = json.dumps(config).encode()
    info = client.post("/traces/hf-config", files={"file": ("config.json", data)}, params={"seq": 32, "layers": 2}).json()
    assert info["source"] == "hf-config" and info["layers"] == 2 and info["n_accesses"] > 0
    assert "--hf-config config.json" in info["command"]
    res = client.post("/simulate", json={"trace_id": info["trace_id"], "strategies": ["lru", "schedule"]}).json()
    assert res["step_time"]["lru_step_s"] > 0  # traced FLOPs: the step time is known
    # the plain upload takes it too (training, seq 512)
    assert client.post("/traces/upload", files={"file": ("config.json", data)}).json()["task"] == "train"
    bad = client.post("/traces/hf-config", files={"file": ("config.json", b'{"model_type": "nope"}')})
    assert bad.status_code == 400 and "\n" not in _one_line(bad)
    # the bundled examples, written from public model cards, by name
    examples = {m["name"]: m for m in client.get("/model-configs").json()}
    assert {"llama-3-8b", "pythia-1.4b", "gemma-2b", "qwen2-0.5b"} <= set(examples)
    assert examples["llama-3-8b"]["blocks"] == 32 and examples["pythia-1.4b"]["model_type"] == "gpt_neox"
    info = client.post("/traces/hf-config", params={"example": "gemma-2b", "seq": 32, "layers": 1}).json()
    assert info["n_accesses"] > 0 and "--hf-config gemma-2b" in info["command"]
    assert client.post("/traces/hf-config", params={"example": "gpt-9"}).status_code == 404
    assert client.post("/traces/hf-config").status_code == 422


def test_one_run_per_strategy_and_memory_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's export after its /simulate reuses the runs, whatever the number of timeline points."""
    import envs.gym.timeline as timeline
    import envs.sim.simulator as simulator
    from app.service import Copilot, Memory, Scenario

    copilot = Copilot()
    key = copilot.add_scenario(Scenario(**SMALL))
    runs: list[str] = []
    record, simulate = timeline.record, simulator.simulate
    monkeypatch.setattr(
        timeline, "record", lambda p, c, policy=None, *a, **k: runs.append(policy) or record(p, c, policy, *a, **k)
    )
    monkeypatch.setattr(simulator, "simulate", lambda p, policy, *a, **k: runs.append(policy) or simulate(p, policy, *a, **k))
    first = copilot.simulate(key, Memory(headroom=0.3), ["lru", "fifo", "sieve"], points=100)
    assert sorted(runs) == ["fifo", "lru", "sieve"]
    export = copilot.simulate(key, Memory(headroom=0.3), ["lru", "fifo", "sieve"], points=0)
    assert len(runs) == 3  # nothing ran again
    assert [r["bytes_moved"] for r in export["strategies"]] == [r["bytes_moved"] for r in first["strategies"]]
    assert all("timeline" not in r for r in export["strategies"])
    copilot.simulate(key, Memory(headroom=0.4), ["lru"], points=0)
    assert runs[-1] == "lru" and len(runs) == 4  # a new size runs, without a timeline


def _progress_of(c: TestClient, job_id: str) -> tuple[dict, list[tuple[float, str]]]:
    """Polls a job to its end; returns its final state and every (progress, detail) seen on the way."""
    seen, deadline = [], time.time() + 240
    while (state := c.get(f"/jobs/{job_id}").json())["status"] in ("queued", "running") and time.time() < deadline:
        seen.append((state["progress"], state["detail"]))
        time.sleep(0.05)
    return state, seen


def test_traces_are_generated_as_jobs_with_progress() -> None:
    """A full-depth preset and an 8B-class config are traced in the background; the job tells what it records and
    how far it is (accesses so far of the expected, never backwards), and ends with the trace. A cached trace is a
    finished job at once; a cancelled one stops."""
    with TestClient(create_app(warm=False)) as c:
        scenario = {"workload": "transformer-train", "preset": "mistral-7b", "layers": 32, "iterations": 2}
        state, seen = _progress_of(c, c.post("/jobs/trace", json=scenario).json()["id"])
        assert state["status"] == "done" and state["progress"] == 1.0 and state["kind"] == "trace"
        assert state["result"]["n_accesses"] == c.post("/traces", json=scenario).json()["n_accesses"]
        fractions = [p for p, d in seen if "accesses" in d]
        assert fractions and any(0 < p < 1 for p in fractions) and fractions == sorted(fractions)
        assert any(d.startswith("Generating mistral-7b, 32 layers, 2 steps:") and "of about" in d for _, d in seen)
        again = c.get(f"/jobs/{c.post('/jobs/trace', json=scenario).json()['id']}").json()
        assert again["status"] == "done" and again["result"]["trace_id"] == state["result"]["trace_id"]
        # your own model: what is traced, in words, then how far
        job = c.post("/jobs/hf-config", params={"example": "llama-3-8b", "task": "infer", "seq": 128, "layers": 6})
        state, seen = _progress_of(c, job.json()["id"])
        assert state["status"] == "done", state
        details = " | ".join(d for _, d in seen)
        assert "llama-3-8b: serving (8 decode steps), sequence 128, bfloat16, 6 blocks" in details
        final = [p for p, d in seen if "of about" in d]
        assert final and max(final) <= 0.99
        expected = int(re.findall(r"of about ([0-9,]+)", details)[-1].replace(",", ""))
        assert expected == state["result"]["n_accesses"]  # the per-block count is exact for a decoder stack
        gone = c.post("/jobs/trace", json={**scenario, "layers": 48, "iterations": 3}).json()["id"]
        c.delete(f"/jobs/{gone}")
        assert _progress_of(c, gone)[0]["status"] == "cancelled"
        # what cannot be traced fails as a job with a one-line reason, or is refused before a job is queued
        huge = c.post("/jobs/trace", json={**scenario, "layers": 128, "iterations": 64}).json()["id"]
        failed = _progress_of(c, huge)[0]
        assert failed["status"] == "failed" and "would record about" in failed["error"] and "\n" not in failed["error"]
        big = c.post("/jobs/hf-config", files={"file": ("config.json", b" " * (2 << 20))})
        assert big.status_code == 400 and "limit" in _one_line(big)
