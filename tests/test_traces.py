"""Trace generation, formats and validation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.capture import AccessRecorder, Registry, build_trace
from envs.cli.trace_cli import main as traces_main
from envs.trace import Kind, Op, Trace, TraceError
from envs.trace.formats import read_csv, read_oracle_general, write_csv, write_oracle_general
from envs.trace.stats import compare, reuse_distances, trace_stats
from envs.workloads import WORKLOADS, WorkloadError, generate_trace
from envs.workloads.decoder_model import PRESETS as DECODER_PRESETS
from envs.workloads.decoder_model import PUBLISHED_PARAMS, DecoderLM
from envs.workloads.resnet_model import PRESETS as RESNET_PRESETS
from envs.workloads.resnet_model import PUBLISHED_PARAMS as RESNET_PARAMS
from envs.workloads.resnet_model import ResNet


@pytest.mark.parametrize("preset", sorted(DECODER_PRESETS))
def test_decoder_presets_match_published_parameter_counts(preset: str) -> None:
    cfg = DECODER_PRESETS[preset]
    assert cfg.n_params() == PUBLISHED_PARAMS[preset]
    with torch.device("meta"):
        model = DecoderLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[preset]


@pytest.mark.parametrize("preset", sorted(RESNET_PRESETS))
def test_resnet_presets_match_torchvision_parameter_counts(preset: str) -> None:
    with torch.device("meta"):
        model = ResNet(RESNET_PRESETS[preset])
    assert sum(p.numel() for p in model.parameters()) == RESNET_PARAMS[preset]


@pytest.mark.parametrize(
    ("workload", "preset", "layers", "expected_params"),
    [
        ("transformer-train", "gpt2-small", None, PUBLISHED_PARAMS["gpt2-small"]),
        ("cnn-train", "resnet50", None, RESNET_PARAMS["resnet50"]),
        ("transformer-train", "mistral-7b", 2, None),
        ("transformer-infer", "mistral-7b", 2, None),
        ("moe-infer", "mixtral-8x7b", 2, None),
    ],
)
def test_trace_weight_bytes_equal_parameter_bytes(workload, preset, layers, expected_params) -> None:
    trace = generate_trace(workload, preset, layers=layers, iterations=1, seed=0)
    cfg = DECODER_PRESETS.get(preset)
    if expected_params is None:
        import dataclasses

        expected_params = dataclasses.replace(cfg, n_layers=layers).n_params()
    itemsize = 4 if workload == "cnn-train" else 2
    assert trace.bytes_by_kind()["weight"] == expected_params * itemsize


def test_analytic_weight_bytes_and_kinds(small_train_trace: Trace) -> None:
    analytic = generate_trace("transformer-train", "mistral-7b", layers=2, iterations=2, seed=0, method="analytic")
    assert analytic.bytes_by_kind()["weight"] == small_train_trace.bytes_by_kind()["weight"]
    assert analytic.bytes_by_kind()["optimizer_state"] > 0 and analytic.bytes_by_kind()["gradient"] > 0


def test_analytic_close_to_captured() -> None:
    """KS D of reuse distances and sizes below 0.2: about twice what two captured seeds differ by."""
    kw = {"layers": 4, "iterations": 2}
    cap0 = generate_trace("transformer-train", "gpt2-small", seed=0, **kw)
    cap1 = generate_trace("transformer-train", "gpt2-small", seed=1, **kw)
    ana0 = generate_trace("transformer-train", "gpt2-small", seed=0, method="analytic", **kw)
    vs_captured = compare(ana0, cap0)
    assert vs_captured.ks_d_reuse < 0.2
    assert vs_captured.ks_d_size < 0.2
    assert compare(cap1, cap0).ks_d_reuse < 0.2


def test_same_seed_same_trace_distinct_seeds_differ(small_train_trace: Trace) -> None:
    again = generate_trace("transformer-train", "mistral-7b", layers=2, iterations=2, seed=0)
    other = generate_trace("transformer-train", "mistral-7b", layers=2, iterations=2, seed=3)
    assert again.content_hash == small_train_trace.content_hash
    assert other.content_hash != small_train_trace.content_hash


def test_persistent_tensors_keep_ids_across_iterations(small_train_trace: Trace) -> None:
    t = small_train_trace
    for kind in (Kind.WEIGHT, Kind.GRADIENT, Kind.OPTIMIZER_STATE):
        it0 = set(t.tensor_id[(t.kind == kind) & (t.iteration == 0)].tolist())
        it1 = set(t.tensor_id[(t.kind == kind) & (t.iteration == 1)].tolist())
        assert it0 and it0 == it1
    acts0 = set(t.tensor_id[(t.kind == Kind.ACTIVATION) & (t.iteration == 0)].tolist())
    acts1 = set(t.tensor_id[(t.kind == Kind.ACTIVATION) & (t.iteration == 1)].tolist())
    assert acts0 and not acts0 & acts1


def test_kv_cache_blocks_are_separate_tensors(small_serve_trace: Trace) -> None:
    t = small_serve_trace
    kv = t.kind == Kind.KV_CACHE
    block_bytes = 16 * 12 * 64 * 2  # tokens * heads * head_dim * bf16
    assert set(np.unique(t.size[kv]).tolist()) == {block_bytes}
    assert len(np.unique(t.tensor_id[kv])) > 10


def test_view_ops_record_nothing_and_compute_ops_record_reads_and_writes() -> None:
    x = torch.empty(64, 32, device="meta")
    rec = AccessRecorder(n_layers=0)
    with rec:
        y = x.view(32, 64).t().expand(64, 32)
        assert rec.n_ops == 0
        z = x + y
    rec.close()
    registry = Registry()
    trace = build_trace(rec, registry, {"workload": "unit"})
    assert rec.n_ops == 1
    assert trace.op.tolist()[:2] == [Op.READ, Op.WRITE]  # x and y share a storage: one read
    assert trace.size[0] == 64 * 32 * 4 and z.shape == (64, 32)


def test_foreach_ops_become_one_op_per_tensor() -> None:
    params = [torch.empty(8, device="meta") for _ in range(3)]
    rec = AccessRecorder(n_layers=0)
    with rec:
        torch._foreach_mul_(params, 0.5)
    assert rec.n_ops == 3


def test_oracle_general_round_trip(tmp_path, small_train_trace: Trace) -> None:
    path = write_oracle_general(small_train_trace, tmp_path / "t.bin")
    back = read_oracle_general(path)
    req = small_train_trace.requests()
    assert len(back) == req.size
    np.testing.assert_array_equal(back.size, small_train_trace.size[req])
    # same id structure (ids renumbered by first appearance on both sides)
    from envs.trace import renumber

    np.testing.assert_array_equal(back.tensor_id, renumber(small_train_trace.tensor_id[req]))


def _first_seen_reference(keys: np.ndarray) -> np.ndarray:
    """Dense ids by first appearance, the slow way (sort-based)."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


