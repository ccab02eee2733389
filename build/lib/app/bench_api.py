"""``python -m app.bench_api``: latency of a warm ``/simulate`` (p50 / p95), through the real app in-process.

The default scenario is a 48-layer Mistral-7B-dimension training trace (2 steps) with LRU, FIFO, next-use and
Belady, headroom 0.3, 100 timeline points. Two cases, both after start-up (kernels compiled, trace cached):

- ``repeat``: the same request again (answered from the result cache);
- ``new capacity``: every request at a different memory size, so every strategy really runs.

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


def run(cfg: BenchConfig) -> dict:
    from fastapi.testclient import TestClient

    from app.api import create_app

    scenario = {"workload": "transformer-train", "preset": "mistral-7b", "layers": cfg.layers, "iterations": 2}
    strategies = ["lru", "fifo", "next-use", "belady"]
    out = {}
    with TestClient(create_app()) as client:
        t0 = time.perf_counter()
        info = client.post("/traces", json=scenario).json()
        out["trace_seconds"] = time.perf_counter() - t0
        out["n_accesses"] = info["n_accesses"]
        body = {"trace_id": info["trace_id"], "memory": {"headroom": 0.3}, "strategies": strategies, "points": cfg.points}
        client.post("/simulate", json=body)
        for case in ("repeat", "new capacity"):
            times = []
            for i in range(cfg.repeats):
                if case == "new capacity":
                    body = {**body, "memory": {"headroom": 0.05 + 0.9 * i / cfg.repeats}}
                t = time.perf_counter()
                resp = client.post("/simulate", json=body)
                times.append(time.perf_counter() - t)
                assert resp.status_code == 200, resp.text
            ms = np.asarray(times) * 1000
            out[case] = {"p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}
    out["load_average"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(BenchConfig, prog="python -m app.bench_api", args=argv)
    res = run(cfg)
    print(f"48-layer-class trace: {res['n_accesses']} accesses, generated in {res['trace_seconds']:.1f} s" if cfg.layers == 48
          else f"trace: {res['n_accesses']} accesses, generated in {res['trace_seconds']:.1f} s")  # fmt: skip
    for case in ("repeat", "new capacity"):
        print(f"/simulate {case:>12}: p50 {res[case]['p50_ms']:7.1f} ms   p95 {res[case]['p95_ms']:7.1f} ms")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in res["load_average"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
