"""Trace-generation benchmark: ``python -m eval.bench_traces [--repeats N] [--json]``.

Times the generators of issue 2's target (48-layer Mistral-7B-dimension training, 2 iterations) captured on the
meta device and computed analytically, plus one trace of every other family, and (``--hf``) a 32-layer
8B-parameter-class Hugging Face config traced from its config.json; prints the median of ``--repeats`` runs (the
first run, which pays torch's warm-up, is reported separately).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

CASES = (
    ("transformer-train", "mistral-7b", 48, 2, "captured"),
    ("transformer-train", "mistral-7b", 48, 2, "analytic"),
    ("transformer-infer", "mistral-7b", 32, 6, "captured"),
    ("cnn-train", "resnet50", None, 2, "captured"),
    ("moe-infer", "mixtral-8x7b", 32, 6, "captured"),
)


def time_case(workload: str, preset: str, layers: int | None, iterations: int, method: str, repeats: int) -> dict:
    from envs.workloads import generate_trace

    times, n = [], 0
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        trace = generate_trace(workload, preset, layers=layers, iterations=iterations, seed=r, method=method)
        times.append(time.perf_counter() - t0)
        n = len(trace)
    return {
        "workload": workload,
        "preset": preset,
        "layers": layers,
        "iterations": iterations,
        "method": method,
        "accesses": n,
        "first_s": times[0],
        "median_s": statistics.median(times[1:]),
        "runs_s": times[1:],
    }


#: Llama-3-8B's dimensions (an 8B-parameter-class config with grouped-query attention), 32 layers.
HF_8B = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
         "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192}  # fmt: skip


def time_hf(task: str, repeats: int) -> dict:
    """Times tracing the 8B-class config (one training step at sequence 512, or a 512-token prefill + 8 decode
    steps) from its config.json, model construction included."""
    import tempfile
    from pathlib import Path

    from envs.capture.hf import capture_hf

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(HF_8B))
        times, n, weights = [], 0, 0
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            trace = capture_hf(d, task=task, seq=512, decode_steps=8)
            times.append(time.perf_counter() - t0)
            n, weights = len(trace), trace.bytes_by_kind()["weight"]
    return {"workload": f"hf-llama-8b-{task}", "preset": "config.json", "layers": 32, "iterations": 1, "method": "fake",
            "accesses": n, "weight_bytes": weights, "first_s": times[0], "median_s": statistics.median(times[1:]),
            "runs_s": times[1:]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.bench_traces", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case after one warm-up run")
    p.add_argument("--quick", action="store_true", help="only the 48-layer Mistral training cases")
    p.add_argument("--hf", action="store_true", help="also the 32-layer 8B-class Hugging Face config (train and infer)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    cases = CASES[:2] if args.quick else CASES
    rows = [time_case(*c, args.repeats) for c in cases]
    if args.hf:
        rows += [time_hf(task, args.repeats) for task in ("train", "infer")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'workload':<18} {'preset':<13} {'L':>3} {'it':>3} {'method':<9} {'accesses':>9} {'first':>8} {'median':>8}"
    print(head + f" {'us/access':>9}")
    for r in rows:
        per_access = r["median_s"] * 1e6 / max(r["accesses"], 1)
        print(
            f"{r['workload']:<18} {r['preset']:<13} {r['layers'] or '-':>3} {r['iterations']:>3} {r['method']:<9} "
            f"{r['accesses']:>9} {r['first_s'] * 1e3:>6.0f}ms {r['median_s'] * 1e3:>6.0f}ms {per_access:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
