"""``python -m eval.bench_simulator``: our compiled simulator vs libCacheSim's C loop on the same 1M-request
Zipf trace with variable sizes, in the same process. Checks the hit counts agree; prints medians and ratios."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from envs.trace import Trace, classic_trace


def zipf_trace(n: int, n_obj: int, alpha: float, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_obj + 1) ** alpha
    ids = rng.choice(n_obj, size=n, p=p / p.sum())
    sizes = rng.integers(1_000, 1_000_000, size=n_obj)
    return classic_trace(ids, sizes[ids], {"workload": "zipf"})


def main(argv: list[str] | None = None) -> int:
    import libcachesim as lcs

    from envs.formats import write_oracle_general
    from envs.sim import prepare, simulate

    ap = argparse.ArgumentParser(prog="python -m eval.bench_simulator")
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    trace = zipf_trace(args.requests, args.objects, 0.9, seed=0)
    path = Path(tempfile.mkdtemp()) / "zipf.bin"
    write_oracle_general(trace, path)
    prepared = prepare(trace, "classic")
    capacity = int(trace.tensor_sizes().sum() * 0.1)
    hashpower = max(int(np.ceil(np.log2(args.objects))) + 1, 16)
    for name in ("lru", "fifo", "belady", "s3fifo", "sieve"):
        t0 = time.perf_counter()
        simulate(prepared, name, capacity)
        print(f"first call of {name} (numba compile or on-disk cache load): {time.perf_counter() - t0:.2f}s")
    print(f"{'policy':<8} {'ours Mreq/s':>12} {'libCacheSim Mreq/s':>19} {'ratio':>6}  hits agree")
    for name, cls in (("lru", "LRU"), ("fifo", "FIFO"), ("belady", "Belady"), ("s3fifo", "S3FIFO"), ("sieve", "Sieve")):
        ours, theirs = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = simulate(prepared, name, capacity)
            ours.append(time.perf_counter() - t0)
            reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
            cache = getattr(lcs, cls)(capacity, hashpower=hashpower)
            t0 = time.perf_counter()
            miss_ratio, _ = cache.process_trace(reader)
            theirs.append(time.perf_counter() - t0)
        agree = r.n_miss == round(miss_ratio * r.n_req)
        a, b = args.requests / statistics.median(ours) / 1e6, args.requests / statistics.median(theirs) / 1e6
        print(f"{name:<8} {a:>12.1f} {b:>19.1f} {a / b:>6.2f}  {agree}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
