"""Train a MaskablePPO eviction agent on ``tensorcache/Eviction-v1``.

``python -m training.train_ppo --help`` lists every option. A run lives in
``runs/{env_id}__{exp_name}__{seed}__{unix_time}/`` with ``config.json``, TensorBoard events under ``tb/``,
``checkpoints/`` (safetensors + JSON, never pickles: :mod:`training.checkpoint`), ``best/`` (the best model on the
validation split, exported as safetensors + JSON) and ``export/`` (the final policy). ``--resume RUN_DIR``
continues a killed run from its last loadable checkpoint with the same global step and TensorBoard directory; a
lock refuses a second trainer on the same run directory.

Pipeline: optional behaviour-cloning warm start on Belady labels of the train split (plus DAgger rounds that
label the states the cloned policy itself visits), then PPO on the bytes-moved reward with periodic greedy
evaluation on the validation split (normalized byte score against LRU and Belady). Test seeds are never read.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from envs.version import ENV_ID, ENV_ID_V2
from training.seeding import seed_everything

_TOTAL_DEFAULT = "(default: 1,000,000; with --resume: the run's)"


@dataclass
class PPOConfig:
    """Configuration of one PPO training run (every field is a CLI flag)."""

    exp_name: str = "ppo"
    """Experiment name (part of the run directory name)."""
    seed: int = 0
    """Seed of python, numpy, torch and the environments."""
    suite: str = "tcb-v2"
    """Benchmark suite whose train split is trained on and whose validation split selects the best model."""
    total_timesteps: Annotated[int | None, tyro.conf.arg(help_behavior_hint="(default: 1,000,000; with --resume: the run's)")] = (
        None
    )
    """Environment steps (eviction decisions) of PPO, summed over vector envs."""
    max_episode_steps: int = 0
    """Truncate episodes after this many decisions (0 = replay each trace to its end)."""
    n_envs: int = 8
    """Parallel environments."""
    vec_env: Literal["dummy", "async"] = "dummy"
    """Vector env: 'dummy' (in-process; fastest on 2 cores) or 'async' (gymnasium AsyncVectorEnv workers)."""
    k: int = 32
    """Eviction candidates offered per decision."""
    candidates: Literal["lru", "mixed", "schedule"] = "mixed"
    """Candidate rule of the env ('lru', 'mixed' or 'schedule': the K the schedule heuristic would evict first)."""
    observation_version: Literal[1, 2] = 1
    """Observation version of the env (1: 'tensorcache/Eviction-v1'; 2: with the schedule's predictions and the
    phases, as 'tensorcache/Eviction-v2')."""
    reward: Literal["bytes", "hits"] = "bytes"
    """Reward mode of the env ('bytes' or 'hits')."""
    hidden: int = 64
    """Width of the candidate-scoring network."""
    learning_rate: float = 3e-5
    """Adam learning rate of PPO (after cloning)."""
    n_steps: int = 256
    """Rollout length per env per update."""
    batch_size: int = 512
    """Minibatch size of PPO updates."""
    n_epochs: int = 4
    """Passes over each rollout per PPO update."""
    gamma: float = 0.995
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.1
    """PPO clipping range."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    teacher: Literal["belady", "cost-belady", "lp-guided"] = "lp-guided"
    """Offline teacher whose choices label the cloning data ('belady', 'cost-belady' or 'lp-guided', the
    size- and write-back-aware reference that plays the lower bound's LP solution)."""
    init_policy: str | None = None
    """An exported policy folder (policy.safetensors + policy.json, e.g. eval/leaderboard/bc-v2) to start the
    network from instead of cloning: PPO fine-tunes it (same network, candidate rule, K and observation version)."""
    bc_stride: int = 2
    """Behaviour cloning: label every n-th decision of each train trace (0 = no warm start)."""
    bc_epochs: int = 6
    """Cloning epochs per round."""
    bc_dagger_rounds: int = 1
    """Extra rounds that roll out the cloned policy and label its states with the teacher."""
    bc_learning_rate: float = 1e-3
    """Adam learning rate of behaviour cloning."""
    critic_warmup_steps: int = 50_000
    """After cloning, train only the critic (actor frozen) for this many steps so early advantages are not noise."""
    eval_freq: int = 100_000
    """Evaluate on the validation split every this many steps (0 = never)."""
    eval_seeds: int = 1
    """Validation seeds used per evaluation (the first n of the split)."""
    checkpoint_freq: int = 50_000
    """Save a resumable checkpoint every this many steps."""
    max_instances: int = 0
    """Use only the first n suite instances for cloning and evaluation (0 = all; for smoke tests)."""
    runs_dir: str = "runs"
    """Parent directory of run directories."""
    threads: int = 1
    """torch CPU threads (1 is fastest for this small network on 2 cores)."""
    executor: Literal["serial", "process", "ray"] = "process"
    """Where the train instances are labelled for cloning ('serial', 'process' or 'ray'; same labels)."""
    jobs: int = 2
    """Workers of the labelling executor."""
    resume: str | None = None
    """Run directory to continue from its last checkpoint (other options are read from its config.json)."""


