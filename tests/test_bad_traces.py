"""Bad trace input: odd columns and metadata, empty traces, and a fuzz test of every loader; each gets a
one-line error naming the problem (or is handled correctly), never a traceback from deep inside or a silent change."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from envs.sim import SimError, prepare
from envs.trace import COLUMNS, Trace, TraceError
from envs.trace.formats import read_trace, write_trace
from tests.conftest import make_classic_trace


def _arrays(n: int = 3, **over) -> dict:
    base = {
        "tensor_id": np.arange(n),
        "size": np.full(n, 8),
        "op": np.zeros(n),
        "kind": np.zeros(n),
        "layer": np.zeros(n),
        "phase": np.zeros(n),
        "op_index": np.arange(n),
        "iteration": np.zeros(n),
    }
    base.update(over)
    return base


TRACE_CASES = [
    ("op code 256 is not read as READ", _arrays(op=np.array([0, 256, 0])), r"column op values must be in \[0, 255\]"),
    ("op code 7 is not an op", _arrays(op=np.array([0, 7, 0])), "op codes must be in 0..2"),
    ("fractional sizes are not truncated", _arrays(size=np.array([8.0, 8.5, 8.0])), "column size must hold integers"),
    ("NaN sizes", _arrays(size=np.array([8.0, np.nan, 8.0])), "column size must hold integers"),
    ("giant integers", _arrays(size=np.array([8, 2**70, 8], dtype=object)), "not 64-bit integers"),
    ("negative ids", _arrays(tensor_id=np.array([0, -1, 2])), "non-negative"),
    ("strings", _arrays(size=np.array(["a", "b", "c"])), "column size must hold integers"),
]


@pytest.mark.parametrize(("case", "arrays", "message"), TRACE_CASES, ids=[c[0] for c in TRACE_CASES])
def test_bad_trace_columns(case: str, arrays: dict, message: str) -> None:
    with pytest.raises(TraceError, match=message) as exc:
        Trace.from_arrays(arrays, {})
    assert "\n" not in str(exc.value)


def test_metadata_must_be_an_object() -> None:
    with pytest.raises(TraceError, match="metadata must be a JSON object"):
        Trace.from_arrays(_arrays(), ["not", "a", "dict"])  # type: ignore[arg-type]


def test_memory_follows_distinct_tensors_not_the_largest_id(tmp_path: Path) -> None:
    """A two-line CSV naming tensor 30,000,000 (and one naming 1e18) loads as two tensors, instantly."""
    for big in (30_000_000, 10**18):
        path = tmp_path / "sparse.csv"
        path.write_text(",".join(COLUMNS) + f"\n{big},64,read,input,0,forward,0,0\n7,32,read,input,0,forward,1,0\n")
        t0 = time.perf_counter()
        trace = read_trace(path)
        assert trace.n_tensors == 2 and time.perf_counter() - t0 < 2.0
        assert trace.tensor_sizes().tolist() == [64, 32]


def test_empty_trace_is_refused_by_the_simulator() -> None:
    with pytest.raises(SimError, match="empty"):
        prepare(Trace.from_arrays(_arrays(0), {}))


def _fuzz_files(tmp_path: Path, seed: int) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(seed)
    good = make_classic_trace(rng.integers(0, 20, size=50), rng.integers(1, 100, size=20))
    files = []
    for fmt, suffix in (("npz", ".npz"), ("csv", ".csv"), ("oracleGeneral", ".bin")):
        src = write_trace(good, tmp_path / f"good{seed}{suffix}", fmt)
        data = src.read_bytes()
        for j, mutate in enumerate(("truncate", "flip", "random", "empty", "append")):
            path = tmp_path / f"bad{seed}_{j}{suffix}"
            if mutate == "truncate":
                path.write_bytes(data[: int(rng.integers(0, len(data)))])
            elif mutate == "flip":
                b = bytearray(data)
                for _ in range(int(rng.integers(1, 8))):
                    b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
                path.write_bytes(bytes(b))
            elif mutate == "random":
                path.write_bytes(rng.bytes(int(rng.integers(1, 600))))
            elif mutate == "empty":
                path.write_bytes(b"")
            else:
                path.write_bytes(data + rng.bytes(int(rng.integers(1, 40))))
            files.append((path, fmt))
    # npz archives with the right names but wrong contents
    cols = {c: good_col for c, good_col in ((c, getattr(good, c)) for c in COLUMNS)}
    variants = {
        "float-ids": {**cols, "tensor_id": cols["tensor_id"] + 0.5},
        "nan-size": {**cols, "size": np.where(np.arange(len(good)) == 3, np.nan, cols["size"].astype(float))},
        "huge-id": {**cols, "tensor_id": cols["tensor_id"] * 10**15},
        "short": {**cols, "size": cols["size"][:-1]},
        "2d": {**cols, "op": np.zeros((2, len(good)))},
    }
    for name, arrays in variants.items():
        path = tmp_path / f"npz{seed}_{name}.npz"
        np.savez(path, **arrays, meta=np.array(json.dumps({"workload": "x"})))
        files.append((path, "npz"))
    return files


def test_fuzzed_files_give_one_line_errors(tmp_path: Path) -> None:
    n_files = n_refused = 0
    for seed in range(15):
        for path, fmt in _fuzz_files(tmp_path, seed):
            n_files += 1
            try:
                trace = read_trace(path, fmt)
            except TraceError as exc:
                n_refused += 1
                assert "\n" not in str(exc) and str(exc)
                continue
            # a file that still parses is a valid trace (a flipped bit can land on an allowed value)
            assert len(trace) == trace.tensor_id.shape[0] and trace.n_tensors <= max(len(trace), 1)
    assert n_files >= 300 and n_refused > n_files // 2
