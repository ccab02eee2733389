"""Bring your own model: capture any nn.Module, trace Hugging Face configs without weights, build traces from plain
requests; every such trace plays in the simulator and the env like a built-in one."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the env
from envs import Trace
from envs.sim import Headroom, prepare, resolve_capacity, simulate

V, D, P = 1000, 64, 256


def _gpt2_params(n_layer: int) -> int:
    per_layer = 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + 2 * D + (D * 4 * D + 4 * D) + (4 * D * D + D)
    return V * D + P * D + n_layer * per_layer + 2 * D  # the LM head is tied to the token embedding


def _llama_params(n_layer: int, heads: int, kv: int, inter: int, tied: bool) -> int:
    hd = D // heads
    per_layer = D * D + 2 * D * kv * hd + D * D + 3 * D * inter + 2 * D
    return V * D + n_layer * per_layer + D + (0 if tied else V * D)


CONFIGS = {
    "gpt2 (fused QKV, learned positions, tied)": (
        {"model_type": "gpt2", "vocab_size": V, "n_positions": P, "n_embd": D, "n_layer": 2, "n_head": 4}, _gpt2_params(2)),
    "llama (grouped-query attention)": (
        {"model_type": "llama", "vocab_size": V, "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": P}, _llama_params(2, 4, 2, 128, False)),
    "llama (tied embeddings)": (
        {"model_type": "llama", "vocab_size": V, "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": P, "tie_word_embeddings": True},
        _llama_params(2, 4, 4, 128, True)),
    "mixtral (MoE)": (
        {"model_type": "mixtral", "vocab_size": V, "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
         "max_position_embeddings": P}, None),
    "qwen2 (attention biases)": (
        {"model_type": "qwen2", "vocab_size": V, "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": P}, None),
    "phi3 (fused QKV and gate/up)": (
        {"model_type": "phi3", "vocab_size": V, "hidden_size": D, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": P, "pad_token_id": 0}, None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONFIGS))
def test_hf_config_traces_with_exact_weight_bytes(name: str, tmp_path: Path) -> None:
    from envs.capture.hf import build_model, capture_hf, load_config

    config, expected = CONFIGS[name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    dtype, width = ("bfloat16", 2) if config["model_type"] == "mixtral" else ("float32", 4)
    model, _ = build_model(load_config(path), dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if expected is not None:
        assert n_params == expected, (n_params, expected)
    if config["model_type"] == "qwen2":
        assert any(n.endswith("q_proj.bias") for n, _ in model.named_parameters())
    for task in ("train", "infer"):
        trace = capture_hf(tmp_path, task=task, seq=16, batch=2, decode_steps=3, dtype=dtype)
        kinds = trace.bytes_by_kind()
        assert kinds["weight"] == width * n_params, (task, kinds["weight"], width * n_params)
        if task == "train":
            assert kinds["gradient"] == kinds["weight"] and kinds["optimizer_state"] >= 2 * kinds["weight"]
        else:
            assert kinds["kv_cache"] > 0 and kinds["gradient"] == 0
        layers = set(np.unique(trace.layer).tolist())
        assert {1, 2} <= layers  # both blocks are attributed, whatever the module naming (h.N, layers.N)
        prepared = prepare(trace)
        cap = resolve_capacity(Headroom(0.3), prepared)
        assert simulate(prepared, "belady", cap).bytes_moved <= simulate(prepared, "lru", cap).bytes_moved * 1.5


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"vocab_size": 10}, "needs a 'model_type'"),
        ({"model_type": "no-such-model"}, "no-such-model"),
        ({"model_type": "llama", "hidden_size": 10**9}, "hidden_size"),
        ({"model_type": "llama", "num_hidden_layers": -2}, "num_hidden_layers"),
        (
            {
                "model_type": "mixtral",
                "hidden_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "num_local_experts": 4,
            },
            "bfloat16 only",
        ),
    ],
)
def test_bad_configs_get_one_line_errors(config: dict, message: str, tmp_path: Path) -> None:
    from envs.capture.hf import HFConfigError, capture_hf

    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HFConfigError, match=message) as exc:
        capture_hf(tmp_path, dtype="float32")
    assert "\n" not in str(exc.value)
    with pytest.raises(HFConfigError, match="no such config"):
        capture_hf(tmp_path / "missing.json")


def test_cli_and_env_take_a_hf_config(tmp_path: Path, capsys) -> None:
    from envs.cli.trace_cli import main

    config, _ = CONFIGS["llama (grouped-query attention)"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "llama.npz"
    assert main(["generate", "--hf-config", str(tmp_path), "--task", "infer", "--seq", "32", "--decode-steps", "4",
                 "--out", str(out)]) == 0  # fmt: skip
    assert Trace.load(out).meta["model_type"] == "llama"
    assert main(["generate", "--hf-config", str(tmp_path), "--workload", "cnn-train", "--out", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    env = gym.make("tensorcache/Eviction-v1", trace_path=str(out), capacity=Headroom(0.2), k=8).unwrapped
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    # the env takes the config directly, with the capture's options
    options = {"seq": 24, "decode_steps": 3, "dtype": "float32", "layers": 1}
    env = gym.make("tensorcache/Eviction-v1", hf_config=str(tmp_path), hf_task="infer", hf_options=options).unwrapped
    meta = env._load(0)[0].trace.meta
    assert (meta["seq"], meta["decode_steps"], meta["dtype"], meta["layers"]) == (24, 3, "float32", 1)
    with pytest.raises(ValueError, match="unknown hf_options key 'sequence'"):
        gym.make("tensorcache/Eviction-v1", hf_config=str(tmp_path), hf_options={"sequence": 8})


def test_requests_become_a_trace() -> None:
    t = Trace.from_requests([(10, 64), (7, 32), (10, 64, "write"), (7, 32, "free"), (3_000_000_000, 16)])
    assert t.tensor_id.tolist() == [0, 1, 0, 1, 2] and t.op.tolist() == [0, 0, 1, 2, 0] and t.n_tensors == 3
    arrays = Trace.from_requests(np.array([5, 9, 5]), np.array([8, 16, 8]))
    assert simulate(arrays, "lru", 16, mode="classic").n_hit == 0
    with pytest.raises(ValueError, match=r"more than one size"):
        Trace.from_requests([(1, 8), (1, 9)])
    with pytest.raises(ValueError, match="unknown op"):
        Trace.from_requests([(1, 8, "scribble")])


def test_readme_own_model_example_runs() -> None:
    from tests.conftest import readme_example

    namespace = readme_example("## Your own model")
    trace = namespace["trace"]
    assert trace.bytes_by_kind()["weight"] == 4 * sum(p.numel() for p in namespace["Net"]().parameters())
    assert set(np.unique(trace.layer).tolist()) >= {0, 1, 2, 3}


def test_hf_traces_are_reproducible_and_layers_cut_the_model(tmp_path: Path) -> None:
    """The same config traced twice (from two places) gives one content hash; --layers keeps the first blocks,
    per-layer lists included (a Qwen2 config's layer_types), and a bad value is a one-line error."""
    from envs.capture.hf import HFConfigError, capture_hf
    from envs.cli.trace_cli import main

    config = dict(CONFIGS["qwen2 (attention biases)"][0], num_hidden_layers=3,
                  layer_types=["full_attention"] * 3)  # fmt: skip
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "config.json").write_text(json.dumps(config))
    first = capture_hf(tmp_path / "a", seq=16, dtype="float32")
    again = capture_hf(tmp_path / "b", seq=16, dtype="float32")
    assert first.content_hash == again.content_hash
    one = capture_hf(tmp_path / "a", seq=16, dtype="float32", layers=1)
    assert one.meta["layers"] == 1 and first.meta["layers"] == 3 and one.content_hash != first.content_hash
    assert int(one.layer.max()) < int(first.layer.max())
    with pytest.raises(HFConfigError, match="layers must be an integer"):
        capture_hf(tmp_path / "a", layers=0)
    out = tmp_path / "cut.npz"
    assert main(["generate", "--hf-config", str(tmp_path / "a"), "--layers", "1", "--seq", "16", "--dtype", "float32",
                 "--out", str(out)]) == 0  # fmt: skip
    assert Trace.load(out).content_hash == one.content_hash


