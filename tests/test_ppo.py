"""The PPO agent: a short training run with TensorBoard scalars, resume, exact export, safe loading, entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.ppo import PPOPolicy, export_policy
from envs.gym.features import feature_tables, observation_size, split_observation
from eval.leaderboard.entries import discover, load_entry
from training.train_ppo import PPOConfig, train

SCALARS = ("rollout/ep_rew_mean", "train/loss", "time/fps", "eval/normalized_score", "eval/byte_hit_ratio", "cache/bytes_moved")


def _tiny(tmp_path: Path, **kw) -> PPOConfig:
    base = dict(
        exp_name="smoke",
        total_timesteps=512,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        k=8,
        hidden=16,
        bc_stride=8,
        bc_epochs=1,
        bc_dagger_rounds=0,
        eval_freq=256,
        checkpoint_freq=256,
        max_instances=1,
        max_episode_steps=100,
        runs_dir=str(tmp_path),
    )
    base.update(kw)
    return PPOConfig(**base)


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for ev in sorted((run_dir / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(_tiny(tmp_path_factory.mktemp("runs")))


def test_short_run_writes_config_checkpoint_export_and_named_scalars(trained_run: Path) -> None:
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["total_timesteps"] == 512 and trained_run.name.startswith("tensorcache-Eviction-v1__smoke__0__")
    assert not list(trained_run.rglob("*.zip")) and not list(trained_run.rglob("*.pkl"))  # nothing to unpickle
    latest = json.loads((trained_run / "checkpoints" / "latest.json").read_text())["latest"]
    state = json.loads((trained_run / "checkpoints" / latest / "trainer_state.json").read_text())
    assert state["num_timesteps"] >= 512
    scalars = _scalars(trained_run)
    missing = [s for s in SCALARS if s not in scalars]
    assert not missing, f"missing TensorBoard scalars: {missing}"
    assert (trained_run / "export" / "policy.safetensors").is_file()


def test_cloned_policy_is_exported_beside_ppo_and_seeds_compare(trained_run: Path) -> None:
    from agents.ppo import PPOPolicy
    from eval.seeds import SeedsConfig, compare, mean_interval

    bc = PPOPolicy.load(trained_run / "bc")
    assert bc.name == "bc" and bc.meta["trained_steps"] == 0
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["teacher"] == "lp-guided"
    table = compare(SeedsConfig(runs=(trained_run, trained_run), split=("validation",), max_instances=2))
    t = table["splits"]["validation"]["bc"]
    assert len(t["seeds"]) == 2 and t["seeds"][0]["iqm"] == t["seeds"][1]["iqm"]  # same weights, same score
    assert t["ci_low"] == t["mean"] == t["ci_high"] and t["closest_to_mean"] == 0
    mean, lo, hi = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / 3**0.5, rel=1e-6) and mean - lo == hi - mean


def test_resume_continues_the_global_step_in_the_same_tensorboard_run(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    before = _latest_state(run)["num_timesteps"]
    csv_before = (run / "tb" / "progress.csv").read_text()
    train(PPOConfig(resume=str(run), total_timesteps=before + 256))
    after = _latest_state(run)["num_timesteps"]
    assert after >= before + 256
    steps = [s for s, _ in _scalars(run)["time/fps"]]
    assert max(steps) > before  # logged past the resume point, in the same tb/ directory
    assert not (tmp_path / "tb").exists()
    assert (run / "tb" / "progress.csv").read_text() == csv_before  # the old log is never truncated
    assert (run / "tb" / f"progress-resumed-at-{before}.csv").is_file()


def _latest_state(run: Path) -> dict:
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["latest"]
    return json.loads((run / "checkpoints" / latest / "trainer_state.json").read_text())


def test_resume_runs_no_code_and_falls_back_past_a_broken_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    from training.checkpoint import CheckpointError, load_latest
    from training.train_ppo import build_model, make_vec_env

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cfg = PPOConfig(**{**json.loads((run / "config.json").read_text()), "resume": str(run)})
    vec = make_vec_env(cfg)
    try:
        history = json.loads((run / "checkpoints" / "latest.json").read_text())["history"]
        assert len(history) == 2
        # a pickle planted where a checkpoint file belongs is never loaded: the newest checkpoint is refused and
        # the previous one is restored instead
        marker = tmp_path / "pwned"
        payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
        (run / "checkpoints" / history[-1] / "policy.safetensors").write_bytes(payload)
        state = load_latest(build_model(cfg, vec), run)
        assert not marker.exists()
        previous = json.loads((run / "checkpoints" / history[0] / "trainer_state.json").read_text())
        assert state["num_timesteps"] == previous["num_timesteps"]
        # a checkpoint cut short (as by kill -9 during a write) falls back the same way
        (run / "checkpoints" / history[0] / "optimizer.safetensors").write_bytes(b"\x00" * 7)
        with pytest.raises(CheckpointError, match="no loadable checkpoint"):
            load_latest(build_model(cfg, vec), run)
    finally:
        vec.close()


def test_a_second_trainer_on_the_same_run_is_refused(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    from envs.io.run_lock import DirectoryBusyError, DirectoryLock

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    with DirectoryLock(run), pytest.raises(DirectoryBusyError, match="in use"):
        train(PPOConfig(resume=str(run), total_timesteps=10**6))


def test_exported_policy_reproduces_the_sb3_models_actions(trained_run: Path) -> None:

    from envs.gym.eviction_env import EvictionEnv
    from training.checkpoint import load_latest
    from training.train_ppo import build_model, make_vec_env

    cfg = PPOConfig(**json.loads((trained_run / "config.json").read_text()))
    vec = make_vec_env(cfg)
    model = build_model(cfg, vec)
    load_latest(model, trained_run)
    vec.close()
    exported = PPOPolicy.load(trained_run / "export")
    env = EvictionEnv(suite="tcb-v2", split="validation", k=8, candidates="mixed")
    obs, _ = env.reset(seed=3)
    compared = 0
    for _ in range(300):
        mask = env.action_masks()
        sb3_action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        assert exported.choose(env.view) == int(sb3_action)
        obs, _, term, _, _ = env.step(int(sb3_action))
        compared += 1
        if term:
            break
    assert compared > 50


def test_export_round_trip_and_bad_exports_are_refused(tmp_path: Path) -> None:
    from agents.candidate_net import CandidateNet, NetConfig

    torch.manual_seed(0)
    net = CandidateNet(NetConfig(k=4, hidden=8))
    export_policy(net, "mixed", tmp_path / "ok")
    loaded = PPOPolicy.load(tmp_path / "ok")
    x = torch.randn(3, observation_size(4))
    assert torch.equal(loaded.net.forward_actor(x), net.forward_actor(x))
    with pytest.raises(ValueError, match=r"missing policy\.safetensors"):
        PPOPolicy.load(tmp_path / "nothing-here")
    bad = tmp_path / "bad"
    export_policy(net, "mixed", bad)
    spec = json.loads((bad / "policy.json").read_text())
    spec["net"]["hidden"] = 9
    (bad / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="do not match"):
        PPOPolicy.load(bad)
    spec["format"] = "pickle"
    (bad / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="format"):
        PPOPolicy.load(bad)


def test_every_leaderboard_entry_folder_is_valid() -> None:
    found = discover()
    assert not found.refused
    entries = found.entries
    assert {"lru", "belady", "next-use", "ppo", "llm"} <= set(entries)
    for e in entries.values():
        readme = (e.directory / "README.md").read_text()
        assert "Deterministic" in readme or "deterministic" in readme
        policy = e.make()
        assert policy.name == e.name


def test_bad_entry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "entry.json").write_text(json.dumps({"name": "x", "kind": "pickle"}))
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(ValueError, match="unknown kind"):
        load_entry(tmp_path)


def test_lockstep_batched_runner_equals_one_trace_at_a_time(small_serve_trace) -> None:
    from agents import make_policy
    from agents.rollout import run_policy, run_policy_batched
    from envs.sim import headroom_capacity, prepare

    prepared = prepare(small_serve_trace, "tensor")
    jobs = [(prepared, headroom_capacity(prepared, h), s) for h, s in ((0.1, 0), (0.4, 1), (0.7, 2))]
    policy = make_policy("next-use")
    batched = run_policy_batched(jobs, policy)
    single = [run_policy(p, policy, c, seed=s, fast=False) for p, c, s in jobs]
    assert [b.result for b in batched] == [r.result for r in single]
    assert [b.decisions for b in batched] == [r.decisions for r in single]


def test_exported_policy_batched_equals_single(trained_run: Path, small_serve_trace) -> None:
    from agents.rollout import run_policy, run_policy_batched
    from envs.sim import headroom_capacity, prepare

    policy = PPOPolicy.load(trained_run / "export")
    prepared = prepare(small_serve_trace, "tensor")
    jobs = [(prepared, headroom_capacity(prepared, h), 0) for h in (0.1, 0.5)]
    assert [r.result for r in run_policy_batched(jobs, policy)] == [run_policy(p, policy, c).result for p, c, _ in jobs]
    # both run the env's fused step on observations alone; deciding from each decision's view chooses the same
    from agents.rollout import start_episode

    assert policy.observation_batched
    for p, c, _ in jobs:
        by_view = start_episode(p, policy, c).play(policy.choose)
        assert by_view == run_policy(p, policy, c).result and by_view.n_evictions > 0


def test_policy_net_is_permutation_equivariant() -> None:
    from agents.candidate_net import CandidateNet, NetConfig

    torch.manual_seed(1)
    net = CandidateNet(NetConfig(k=5, hidden=8))
    obs = torch.rand(1, observation_size(5))
    perm = np.array([3, 0, 4, 1, 2])
    table, globals_ = split_observation(obs.numpy(), 5)
    permuted = torch.from_numpy(np.concatenate([table[:, perm].reshape(1, -1), globals_], axis=1))
    assert torch.allclose(net.forward_actor(permuted), net.forward_actor(obs)[:, perm], atol=1e-6)


def test_observation_version_2_trains_exports_and_plays(tmp_path: Path) -> None:
    """BC and PPO on the v2 env (schedule candidates, schedule features): the export records its version, reloads,
    and plays through the runners; a cloned net whose first candidate is the schedule's choice matches the rule."""
    from agents.ppo import PPOPolicy
    from eval.evaluate import evaluate

    run = train(_tiny(tmp_path, candidates="schedule", observation_version=2, bc_stride=4, exp_name="v2"))
    assert run.name.startswith("tensorcache-Eviction-v2__v2__0__")
    spec = json.loads((run / "bc" / "policy.json").read_text())
    assert spec["observation_version"] == 2 and spec["candidates"] == "schedule"
    assert spec["meta"]["env_version"] == "Eviction-v2"
    bc = PPOPolicy.load(run / "bc")
    assert bc.observation_version == 2 and bc.net.cfg.n_cand_features == len(feature_tables(2)[0])
    rows = evaluate(bc, "tcb-v2", "validation", max_instances=1).rows
    assert rows[0]["agent"] == "bc" and rows[0]["n_req"] > 0
    with pytest.raises(ValueError, match="observation version 1 has"):
        PPOPolicy(bc.net, "schedule", observation_version=1)