def make_env_fn(cfg: PPOConfig, rank: int):
    def _make():
        from stable_baselines3.common.monitor import Monitor

        import envs  # noqa: F401 - registers the env in worker processes
        from envs.gym.eviction_env import EvictionEnv

        env = EvictionEnv(suite=cfg.suite, split="train", k=cfg.k, candidates=cfg.candidates, reward=cfg.reward,
                          observation_version=cfg.observation_version)  # fmt: skip
        if cfg.max_episode_steps:
            from gymnasium.wrappers import TimeLimit

            env = TimeLimit(env, cfg.max_episode_steps)
        env.reset(seed=cfg.seed * 1000 + rank)
        return Monitor(env)

    return _make


def make_vec_env(cfg: PPOConfig):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from training.vec_adapter import GymnasiumVecEnv

    fns = [make_env_fn(cfg, i) for i in range(cfg.n_envs)]
    if cfg.vec_env == "dummy":
        vec = DummyVecEnv(fns)
    elif cfg.vec_env == "async":
        vec = GymnasiumVecEnv(fns, asynchronous=True)
    else:
        raise ValueError(f"unknown vec_env {cfg.vec_env!r}; valid: dummy, async")
    vec.seed(cfg.seed)
    return vec


# ------------------------------------------------------------------------------------------------- evaluation
def validate_policy(policy, cfg: PPOConfig):
    """Greedy runs of ``policy`` on the first ``eval_seeds`` seeds of the validation split (never test)."""
    from envs.benchmarks import get_suite
    from eval.evaluate import evaluate

    seeds = get_suite(cfg.suite).seeds["validation"][: cfg.eval_seeds or None]
    return evaluate(policy, cfg.suite, "validation", seeds=seeds, max_instances=cfg.max_instances)


