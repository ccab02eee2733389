"""Step time: FLOPs and bytes per op recorded at capture (checked against the standard estimates), the engine's
per-op stall bytes, the roofline-plus-link model, and the step time where users read speed (CLI, env info)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401 - registers the env
from envs.sim import prepare, simulate
from envs.sim.accelerators import ACCELERATORS, get_accelerator
from envs.sim.capacity import headroom_capacity
from envs.sim.step_time import StepModel, compute_floor, step_time, unknown_reason
from envs.trace import Kind, Op, Phase, Trace, TraceError
from envs.workloads import generate_trace


def _decoder_trace(preset: str, shapes: list[tuple[int, int]], layers: int = 2) -> tuple[Trace, object]:
    from envs.workloads.spec import TraceSpec
    from envs.workloads.transformer_train import TransformerTrain, capture_train

    cfg = dataclasses.replace(TransformerTrain().presets()[preset], n_layers=layers)
    spec = TraceSpec("transformer-train", preset, layers, len(shapes), 0, "captured", None, None)
    return capture_train(cfg, shapes, spec, "transformer-train", np.random.default_rng(0)), cfg


def test_llama_training_step_flops_match_the_standard_estimate() -> None:
    """6 × parameters × tokens plus attention's quadratic term (12 · layers · seq · d per token), within 2%."""
    batch, seq = 1, 512
    trace, cfg = _decoder_trace("mistral-7b", [(batch, seq)])  # Llama-style: RoPE, SwiGLU, RMSNorm, GQA
    tokens, d, n_layers = batch * seq, cfg.d_model, cfg.n_layers
    matmul_params = cfg.n_params() - cfg.vocab_size * d  # the input embedding is a lookup, not a matmul
    standard = 6 * matmul_params * tokens + 12 * n_layers * seq * d * tokens
    assert abs(trace.total_flops / standard - 1) < 0.02, trace.total_flops / standard
    # exactly what torch's formulas count: the fused attention backward recomputes the scores (5 matmuls, not 4),
    # and norm weights multiply elementwise (no FLOPs)
    norms = (2 * n_layers + 1) * d
    assert trace.total_flops == 6 * (matmul_params - norms) * tokens + 14 * n_layers * seq * d * tokens


def test_resnet50_forward_flops_match_the_published_figure() -> None:
    """~4.1 G multiply-adds per 224×224 image (the published "GFLOPs" of ResNet-50 count multiply-adds)."""
    from envs.capture.module import capture
    from envs.workloads.resnet_model import PRESETS, ResNet

    trace = capture(ResNet(PRESETS["resnet50"]), lambda step: torch.empty(1, 3, 224, 224, device="meta"), train=False)
    assert abs(trace.total_flops / 2 / 4.1e9 - 1) < 0.05, trace.total_flops / 2
    assert trace.meta["dtype"] == "float32"


def test_hugging_face_attention_is_counted(tmp_path: Path) -> None:
    """Under FakeTensorMode on CPU, HF's SDPA takes the CPU flash kernel, which torch's table leaves out; ours counts
    it, so a Llama config's step agrees with the same formula as the built-in decoder's."""
    from envs.capture.hf import build_model, capture_hf, load_config

    d, layers, heads, seq, batch, vocab = 64, 2, 4, 16, 2, 1000
    config = {"model_type": "llama", "vocab_size": vocab, "hidden_size": d, "intermediate_size": 128,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": 2,
              "max_position_embeddings": 256}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    trace = capture_hf(tmp_path, task="train", seq=seq, batch=batch, dtype="float32")
    model, _ = build_model(load_config(tmp_path), "float32")
    n_params = sum(p.numel() for p in model.parameters())
    tokens = batch * seq
    norms = (2 * layers + 1) * d
    matmul_params = n_params - vocab * d - norms
    assert trace.total_flops == 6 * matmul_params * tokens + 14 * layers * seq * d * tokens


@pytest.mark.parametrize("preset", ["gpt2-small", "mistral-7b"])
def test_the_analytic_generator_computes_the_captured_flops(preset: str) -> None:
    kw = {"layers": 2, "iterations": 2, "seed": 3}
    analytic = generate_trace("transformer-train", preset, method="analytic", **kw)
    captured = generate_trace("transformer-train", preset, method="captured", **kw)
    assert analytic.has_costs and captured.has_costs
    assert analytic.total_flops == captured.total_flops
    # bytes touched differ only by the elementwise chains the analytic trace folds into fewer ops
    assert 0.5 < analytic.op_bytes.sum() / captured.op_bytes.sum() <= 1.0