@pytest.mark.parametrize("keys", ["small", "sparse", "small-then-sparse"])
def test_oracle_general_reader_renumbers_chunk_by_chunk(tmp_path, monkeypatch, keys: str) -> None:
    import envs.trace.formats.oracle_general as og

    rng = np.random.default_rng(7)
    objects = {"small": np.arange(400), "sparse": rng.integers(1, 2**63, size=400), "small-then-sparse": np.arange(400)}
    objects = objects[keys].astype(np.uint64)
    if keys == "small-then-sparse":
        objects[200:] = rng.integers(2**40, 2**63, size=200).astype(np.uint64) | np.uint64(2**63)  # negative as int64
    object_size = rng.integers(1, 2**32, size=400, dtype=np.int64)
    object_size[::37] = 0  # zero-size requests are skipped, as libCacheSim does
    pick = rng.integers(0, 400, size=5_000)
    if keys == "small-then-sparse":
        pick[:2_500] %= 200  # the sparse keys arrive in a later chunk: the direct array hands over to the table
    pick[4_000] = pick[1] = 1  # object 1 (size > 0) comes first at record 1 and again in the 13th chunk
    records = np.zeros(pick.size, dtype=og.RECORD)
    records["id"], records["size"] = objects[pick], object_size[pick]
    records.tofile(tmp_path / "t.bin")
    monkeypatch.setattr(og, "READ_CHUNK", 333)
    trace = read_oracle_general(tmp_path / "t.bin")
    kept = records[records["size"] > 0]
    np.testing.assert_array_equal(trace.tensor_id, _first_seen_reference(kept["id"]))
    np.testing.assert_array_equal(trace.size, kept["size"])
    records["size"][4_000] ^= 1  # the same object with another size
    records.tofile(tmp_path / "t.bin")
    with pytest.raises(TraceError, match=f"object {int(objects[1])} has two sizes \\(record 4000\\)"):
        read_oracle_general(tmp_path / "t.bin")