# ------------------------------------------------------------------------------------------ behaviour cloning
def behaviour_clone(model, cfg: PPOConfig, log) -> None:
    """Warm-starts the actor on the teacher's labels (cross-entropy over the masked candidates), with DAgger rounds
    that label the states the cloned policy itself visits."""
    import torch

    from agents.ppo import PPOPolicy
    from envs.benchmarks import get_suite
    from eval.executor import Executor
    from training.labels import collect

    net = model.policy.net
    instances = get_suite(cfg.suite).instances("train")[: cfg.max_instances or None]
    executor = Executor(cfg.executor, cfg.jobs)
    t0 = time.perf_counter()
    version = cfg.observation_version
    data = collect(instances, cfg.k, cfg.candidates, stride=cfg.bc_stride, teacher=cfg.teacher, executor=executor,
                   version=version)  # fmt: skip
    log(f"labelled {len(data)} decisions with {cfg.teacher} in {time.perf_counter() - t0:.0f} s")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.bc_learning_rate)
    gen = torch.Generator().manual_seed(cfg.seed)
    for rnd in range(cfg.bc_dagger_rounds + 1):
        if rnd > 0:
            net.eval()
            rollout = PPOPolicy(net, cfg.candidates, observation_version=version)
            data = data + collect(instances, cfg.k, cfg.candidates, rollout, cfg.bc_stride * 2, cfg.teacher, executor, version)
            net.train()
        obs, mask, lab = (torch.as_tensor(x) for x in (data.obs, data.mask, data.label))
        for epoch in range(cfg.bc_epochs):
            perm = torch.randperm(len(lab), generator=gen)
            correct = total_loss = 0.0
            for i in range(0, len(lab), 1024):
                idx = perm[i : i + 1024]
                logits = net.forward_actor(obs[idx]).masked_fill(~mask[idx], -1e8)
                loss = torch.nn.functional.cross_entropy(logits, lab[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * len(idx)
                correct += float((logits.argmax(1) == lab[idx]).sum())
            log(f"bc round {rnd} epoch {epoch}: n={len(lab)} loss={total_loss / len(lab):.4f} acc={correct / len(lab):.3f}")
            model.logger.record("bc/loss", total_loss / len(lab))
            model.logger.record("bc/accuracy", correct / len(lab))
            model.logger.dump(rnd * cfg.bc_epochs + epoch)
    executor.close()
    net.eval()


def start_from(model, cfg: PPOConfig) -> None:
    """Loads ``cfg.init_policy`` into the model's network (actor and critic as exported).

    Raises:
        ValueError: When the folder is not an exported policy, or its network, candidate rule or observation version
            differ from this run's.
    """
    from agents.ppo import PPOPolicy

    policy = PPOPolicy.load(cfg.init_policy)
    net = model.policy.net
    if type(policy.net) is not type(net) or policy.net.cfg != net.cfg:
        raise ValueError(f"--init-policy {cfg.init_policy}: its network {policy.net.cfg} is not this run's {net.cfg}")
    mine = (cfg.candidates, cfg.observation_version)
    if (policy.candidate_rule, policy.observation_version) != mine:
        raise ValueError(f"--init-policy {cfg.init_policy}: it plays candidates {policy.candidate_rule!r} on observation "
                         f"version {policy.observation_version}; this run: {mine[0]!r}, version {mine[1]}")  # fmt: skip
    net.load_state_dict(policy.net.state_dict())


# ------------------------------------------------------------------------------------------------- callbacks
def make_callback(cfg: PPOConfig, run_dir: Path, state: dict):
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import HParam, TensorBoardOutputFormat

    from agents.ppo import PPOPolicy, export_policy

    class TrainingCallback(BaseCallback):
        """Episode cache metrics, hyperparameters, periodic validation with best-model export, checkpoints."""

        def _on_training_start(self) -> None:
            if not state.get("hparams_written"):
                hp = {k: v for k, v in dataclasses.asdict(cfg).items() if isinstance(v, (int, float, str, bool))}
                self.logger.record(
                    "hparams",
                    HParam(hp, {"eval/normalized_score": 0.0, "rollout/ep_rew_mean": 0.0}),
                    exclude=("stdout", "log", "json", "csv"),
                )
                for fmt in self.logger.output_formats:
                    if isinstance(fmt, TensorBoardOutputFormat):
                        table = "| field | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in hp.items())
                        fmt.writer.add_text("hyperparameters", table, 0)
                        fmt.writer.flush()
                state["hparams_written"] = True

        def _on_rollout_end(self) -> None:
            from envs.io.progress import log_progress

            now, n = time.monotonic(), self.num_timesteps
            last = getattr(self, "_last_progress", None)
            if last is None:
                self._last_progress = (now, n)
            elif now - last[0] >= 60.0:
                rate = (n - last[1]) / (now - last[0])
                best = state.get("best_score")
                log_progress(f"PPO step {n:,}/{cfg.total_timesteps:,}: {rate:,.0f} steps/s"
                             + (f", best validation score {best:.3f}" if best is not None else ""))  # fmt: skip
                self._last_progress = (now, n)

        def _on_rollout_start(self) -> None:
            warm = cfg.bc_stride > 0 or cfg.init_policy is not None  # a warm-started actor waits for its critic
            frozen = warm and self.num_timesteps < cfg.critic_warmup_steps
            net = self.model.policy.net
            for p in (*net.actor_body.parameters(), *net.actor_head.parameters()):
                p.requires_grad_(not frozen)

        def _on_step(self) -> bool:
            dones = self.locals.get("dones", [])
            for done, info in zip(dones, self.locals.get("infos", []), strict=False):
                if done:  # episode end (trace end or truncation): bytes moved over the episode
                    self.logger.record_mean("cache/bytes_moved", info["bytes_moved"])
                if "byte_hit_ratio" in info:
                    self.logger.record_mean("cache/byte_hit_ratio", info["byte_hit_ratio"])
                    self.logger.record_mean("cache/hit_ratio", info["hit_ratio"])
            n = self.num_timesteps
            if cfg.eval_freq and n - state.get("last_eval", 0) >= cfg.eval_freq:
                self.run_eval()
            if cfg.checkpoint_freq and n - state.get("last_ckpt", 0) >= cfg.checkpoint_freq:
                state["last_ckpt"] = n
                save_checkpoint(self.model, run_dir, state)
            return True

        def run_eval(self) -> None:
            n = self.num_timesteps
            state["last_eval"] = n
            policy = PPOPolicy(self.model.policy.net, cfg.candidates, observation_version=cfg.observation_version)
            t0 = time.perf_counter()
            res = validate_policy(policy, cfg)
            self.logger.record("eval/normalized_score", res.score)
            self.logger.record("eval/byte_hit_ratio", res.byte_hit_ratio)
            self.logger.record("eval/bytes_moved", res.bytes_moved)
            self.logger.record("eval/seconds", time.perf_counter() - t0)
            state.setdefault("evals", []).append({"step": n, "normalized_score": res.score, "per_task": res.per_task})
            from envs.io.progress import log_progress

            log_progress(f"validation at step {n:,}: score {res.score:.3f} ({time.perf_counter() - t0:.0f} s)")
            if res.score > state.get("best_score", -np.inf):
                state["best_score"] = res.score
                state["best_step"] = n
                export_policy(
                    self.model.policy.net,
                    cfg.candidates,
                    run_dir / "best",
                    meta=provenance(cfg, n, res),
                    observation_version=cfg.observation_version,
                )
            self.logger.dump(n)

    return TrainingCallback()


def provenance(cfg: PPOConfig, step: int, res=None) -> dict:
    from envs.version import ENV_ID_V2, ENV_VERSION

    env_version = ENV_VERSION if cfg.observation_version == 1 else ENV_ID_V2.split("/")[1]
    out = {"env_version": env_version, "suite": cfg.suite, "trained_steps": step, "train_seed": cfg.seed}
    if res is not None:
        out["validation_normalized_score"] = res.score
    return out


def save_checkpoint(model, run_dir: Path, state: dict) -> None:
    from training.checkpoint import save

    state["num_timesteps"] = int(model.num_timesteps)
    save(model, run_dir, state)


# ------------------------------------------------------------------------------------------------------- main
def new_run_dir(cfg: PPOConfig) -> Path:
    env_id = ENV_ID if cfg.observation_version == 1 else ENV_ID_V2
    name = f"{env_id.replace('/', '-')}__{cfg.exp_name}__{cfg.seed}__{int(time.time())}"
    d = Path(cfg.runs_dir) / name
    d.mkdir(parents=True, exist_ok=False)
    return d


def check_config(cfg: PPOConfig) -> None:
    """One-line errors for values no run can use."""
    for name in ("n_envs", "k", "hidden", "n_steps", "batch_size", "n_epochs", "threads"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    for name in ("max_episode_steps", "bc_stride", "bc_epochs", "bc_dagger_rounds", "critic_warmup_steps", "eval_freq",
                 "eval_seeds", "checkpoint_freq", "max_instances"):  # fmt: skip
        if getattr(cfg, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(cfg, name)}")
    if cfg.total_timesteps is not None and cfg.total_timesteps < 1:
        raise ValueError(f"--total-timesteps must be >= 1, got {cfg.total_timesteps}")
    if not 0.0 < cfg.gamma <= 1.0 or not 0.0 <= cfg.gae_lambda <= 1.0:
        raise ValueError("--gamma must be in (0, 1] and --gae-lambda in [0, 1]")
    if cfg.vec_env not in ("dummy", "async"):
        raise ValueError(f"unknown --vec-env {cfg.vec_env!r}; valid: dummy, async")
    from eval.executor import Executor
    from training.labels import TEACHERS

    if cfg.teacher not in TEACHERS:
        raise ValueError(f"unknown --teacher {cfg.teacher!r}; valid: {', '.join(TEACHERS)}")
    Executor(cfg.executor, cfg.jobs)  # refuses an unknown executor or --jobs < 1


def _logger(run_dir: Path, resumed_at: int | None):
    """TensorBoard events (appended to tb/) and a CSV log; a resumed run writes a new CSV file, never over the old."""
    from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, Logger, TensorBoardOutputFormat

    tb = run_dir / "tb"
    tb.mkdir(parents=True, exist_ok=True)
    name = "progress.csv" if resumed_at is None else f"progress-resumed-at-{resumed_at}.csv"
    formats = [TensorBoardOutputFormat(str(tb)), CSVOutputFormat(str(tb / name))]
    if sys.stdout.isatty():
        formats.append(HumanOutputFormat(sys.stdout))
    return Logger(str(tb), formats)


def build_model(cfg: PPOConfig, vec):
    from sb3_contrib import MaskablePPO

    from training.ppo_policy import CandidateActorCriticPolicy

    return MaskablePPO(
        CandidateActorCriticPolicy,
        vec,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        policy_kwargs={"hidden": cfg.hidden},
        seed=cfg.seed,
        device="cpu",
        verbose=0,
    )


def train(cfg: PPOConfig) -> Path:
    """Runs (or resumes) training; returns the run directory."""
    from envs.io.run_lock import DirectoryLock

    check_config(cfg)
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / "config.json").is_file() or not (run_dir / "checkpoints").is_dir():
            raise ValueError(f"--resume {run_dir}: no config.json and checkpoints/ (not a run directory?)")
        known = {f.name for f in dataclasses.fields(PPOConfig)}
        try:
            saved = json.loads((run_dir / "config.json").read_text())
            saved.setdefault("threads", saved.get("torch_threads", 1))  # runs before the option's rename
            saved = {k: v for k, v in saved.items() if k in known}
        except ValueError:
            raise ValueError(f"--resume {run_dir}: config.json is not JSON") from None
        cfg = PPOConfig(**{**saved, "resume": cfg.resume, "total_timesteps": cfg.total_timesteps or saved["total_timesteps"]})
        check_config(cfg)
    else:
        if cfg.total_timesteps is None:
            cfg = dataclasses.replace(cfg, total_timesteps=1_000_000)
        run_dir = new_run_dir(cfg)
        from envs.io.atomic import write_text_atomic

        write_text_atomic(run_dir / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    with DirectoryLock(run_dir):
        return _train_locked(cfg, run_dir)


def _train_locked(cfg: PPOConfig, run_dir: Path) -> Path:
    from agents.ppo import export_policy
    from envs.io.progress import log_progress
    from training.checkpoint import load_latest

    log = log_progress  # timestamped lines on stderr, flushed: a log file shows each phase as it happens
    log(f"run directory: {run_dir}")
    state: dict = {}
    seed_everything(cfg.seed, cfg.threads)
    vec = make_vec_env(cfg)
    model = build_model(cfg, vec)
    if cfg.resume:
        state = load_latest(model, run_dir)
        seed_everything(cfg.seed + int(state["num_timesteps"]), cfg.threads)
        model.set_logger(_logger(run_dir, int(state["num_timesteps"])))
        log(f"resuming {run_dir} at step {model.num_timesteps}")
    else:
        model.set_logger(_logger(run_dir, None))
        if cfg.init_policy is not None:
            start_from(model, cfg)
            log(f"starting from {cfg.init_policy}")
        elif cfg.bc_stride > 0:
            t0 = time.perf_counter()
            behaviour_clone(model, cfg, log)
            state["bc_seconds"] = time.perf_counter() - t0
            # the cloned policy alone (the ``bc`` leaderboard entry), so what PPO adds on top is measurable
            export_policy(
                model.policy.net,
                cfg.candidates,
                run_dir / "bc",
                name="bc",
                meta=provenance(cfg, 0, None),
                observation_version=cfg.observation_version,
            )
    callback = make_callback(cfg, run_dir, state)
    callback.init_callback(model)  # learn() re-initialises it; the evaluations outside learn() need it bound
    if not cfg.resume:
        if cfg.eval_freq:
            callback.run_eval()  # the warm-started policy is the first candidate for "best"
        save_checkpoint(model, run_dir, state)
    remaining = cfg.total_timesteps - model.num_timesteps
    t0 = time.perf_counter()
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=False, progress_bar=sys.stderr.isatty())
    state["train_seconds"] = state.get("train_seconds", 0.0) + time.perf_counter() - t0
    if cfg.eval_freq and state.get("last_eval") != model.num_timesteps:
        callback.run_eval()
    save_checkpoint(model, run_dir, state)
    export_policy(
        model.policy.net,
        cfg.candidates,
        run_dir / "export",
        meta=provenance(cfg, model.num_timesteps, None),
        observation_version=cfg.observation_version,
    )
    vec.close()
    log(f"done: {model.num_timesteps} steps; best validation score {state.get('best_score')} at {state.get('best_step')}")
    log(f"run directory: {run_dir}")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(PPOConfig, prog="tensorcache-train-ppo", args=argv)
    try:
        train(cfg)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
