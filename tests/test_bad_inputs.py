"""Hostile and careless input: every case gets a one-line error naming the problem (or is handled correctly),
never a traceback from deep inside, a silent change or unbounded memory. Table-driven, plus a loader fuzz test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from envs.formats import read_trace, write_trace
from envs.sim import Headroom, SimError, parse_capacity, prepare, resolve_capacity
from envs.trace import COLUMNS, Trace, TraceError
from tests.conftest import make_classic_trace

ROOT = Path(__file__).resolve().parent.parent


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


# ----------------------------------------------------------------------------------------- 8: odd values
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


CAPACITY_CASES = [
    ("zero", 0, "positive"),
    ("negative", -5, "positive"),
    ("above 2**62", 2**63 + 10, "2\\*\\*62"),
    ("huge string", "1e30GiB", "2\\*\\*62"),
    ("a bool", True, "byte count"),
    ("garbage", "12 parsecs", "does not parse"),
    ("a list", [1], "byte count"),
]


@pytest.mark.parametrize(("case", "value", "message"), CAPACITY_CASES, ids=[c[0] for c in CAPACITY_CASES])
def test_bad_capacities(case: str, value: object, message: str) -> None:
    with pytest.raises(SimError, match=message):
        parse_capacity(value)  # type: ignore[arg-type]


def test_capacity_specs_resolve_in_one_place(small_train_trace: Trace) -> None:
    prepared = prepare(small_train_trace)
    assert resolve_capacity(np.float32(0.9), prepared) == int(float(np.float32(0.9)) * prepared.peak_live_bytes)
    assert resolve_capacity(Headroom(0.0), prepared) == prepared.op_bytes_max
    for bad, message in ((1.5, r"\(0, 1\]"), (float("nan"), r"\(0, 1\]"), (100, "cannot hold op")):
        with pytest.raises(SimError, match=message):
            resolve_capacity(bad, prepared)
    with pytest.raises(SimError, match=r"\[0, 1\]"):
        Headroom(2.0)


def test_empty_trace_is_refused_by_the_simulator() -> None:
    with pytest.raises(SimError, match="empty"):
        prepare(Trace.from_arrays(_arrays(0), {}))


def test_observations_stay_inside_their_declared_box() -> None:
    """A 2 TiB tensor read 70,000 times still gives an observation inside Box(-1, 1)."""
    from envs.episode import Episode

    n = 70_000
    ids = np.where(np.arange(n) % 2 == 0, 0, 1 + (np.arange(n) // 2) % 3)
    sizes = np.array([2**41, 2**40, 2**40, 2**40])
    trace = make_classic_trace(ids, sizes)
    episode = Episode(prepare(trace, "classic"), 2**41 + 2**40, k=4)
    seen = 0
    while not episode.advance() and seen < 50:
        obs = episode.view.observation()
        assert obs.min() >= -1.0 and obs.max() <= 1.0
        episode.evict(0)
        seen += 1
    assert seen > 0


def test_generator_refuses_decoding_past_gpt2_positions() -> None:
    from envs.workloads import WorkloadError, generate_trace

    with pytest.raises(WorkloadError, match="learned positions"):
        generate_trace("transformer-infer", "gpt2-small", layers=1, iterations=1000, seed=0)


def test_training_options_out_of_range_are_refused() -> None:
    from training.train_ppo import PPOConfig, check_config

    for field, value, message in (("n_envs", 0, "--n-envs"), ("total_timesteps", -5, "--total-timesteps"),
                                  ("max_instances", -1, "--max-instances")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            check_config(PPOConfig(**{field: value}))


def test_nan_weights_in_an_export_are_refused(tmp_path: Path) -> None:
    import torch

    from agents.candidate_net import CandidateNet, NetConfig
    from agents.ppo import PPOPolicy, export_policy

    net = CandidateNet(NetConfig(k=4, hidden=8))
    with torch.no_grad():
        next(iter(net.parameters())).fill_(float("nan"))
    export_policy(net, "lru", tmp_path)
    with pytest.raises(ValueError, match="NaN or infinite"):
        PPOPolicy.load(tmp_path)


# ----------------------------------------------------------------------------------------- 3, 7, 9: files
def test_a_truncated_or_swapped_cached_trace_is_regenerated() -> None:
    from envs.benchmarks import Family, Suite

    family = Family("g", "transformer-train", "gpt2-small", layers=1, iterations=1, method="analytic")
    suite = Suite("cache-check", "0", (family,), (0.5,), {"test": (3, 4)})
    a, b = suite.instances("test")
    good = a.trace().content_hash
    data = a.path.read_bytes()
    a.path.write_bytes(data[: len(data) // 2])  # truncated (a full disk, a killed writer)
    assert suite.instances("test")[0].trace().content_hash == good
    b.trace()
    a.path.write_bytes(b.path.read_bytes())  # another seed's valid trace swapped in
    assert suite.instances("test")[0].trace().content_hash == good


def test_writes_are_atomic_and_never_over_their_input(tmp_path: Path, small_serve_trace: Trace) -> None:
    from envs.atomic_io import atomic_path

    path = small_serve_trace.save(tmp_path / "t.npz")
    before = path.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")
    assert path.read_bytes() == before and not list(tmp_path.glob(".t.npz.*"))
    from envs.cli.trace_cli import main

    assert main(["export", str(path), "--format", "csv", "--out", str(path)]) == 2
    assert path.read_bytes() == before


def test_leaderboard_output_directory_is_checked_first_and_locked(tmp_path: Path, capsys) -> None:
    from envs.run_lock import DirectoryLock
    from eval.leaderboard.__main__ import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--agents", "lru", "--split", "validation", "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    busy = tmp_path / "busy"
    with DirectoryLock(busy):
        assert main(["--agents", "lru", "--split", "validation", "--out", str(busy)]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert main(["--agents", ",", "--out", str(tmp_path / "x")]) == 2
    assert "names no agent" in capsys.readouterr().err


def test_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """kill -9 a process that writes checkpoints in a loop, at several moments; the last complete one loads."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from training.train_ppo import PPOConfig, build_model, make_vec_env
from training.checkpoint import save
cfg = PPOConfig(suite="tcb-v2", k=8, n_envs=1, hidden=16)
import envs
from envs.eviction_env import EvictionEnv
from stable_baselines3.common.vec_env import DummyVecEnv
import gymnasium as gym
vec = DummyVecEnv([lambda: EvictionEnv(workload="transformer-train", preset="gpt2-small", layers=1, iterations=1,
                                       method="analytic", capacity=0.97, k=8)])