def test_op_costs_round_trip_and_are_checked(small_train_trace: Trace, tmp_path: Path) -> None:
    trace = small_train_trace
    assert trace.has_costs and trace.op_flops.shape == (trace.n_ops,) and trace.total_flops > 0
    path = trace.save(tmp_path / "t.npz")
    back = Trace.load(path)
    assert np.array_equal(back.op_flops, trace.op_flops) and np.array_equal(back.op_bytes, trace.op_bytes)
    assert back.meta["cost_hash"] == trace.meta["cost_hash"]
    # the costs do not change what the trace replays: same content hash without them
    columns = {n: getattr(trace, n) for n in ("tensor_id", "size", "op", "kind", "layer", "phase", "op_index", "iteration")}
    assert Trace.from_arrays(columns, trace.meta).content_hash == trace.content_hash
    # an edited cost column is caught on load
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    members["op_flops"] = members["op_flops"].copy()
    members["op_flops"][0] += 1
    edited = tmp_path / "edited.npz"
    np.savez_compressed(edited, **members)
    with pytest.raises(TraceError, match="op cost hash mismatch"):
        Trace.load(edited)
    with pytest.raises(TraceError, match="one value per op"):
        Trace.from_arrays({**columns, "op_flops": trace.op_flops[:-1], "op_bytes": trace.op_bytes[:-1]}, {})
    with pytest.raises(TraceError, match="both"):
        Trace.from_arrays({**columns, "op_flops": trace.op_flops}, {})
    with pytest.raises(TraceError, match="non-negative"):
        Trace.from_arrays({**columns, "op_flops": -trace.op_flops - 1, "op_bytes": trace.op_bytes}, {})


def _hand_trace(with_costs: bool = True) -> Trace:
    """Two tensors of 10 bytes fit. Iteration 0: write a, write b. Iteration 1: read c (fetch 10, write back a: 10),
    read a and d together (fetch 20, write back b: 10, c is clean)."""
    rows = [  # tensor, op, op_index, iteration
        (0, Op.WRITE, 0, 0), (1, Op.WRITE, 1, 0),
        (2, Op.READ, 2, 1),
        (0, Op.READ, 3, 1), (3, Op.READ, 3, 1),
    ]  # fmt: skip
    a = np.array(rows, dtype=np.int64)
    n = len(rows)
    arrays = {"tensor_id": a[:, 0], "size": np.full(n, 10), "op": a[:, 1], "kind": np.full(n, Kind.ACTIVATION),
              "layer": np.zeros(n), "phase": np.full(n, Phase.FORWARD), "op_index": a[:, 2], "iteration": a[:, 3]}  # fmt: skip
    if with_costs:
        arrays |= {"op_flops": np.array([0, 0, 4e12, 8e12]), "op_bytes": np.array([10, 10, 10, 20])}
    return Trace.from_arrays(arrays, {"workload": "hand", "dtype": "bfloat16"})


def test_stall_bytes_are_the_larger_direction_per_op_in_the_steady_state() -> None:
    prepared = prepare(_hand_trace())
    assert prepared.steady_from == 2 and prepared.steady_steps == 1
    r = simulate(prepared, "lru", 20)
    assert (r.bytes_in, r.bytes_out) == (30, 20)
    assert r.stall_bytes == max(10, 10) + max(20, 10)
    model = StepModel("h100-sxm", compute_efficiency=0.5, link_efficiency=1.0)
    st = step_time(prepared, r.stall_bytes, model)
    acc = get_accelerator("h100-sxm")
    compute = (4e12 + 8e12) / (0.5 * acc.peak_flops("bfloat16"))  # both steady ops are compute-bound
    assert st.compute_s == pytest.approx(compute)
    assert st.stall_s == pytest.approx(30 / (64e9))  # pcie5-x16, the H100's own link
    assert st.step_s == pytest.approx(st.compute_s + st.stall_s)
    assert compute_floor(prepared, model).step_s == pytest.approx(compute)
    # the same run in classic mode: no ops to time, and stall bytes are the bytes fetched
    classic = prepare(_hand_trace(), "classic")
    assert step_time(classic, 0) is None and "classic" in unknown_reason(classic)
    assert simulate(classic, "lru", 20).stall_bytes == simulate(classic, "lru", 20).bytes_in