def test_any_agent_scores_your_own_trace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``evaluate(agent, trace=..., capacity=...)`` and ``tensorcache-leaderboard score``: the suite's rows (bound,
    score, step time) on a trace of your own, for built-in, learned and offline agents."""
    from envs.sim import Headroom
    from eval.evaluate import evaluate
    from eval.leaderboard.__main__ import main

    path = generate_own(tmp_path)
    ev = evaluate("schedule", trace=path, capacity=[Headroom(0.2), Headroom(0.6)])
    assert [r["split"] for r in ev.rows] == ["own", "own"] and all(r["norm_byte_score"] <= 1.0 for r in ev.rows)
    assert all(r["anchor_bytes"] <= r["bytes_moved"] and r["step_s"] > 0 for r in ev.rows)
    lru = evaluate("lru", trace=Trace.load(path), capacity=Headroom(0.2)).rows[0]
    assert lru["norm_byte_score"] == 0.0 and lru["capacity_bytes"] == ev.rows[0]["capacity_bytes"]
    assert main(["score", str(path), "--agents", "lru,ppo,best-offline", "--headroom", "0.2", "--json"]) == 0
    rows = {r["agent"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"lru", "ppo", "best-offline"} and rows["best-offline"]["bytes_moved"] >= rows["lru"]["anchor_bytes"]
    assert main(["score", str(path), "--agents", "oracle9000"]) == 2
    assert "unknown agent" in capsys.readouterr().err


def test_tensorcache_simulate_runs_every_kind_of_policy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``tensorcache-simulate --policy`` takes engine policies, registered agents (learned entries included), the
    offline references and the lower bound: one JSON row each per capacity, agreeing with the leaderboard's rows."""
    from envs.sim import Headroom
    from eval.evaluate import evaluate
    from eval.simulate_agents import main

    path = generate_own(tmp_path)
    policies = ["lru", "schedule", "ppo", "cost-belady", "best-offline", "lower-bound"]
    assert main(["--trace", str(path), "--policy", *policies, "--headroom", "0.2", "0.6", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["policy"], r["capacity_bytes"]) for r in rows][::2] == [(p, rows[0]["capacity_bytes"]) for p in policies]
    by = {(r["policy"], r["capacity_bytes"]): r for r in rows}
    for cap in {r["capacity_bytes"] for r in rows}:
        bound = by[("lower-bound", cap)]["bytes_moved"]
        assert all(by[(p, cap)]["bytes_moved"] >= bound for p in policies)
        assert by[("best-offline", cap)]["bytes_moved"] <= by[("cost-belady", cap)]["bytes_moved"]
    ev = evaluate("ppo", trace=path, capacity=Headroom(0.2)).rows[0]
    assert by[("ppo", ev["capacity_bytes"])]["bytes_moved"] == ev["bytes_moved"]
    assert by[("lower-bound", ev["capacity_bytes"])]["bytes_moved"] == ev["anchor_bytes"]
    assert main(["--trace", str(path), "--policy", "oracle9000", "--headroom", "0.2"]) == 2
    assert "unknown policy 'oracle9000'; valid: lru" in capsys.readouterr().err


def generate_own(tmp_path: Path) -> Path:
    from envs.workloads import generate_trace

    return generate_trace("transformer-train", "gpt2-small", layers=1, iterations=3).save(tmp_path / "own.npz")


@pytest.mark.parametrize(
    ("name", "published"),
    [("llama-3-8b", 8_030_261_248), ("pythia-1.4b", 1_414_647_808), ("gemma-2b", 2_506_172_416),
     ("qwen2-0.5b", 494_032_768)],
)  # fmt: skip
def test_bundled_example_configs_build_the_published_models(name: str, published: int) -> None:
    """The example configs (written from public model cards) build models with the published parameter counts, and
    trace by name (one block here)."""
    import torch
    from transformers import AutoModelForCausalLM

    from envs.capture.hf import capture_hf, example_config, load_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(load_config(example_config(name)))
    assert sum(p.numel() for p in model.parameters()) == published
    assert len(capture_hf(name, layers=1, seq=16)) > 0
