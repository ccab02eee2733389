"""Files: damaged caches are regenerated, writes are atomic and never over their input, output directories
are checked first and locked, and a kill mid-checkpoint leaves a loadable checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envs.trace import Trace

ROOT = Path(__file__).resolve().parent.parent


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
    from envs.io.atomic import atomic_path

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
    from envs.io.run_lock import DirectoryLock
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
from envs.gym.eviction_env import EvictionEnv
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

        from envs.gym.eviction_env import EvictionEnv

        vec = DummyVecEnv([lambda: EvictionEnv(workload="transformer-train", preset="gpt2-small", layers=1, iterations=1,
                                               method="analytic", capacity=0.97, k=8)])  # fmt: skip
        state = load_latest(build_model(PPOConfig(k=8, n_envs=1, hidden=16), vec), run)
        assert state["num_timesteps"] >= 1


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """Atomic writes give the mode an ordinary open() would (mkstemp alone leaves 0600)."""
    import stat

    from envs.io.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
        os.umask(0o077)
        write_text_atomic(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