def test_a_trace_without_op_costs_still_replays_and_says_its_step_time_is_unknown() -> None:
    prepared = prepare(_hand_trace(with_costs=False))
    r = simulate(prepared, "lru", 20)
    assert r.bytes_in == 30 and step_time(prepared, r.stall_bytes) is None
    assert "no FLOPs" in unknown_reason(prepared)


def test_step_time_is_computed_for_every_policy_and_lru_is_the_slowest_here(small_train_trace: Trace) -> None:
    prepared = prepare(small_train_trace)
    cap = headroom_capacity(prepared, 0.2)
    times = {p: step_time(prepared, simulate(prepared, p, cap).stall_bytes) for p in ("lru", "belady", "next-use")}
    floor = compute_floor(prepared)
    for st in times.values():
        assert st.step_s > floor.step_s and st.compute_s == floor.compute_s and st.steps == 1
    assert times["belady"].step_s < times["lru"].step_s


def test_accelerator_presets() -> None:
    assert {"h100-sxm", "a100-80gb", "l4"} <= set(ACCELERATORS)
    h100 = get_accelerator("h100-sxm")
    assert h100.peak_flops("bfloat16") == pytest.approx(989.4e12) and h100.peak_flops("float16") == h100.peak_flops("bfloat16")
    assert get_accelerator("a100-80gb").peak_flops("float8_e4m3fn") == pytest.approx(312e12)  # no FP8: the next wider
    with pytest.raises(ValueError, match="unknown accelerator"):
        get_accelerator("tpu")
    with pytest.raises(ValueError, match="link_efficiency"):
        StepModel(link_efficiency=0)


def test_simulate_cli_rows_carry_step_time(small_train_trace: Trace, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from envs.cli.simulate_cli import main

    path = small_train_trace.save(tmp_path / "t.npz")
    assert main(["--trace", str(path), "--policy", "lru", "belady", "--headroom", "0.2", "--json", "--accelerator", "l4"]) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)}
    prepared = prepare(small_train_trace)
    model = StepModel("l4")
    for row in rows.values():
        st = step_time(prepared, row["stall_bytes"], model)
        assert row["step_s"] == pytest.approx(st.step_s) and row["device"] == "l4/pcie4-x16"
    assert rows["lru"]["speedup_step_vs_lru"] == 1.0
    assert rows["belady"]["speedup_step_vs_lru"] == pytest.approx(rows["lru"]["step_s"] / rows["belady"]["step_s"])
    assert main(["--trace", str(path), "--policy", "lru", "--headroom", "0.2"]) == 0
    assert "s/step" in capsys.readouterr().out


def test_trace_info_json_carries_total_flops(small_train_trace: Trace, tmp_path: Path, capsys) -> None:
    from envs.cli.trace_cli import main

    path = small_train_trace.save(tmp_path / "t.npz")
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_flops"] == small_train_trace.total_flops and info["dtype"] == "bfloat16"


def test_env_info_at_the_end_carries_step_time(small_train_trace: Trace) -> None:
    env = gym.make("tensorcache/Eviction-v1", trace=small_train_trace, capacity=0.6, accelerator="h100-sxm")
    _, info = env.reset(seed=0)
    assert "step_s" not in info
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(0)
        done = terminated or truncated
    prepared = prepare(small_train_trace)
    model = StepModel("h100-sxm")
    assert info["step_s"] == pytest.approx(step_time(prepared, info["result"].stall_bytes, model).step_s)
    lru = simulate(prepared, "lru", info["capacity_bytes"])
    assert info["lru_step_s"] == pytest.approx(step_time(prepared, lru.stall_bytes, model).step_s)
    assert info["speedup_step_vs_lru"] == pytest.approx(info["lru_step_s"] / info["step_s"])


def test_calibrate_device_says_in_one_line_when_there_is_no_gpu(capsys: pytest.CaptureFixture) -> None:
    from eval.calibrate_device import main

    rc = main(["--repeats", "2", "--copy-mib", "64", "--matmul-n", "1024"])
    out = capsys.readouterr().out
    if torch.cuda.is_available():  # a lent GPU: the figures come out
        assert rc == 0 and "TFLOP/s" in out and "GB/s" in out
    else:
        assert rc == 2 and out.count("\n") == 1 and "no CUDA GPU" in out