def test_lean_columns_hash_and_save_as_their_int64_copies(tmp_path) -> None:
    from envs.trace import COLUMNS, classic_trace

    ids = np.array([0, 1, 0, 2, 1], dtype=np.int32)
    lean = classic_trace(ids, np.array([5, 7, 5, 9, 7], dtype=np.uint32), {"workload": "x"})
    assert lean.tensor_id.dtype == np.int32 and lean.size.dtype == np.uint32
    assert lean.op.strides == (0,) and lean.layer.strides == (0,)  # constants held once, not n times
    wide = Trace.from_arrays({name: np.array(getattr(lean, name), dtype=dt) for name, dt in COLUMNS.items()}, lean.meta)
    assert wide.tensor_id.dtype == np.int64 and wide.op.strides == (1,)
    assert lean.content_hash == wide.content_hash and lean.access_hash == wide.access_hash
    back = Trace.load(lean.save(tmp_path / "t.npz"))
    assert back.content_hash == lean.content_hash and back.tensor_id.dtype == np.int64
    with pytest.raises(TraceError, match="op_index values must be in"):  # uint64 does not fit int64: range-checked
        Trace.from_arrays({**{n: getattr(lean, n) for n in COLUMNS}, "op_index": np.array([0, 1, 2, 3, 2**63], np.uint64)}, {})


def test_renumbering_refuses_more_requests_than_its_output_holds() -> None:
    from envs.trace.scan_kernels import RequestRenumbering

    renumbering = RequestRenumbering(np.empty(3, dtype=np.int32))
    assert renumbering.add(np.array([9, 4]), np.array([1, 2], dtype=np.uint32)) == -1
    with pytest.raises(ValueError, match="do not fit: 1 places left"):
        renumbering.add(np.array([9, 4]), np.array([1, 2], dtype=np.uint32))
    np.testing.assert_array_equal(renumbering.sizes(), [1, 2])


def test_csv_round_trip_is_lossless(tmp_path, small_serve_trace: Trace) -> None:
    back = read_csv(write_csv(small_serve_trace, tmp_path / "t.csv"))
    assert back.content_hash == small_serve_trace.content_hash


def test_npz_round_trip_and_tamper_detection(tmp_path, small_serve_trace: Trace) -> None:
    path = small_serve_trace.save(tmp_path / "t.npz")
    assert Trace.load(path).content_hash == small_serve_trace.content_hash
    data = dict(np.load(path))
    data["size"] = data["size"] * 2
    np.savez_compressed(tmp_path / "bad.npz", **data)
    with pytest.raises(TraceError, match="hash mismatch"):
        Trace.load(tmp_path / "bad.npz")


def test_malformed_files_are_rejected(tmp_path) -> None:
    (tmp_path / "trunc.bin").write_bytes(b"\x00" * 30)
    with pytest.raises(TraceError, match="not a whole number"):
        read_oracle_general(tmp_path / "trunc.bin")
    (tmp_path / "bad.csv").write_text("tensor_id,size\n1,2\n")
    with pytest.raises(TraceError, match="header"):
        read_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("tensor_id,size,op,kind,layer,phase,op_index,iteration\n0,8,EAT,weight,0,forward,0,0\n")
    with pytest.raises(TraceError, match="bad op"):
        read_csv(tmp_path / "bad2.csv")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceError, match="not a readable"):
        Trace.load(tmp_path / "junk.npz")


def test_bad_generator_arguments() -> None:
    with pytest.raises(WorkloadError, match="valid: transformer-train"):
        generate_trace("nope", "x")
    with pytest.raises(WorkloadError, match="valid: "):
        generate_trace("cnn-train", "mistral-7b")
    with pytest.raises(WorkloadError, match="layers must be"):
        generate_trace("transformer-train", "gpt2-small", layers=0)
    with pytest.raises(WorkloadError, match="no 'analytic'"):
        generate_trace("cnn-train", "resnet50", method="analytic")
    assert set(WORKLOADS) >= {"transformer-train", "transformer-infer", "cnn-train", "moe-infer"}