model = build_model(cfg, vec)
run = Path(sys.argv[1])
print("ready", flush=True)
while True:
    model.num_timesteps += 1
    save(model, run, {{}})
"""
    from training.checkpoint import load_latest
    from training.train_ppo import PPOConfig, build_model

    for delay in (0.05, 0.2, 0.45):
        run = tmp_path / f"run{delay}"
        proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while not (run / "checkpoints" / "latest.json").exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        from stable_baselines3.common.vec_env import DummyVecEnv

        from envs.eviction_env import EvictionEnv

        vec = DummyVecEnv([lambda: EvictionEnv(workload="transformer-train", preset="gpt2-small", layers=1, iterations=1,
                                               method="analytic", capacity=0.97, k=8)])  # fmt: skip
        state = load_latest(build_model(PPOConfig(k=8, n_envs=1, hidden=16), vec), run)
        assert state["num_timesteps"] >= 1


# ----------------------------------------------------------------------------------------- 5: entry folders
def test_bad_entry_folders_are_reported_and_skipped(tmp_path: Path) -> None:
    from eval.leaderboard.entries import discover

    def entry(name: str, spec: object, readme: bool = True) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "entry.json").write_text(spec if isinstance(spec, str) else json.dumps(spec))
        if readme:
            (d / "README.md").write_text("x")

    entry("ok", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("escape", {"name": "esc", "kind": "exported-net", "weights": "../ok"})
    entry("absolute", {"name": "abs", "kind": "exported-net", "weights": "/etc"})
    entry("zero", {"name": "zero", "kind": "llm", "base": "/dev/zero", "adapter": "a"})
    entry("broken", "{not json")
    entry("list", "[1, 2]")
    entry("huge", json.dumps({"name": "huge", "kind": "baseline", "policy": "lru", "pad": "x" * 70_000}))
    entry("thief", {"name": "lru", "kind": "exported-net", "weights": "."})
    entry("twin", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("ships", {"name": "ships", "kind": "exported-net", "precomputed": "../../etc/passwd"})
    found = discover(tmp_path)
    assert set(found.entries) == {"mine"}
    assert set(found.refused) == {"escape", "absolute", "zero", "broken", "list", "huge", "thief", "twin", "ships"}
    assert all("\n" not in why for why in found.refused.values())
    assert "leaves the entry folder" in found.refused["escape"] and "built-in" in found.refused["thief"]
    assert "already used" in found.refused["twin"]


# ----------------------------------------------------------------------------------------- fuzz: every loader
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