def test_ppo_starts_from_an_exported_policy(trained_run: Path, tmp_path: Path) -> None:
    """--init-policy fine-tunes an exported policy (no cloning): its first validation is the exported policy's
    own, the critic warms up with the actor frozen, and a policy of another shape or rule is refused in one line."""
    import torch

    from agents.ppo import PPOPolicy

    start = trained_run / "bc"
    run = train(_tiny(tmp_path, exp_name="fine", init_policy=str(start), critic_warmup_steps=256, eval_freq=0))
    assert not (run / "bc").exists()  # nothing was cloned
    before, after = PPOPolicy.load(start).net, PPOPolicy.load(run / "export").net
    actor = [k for k in before.state_dict() if k.startswith("actor")]
    changed = [k for k in actor if not torch.equal(before.state_dict()[k], after.state_dict()[k])]
    assert changed  # PPO moved the actor after the warm-up (512 steps, 256 of them frozen)
    config = json.loads((run / "config.json").read_text())
    assert config["init_policy"] == str(start)
    with pytest.raises(ValueError, match="is not this run's"):
        train(_tiny(tmp_path, exp_name="wide", init_policy=str(start), hidden=32))
    with pytest.raises(ValueError, match="plays candidates 'mixed'"):
        train(_tiny(tmp_path, exp_name="rule", init_policy=str(start), candidates="lru"))
