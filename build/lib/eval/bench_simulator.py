"""``python -m eval.bench_simulator``: our compiled simulator vs libCacheSim's C loop on the same 1M-request
Zipf trace with variable sizes, in the same process. Checks the hit counts agree; prints medians and ratios.

``--whole-process N [N ...]`` instead times whole processes on an oracleGeneral file of N requests: the
``tensorcache-simulate`` CLI (read, prepare, LRU + FIFO + Belady) against a libcachesim script doing the same, each
started fresh ``--repeats`` times, alternating; prints median wall and CPU times (our CLI runs its policies in
``--jobs`` threads; libcachesim's script runs them one after another), peak resident memory (``wait4``) and the
ratios, with the machine's load average. ``--ids compact`` keeps the generated ids 0..objects-1; ``--ids sparse``
scatters them over 64 bits, as hashed keys are, which the reader must renumber through its hash table."""

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

    from envs.sim import prepare, simulate
    from envs.trace.formats import write_oracle_general

    ap = argparse.ArgumentParser(prog="python -m eval.bench_simulator")
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--whole-process", type=int, nargs="+", metavar="N", help="request counts for whole-process runs")
    ap.add_argument("--ids", nargs="+", choices=("compact", "sparse"), default=["compact", "sparse"],
                    help="whole-process object ids: 0..objects-1 as generated, or scattered over 64 bits")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=2, help="threads of our CLI in whole-process runs")
    args = ap.parse_args(argv)
    if args.whole_process:
        return whole_process(args.whole_process, args.objects, args.repeats, args.ids, args.jobs)
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


LIBCACHESIM_SCRIPT = """
import sys
import libcachesim as lcs
path, capacity, hashpower = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for cls in (lcs.LRU, lcs.FIFO, lcs.Belady):
    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
    miss_ratio, _ = cls(capacity, hashpower=hashpower).process_trace(reader)
    print(cls.__name__, miss_ratio)
"""


#: Runs its arguments as one child process and prints that child's peak resident set (KiB) and CPU seconds (user
#: + system, all its threads) as the last line.
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
sys.exit(code)
"""


def _timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, peak RSS in MiB, CPU seconds and stdout of one fresh process (measured by a wrapper whose only
    child it is, so no other process's peak can leak into the figure)."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS_WRAPPER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    peak_kib, cpu = last.split()
    return wall, int(peak_kib) / 1024, float(cpu), out


#: Odd multiplier that scatters compact ids over all 64 bits (a bijection mod 2**64): ``--ids sparse`` files look
#: like hashed keys, so the reader cannot index an array by them.
_SCATTER = np.uint64(0x9E3779B97F4A7C15)


def whole_process(sizes: list[int], objects: int, repeats: int, ids: list[str], jobs: int) -> int:
    import json
    import os
    import sys

    from envs.trace.formats import write_oracle_general
    from envs.trace.formats.oracle_general import RECORD

    print(f"load average at start: {os.getloadavg()[0]:.2f}; ours runs its 3 policies with --jobs {jobs}")
    head = (f"{'requests':>10} {'ids':>7} {'ours s':>7} {'lcs s':>7} {'speed-up':>8} {'ours CPU s':>10} {'lcs CPU s':>9} "
            f"{'ours MiB':>9} {'lcs MiB':>8} {'mem ratio':>9}")  # fmt: skip
    print(head + "  misses agree")
    for n in sizes:
        trace = zipf_trace(n, objects, 0.9, seed=0)
        path = Path(tempfile.mkdtemp()) / f"zipf-{n}.bin"
        write_oracle_general(trace, path)
        capacity = int(trace.tensor_sizes().sum() * 0.1)
        hashpower = max(int(np.ceil(np.log2(objects))) + 1, 16)
        del trace
        for id_kind in ids:
            if id_kind == "sparse":  # a scattered copy: the compact file stays as written, whatever the order
                records = np.fromfile(path.with_name(f"zipf-{n}.bin"), dtype=RECORD)
                records["id"] = (records["id"] + np.uint64(1)) * _SCATTER
                path = path.with_name(f"zipf-{n}-sparse.bin")
                records.tofile(path)
                del records
            else:
                path = path.with_name(f"zipf-{n}.bin")
            ours_cmd = [sys.executable, "-m", "envs.cli.simulate_cli", "--trace", str(path), "--policy", "lru", "fifo",
                        "belady", "--capacity", str(capacity), "--jobs", str(jobs), "--json"]  # fmt: skip
            lcs_cmd = [sys.executable, "-c", LIBCACHESIM_SCRIPT, str(path), str(capacity), str(hashpower)]
            ours, theirs = [], []
            for _ in range(repeats):
                ours.append(_timed(ours_cmd))
                theirs.append(_timed(lcs_cmd))
            rows = json.loads(ours[-1][3])
            lcs_miss = [float(line.split()[1]) for line in theirs[-1][3].splitlines()]
            agree = all(r["n_miss"] == round(m * r["n_req"]) for r, m in zip(rows, lcs_miss, strict=True))
            o_t, t_t, o_m, t_m, o_c, t_c = (statistics.median(x[k] for x in runs) for k in (0, 1, 2) for runs in (ours, theirs))
            print(f"{n:>10} {id_kind:>7} {o_t:>7.2f} {t_t:>7.2f} {t_t / o_t:>8.2f} {o_c:>10.2f} {t_c:>9.2f} {o_m:>9.0f} "
                  f"{t_m:>8.0f} {o_m / t_m:>9.2f}  {agree}")  # fmt: skip
        for leftover in path.parent.glob("zipf-*.bin"):
            leftover.unlink()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
