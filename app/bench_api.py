"""``python -m app.bench_api``: latency of a warm ``/simulate`` (p50 / p95), through the real app in-process.

The default scenario is a 48-layer Mistral-7B-dimension training trace (2 steps), 100 timeline points. Cases, all
after start-up (kernels compiled, trace cached):

- ``repeat``: LRU, FIFO, next-use and Belady, the same request again (answered from the result cache);
- ``new capacity``: the same four, every request at a different memory size, so every strategy really runs;
- ``legal heuristics``: every legal heuristic together (lru, fifo, mru, lfu, random, sieve, next-use, schedule),
  each request at a new memory size;
- ``bc`` and ``ppo``: each learned agent alone at a new memory size (compiled forward, agents.compiled_net);
- ``config to first results``: a bundled 8B-class config (llama-3-8b, all 32 blocks, a training step at sequence
  512) traced as the page does it (a background job with progress, polled) and simulated with the legal heuristics:
  seconds, once.

Prints medians and 95th percentiles in milliseconds, with the machine's load average.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import tyro


@dataclass(frozen=True)
class BenchConfig:
    """Latency of /simulate."""

    layers: int = 48
    """Layers of the Mistral-7B-dimension training trace."""
    repeats: int = 30
    """Requests per case."""
    points: int = 100
    """Timeline points per strategy."""
    agent_repeats: int = 10
    """Requests per learned agent (bc, ppo)."""
    config_example: str = "llama-3-8b"
    """Bundled config timed from upload to first results ('' to skip)."""


#: Every legal heuristic of the Copilot, answered together.
LEGAL_HEURISTICS = ["lru", "fifo", "mru", "lfu", "random", "sieve", "next-use", "schedule"]


def run(cfg: BenchConfig) -> dict:
    from fastapi.testclient import TestClient

    from app.api import create_app

    scenario = {"workload": "transformer-train", "preset": "mistral-7b", "layers": cfg.layers, "iterations": 2}
    four = ["lru", "fifo", "next-use", "belady"]
    cases = {"repeat": (four, cfg.repeats), "new capacity": (four, cfg.repeats),
             "legal heuristics": (LEGAL_HEURISTICS, cfg.repeats), "bc": (["bc"], cfg.agent_repeats),
             "ppo": (["ppo"], cfg.agent_repeats)}  # fmt: skip
    out = {}
    with TestClient(create_app()) as client:
        t0 = time.perf_counter()
        info = client.post("/traces", json=scenario).json()
        out["trace_seconds"] = time.perf_counter() - t0
        out["n_accesses"] = info["n_accesses"]
        for case, (strategies, repeats) in cases.items():
            body = {"trace_id": info["trace_id"], "memory": {"headroom": 0.3}, "strategies": strategies, "points": cfg.points}
            client.post("/simulate", json=body)  # warm: the agents load, the kernels compile
            times = []
            for i in range(repeats):
                if case != "repeat":  # a memory size no request of this run asked before
                    body = {**body, "memory": {"headroom": round(0.05 + 0.9 * (i + 0.5) / repeats + 0.001 * len(case), 6)}}
                t = time.perf_counter()
                resp = client.post("/simulate", json=body)
                times.append(time.perf_counter() - t)
                assert resp.status_code == 200, resp.text
            ms = np.asarray(times) * 1000
            out[case] = {"p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}
        if cfg.config_example:
            t = time.perf_counter()  # as the page does it: a tracing job with progress, polled, then /simulate
            params = {"example": cfg.config_example, "task": "train", "seq": 512}
            job = client.post("/jobs/hf-config", params=params).json()["id"]
            while (state := client.get(f"/jobs/{job}").json())["status"] in ("queued", "running"):
                time.sleep(0.25)
            assert state["status"] == "done", state
            body = {"trace_id": state["result"]["trace_id"], "memory": {"headroom": 0.3}, "strategies": LEGAL_HEURISTICS}
            assert client.post("/simulate", json=body).status_code == 200
            out["config to first results"] = {"seconds": time.perf_counter() - t, "n_accesses": state["result"]["n_accesses"]}
    out["load_average"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(BenchConfig, prog="python -m app.bench_api", args=argv)
    res = run(cfg)
    print(f"48-layer-class trace: {res['n_accesses']} accesses, generated in {res['trace_seconds']:.1f} s" if cfg.layers == 48
          else f"trace: {res['n_accesses']} accesses, generated in {res['trace_seconds']:.1f} s")  # fmt: skip
    for case in ("repeat", "new capacity", "legal heuristics", "bc", "ppo"):
        print(f"/simulate {case:>16}: p50 {res[case]['p50_ms']:7.1f} ms   p95 {res[case]['p95_ms']:7.1f} ms")
    if "config to first results" in res:
        c = res["config to first results"]
        print(f"{cfg.config_example} config to first results: {c['seconds']:.1f} s ({c['n_accesses']:,} accesses)")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in res["load_average"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