def test_cli_generate_info_and_unknown_names(tmp_path, capsys) -> None:
    out = tmp_path / "g.npz"
    assert (
        traces_main(
            [
                "generate",
                "--workload",
                "transformer-train",
                "--preset",
                "gpt2-small",
                "--layers",
                "1",
                "--method",
                "analytic",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert traces_main(["info", str(out), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["n_accesses"] > 0 and info["bytes_by_kind"]["weight"] > 0
    # GPT-2 small cut to one block: 7,087,872 per block + 38,597,376 (wte) + 786,432 (wpe) + 1,536 (ln_f)
    assert info["parameters"] == 7_087_872 + 38_597_376 + 786_432 + 1_536
    with pytest.raises(SystemExit) as exc:  # tyro refuses a workload outside the Literal choices
        traces_main(["generate", "--workload", "bogus", "--preset", "x", "--out", str(out)])
    assert exc.value.code == 2
    capsys.readouterr()
    assert traces_main(["generate", "--workload", "transformer-train", "--preset", "nope", "--out", str(out)]) == 2
    assert "valid:" in capsys.readouterr().err
    # converting a trace onto its own input is refused and leaves the input intact
    assert traces_main(["export", str(out), "--format", "csv", "--out", str(out)]) == 2
    assert "over its own input" in capsys.readouterr().err
    assert traces_main(["info", str(out)]) == 0


def test_reuse_distance_definition() -> None:
    from tests.conftest import make_classic_trace

    t = make_classic_trace(np.array([0, 1, 2, 1, 0, 0]), np.ones(3, dtype=np.int64))
    assert reuse_distances(t).tolist() == [-1, -1, -1, 1, 2, 0]
    s = trace_stats(t)
    assert s.n_requests == 6 and 0 < s.temporal_locality <= 1


def test_batch_option_caps_training_batches_and_is_refused_elsewhere() -> None:
    t = generate_trace("cnn-train", "resnet50", layers=11, iterations=3, seed=4, batch=4)
    assert {b for b, _ in t.meta["shapes"]} <= {2, 4}
    assert t.meta["spec"]["batch"] == 4
    assert t.content_hash != generate_trace("cnn-train", "resnet50", layers=11, iterations=3, seed=4).content_hash
    with pytest.raises(WorkloadError, match="no batch option"):
        generate_trace("transformer-infer", "gpt2-small", layers=1, iterations=2, batch=4)
    with pytest.raises(WorkloadError, match="batch must be a positive integer"):
        generate_trace("cnn-train", "resnet50", layers=11, batch=0)


def test_requests_option_sets_the_serving_batch_and_is_refused_elsewhere(small_serve_trace: Trace, tmp_path) -> None:
    default = small_serve_trace.meta["requests"]
    one = generate_trace("transformer-infer", "gpt2-small", layers=2, iterations=3, seed=0, requests=1)
    many = generate_trace("transformer-infer", "gpt2-small", layers=2, iterations=3, seed=0, requests=default + 4)
    assert (one.meta["requests"], many.meta["requests"]) == (1, default + 4)
    assert len(one) < len(small_serve_trace) < len(many)
    # the first request's prompt is the seeded one either way
    assert one.meta["prompt_lengths"][0] == small_serve_trace.meta["prompt_lengths"][0]
    assert "requests" not in small_serve_trace.meta["spec"]  # traces made without the knob keep their hashes
    with pytest.raises(WorkloadError, match="no requests option"):
        generate_trace("cnn-train", "resnet50", layers=11, requests=2)
    with pytest.raises(WorkloadError, match="requests must be a positive integer"):
        generate_trace("transformer-infer", "gpt2-small", layers=1, requests=0)
    from envs.cli.trace_cli import main

    out = tmp_path / "one.npz"
    assert main(["generate", "--workload", "transformer-infer", "--preset", "gpt2-small", "--layers", "2",
                 "--iterations", "3", "--requests", "1", "--out", str(out)]) == 0  # fmt: skip
    assert Trace.load(out).content_hash == one.content_hash


@pytest.mark.parametrize(
    ("workload", "preset", "kw"),
    [
        ("transformer-train", "gpt2-small", {"layers": 4, "iterations": 3}),
        ("transformer-infer", "gpt2-small", {"layers": 3, "iterations": 5}),
        ("cnn-train", "resnet50", {"iterations": 3}),
    ],
)
def test_access_estimates_match_the_generated_traces(workload: str, preset: str, kw: dict) -> None:
    from envs.workloads import estimate_accesses

    assert estimate_accesses(workload, preset, **kw) == len(generate_trace(workload, preset, **kw))


def test_an_access_limit_stops_generation_early() -> None:
    from envs.capture.recorder import AccessLimitError, access_limit

    for method in ("captured", "analytic"):
        with access_limit(1000), pytest.raises(AccessLimitError, match="past 1000 accesses"):
            generate_trace("transformer-train", "gpt2-small", layers=2, iterations=2, method=method)
    assert len(generate_trace("transformer-train", "gpt2-small", layers=2, iterations=2, method="analytic")) > 1000


def test_the_cli_refuses_a_trace_past_its_access_limit(tmp_path, capsys: pytest.CaptureFixture) -> None:
    """`generate --layers 10000` used to write a 16 MB trace the Copilot refuses; the CLI stops at the same limit
    (or at --max-accesses) and writes nothing."""
    out = tmp_path / "big.npz"
    args = ["generate", "--workload", "transformer-train", "--preset", "gpt2-small", "--method", "analytic", "--out", str(out)]
    assert traces_main([*args, "--layers", "2", "--max-accesses", "500"]) == 2
    assert "past 500 accesses" in capsys.readouterr().err and not out.exists()
    assert traces_main([*args, "--layers", "2", "--max-accesses", "0"]) == 0 and out.exists()
