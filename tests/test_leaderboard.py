"""Suite, metrics, leaderboard outputs and replay validation (on a miniature suite)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from eval.leaderboard.runner import LeaderboardRun, resolve_agents, validate, write_outputs
from eval.metrics import aggregate, normalized
from eval.suites import TCB_V1, Family, Suite, get_suite


@pytest.fixture()
def mini_suite(tmp_path) -> Suite:
    suite = Suite(
        name="mini",
        version="0",
        families=(
            Family("mistral-train", "transformer-train", "mistral-7b", layers=2, iterations=2),
            Family("gpt2-serve", "transformer-infer", "gpt2-small", layers=2, iterations=3),
        ),
        headrooms=(0.2, 0.5),
        seeds={"train": (0,), "test": (11, 12)},
    )
    # keep the trace cache inside the test's temporary folder
    original = suite.instances

    def instances(split, cache_dir=tmp_path / "traces"):
        return original(split, cache_dir)

    object.__setattr__(suite, "instances", instances)
    return suite


def test_normalized_score_and_aggregate() -> None:
    assert normalized(100, 100, 50, True) == 0.0
    assert normalized(50, 100, 50, True) == 1.0
    assert normalized(40, 100, 50, True) == pytest.approx(1.2)  # unclipped
    assert np.isnan(normalized(1, 1, 1, True))
    agg = aggregate([np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7])])
    assert agg["ci_low"] <= agg["iqm"] <= agg["ci_high"]


def test_tcb_v1_covers_every_family_and_holds_out_test_seeds() -> None:
    workloads = {f.workload for f in TCB_V1.families}
    assert workloads == {"transformer-train", "transformer-infer", "cnn-train", "moe-infer"}
    assert not set(TCB_V1.seeds["test"]) & (set(TCB_V1.seeds["train"]) | set(TCB_V1.seeds["validation"]))
    with pytest.raises(ValueError, match="valid: tcb-v1"):
        get_suite("tcb-v9")
    with pytest.raises(ValueError, match="unknown agent"):
        resolve_agents("lru,oracle9000")


def test_leaderboard_run_outputs_and_replay(mini_suite: Suite, tmp_path) -> None:
    agents = resolve_agents("lru,fifo,next-use,sieve,belady")
    lb = LeaderboardRun(mini_suite, "test", agents)
    rows = lb.run(progress=False)
    out = tmp_path / "lb"
    board = write_outputs(lb, out)
    for name in (
        "results.csv",
        "leaderboard.json",
        "leaderboard.md",
        "report.html",
        "scores.png",
        "heatmap.png",
        "capacity_curves.png",
    ):
        assert (out / name).is_file()
    assert all(r["norm_byte_score"] == 0.0 for r in rows if r["agent"] == "lru")
    assert board["agents"]["lru"]["byte_score"]["iqm"] == 0.0
    assert json.loads((out / "leaderboard.json").read_text())["suite"] == "mini"
    # identical across two runs
    again = LeaderboardRun(mini_suite, "test", agents).run(progress=False)
    strip = ("walltime_s", "decisions_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in again
    ]
    assert validate(out / "results.csv", mini_suite) == []
    # a tampered row is caught
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    table[0]["bytes_moved"] = str(int(table[0]["bytes_moved"]) + 1)
    with (out / "tampered.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    assert len(validate(out / "tampered.csv", mini_suite)) == 1


def test_shipped_rows_are_used_only_when_they_match(mini_suite: Suite, tmp_path) -> None:
    from pathlib import Path

    from eval.leaderboard.entries import Entry
    from eval.leaderboard.runner import usable_precomputed

    lb = LeaderboardRun(mini_suite, "test", ["next-use", "lru", "belady"])
    lb.run(progress=False)
    write_outputs(lb, tmp_path / "lb")
    instances = mini_suite.instances("test")
    entry = Entry("next-use", "baseline", tmp_path / "lb", {"policy": "next-use", "precomputed": "results.csv"})
    rows = usable_precomputed(entry, instances)
    assert rows is not None and len(rows) == len(instances)
    table = list(csv.DictReader((tmp_path / "lb" / "results.csv").open()))
    for row in table:
        if row["agent"] == "next-use":
            row["trace_hash"] = "0" * 64  # as if the generator had changed
            break
    with (tmp_path / "stale.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    stale = Entry("next-use", "baseline", Path(tmp_path), {"policy": "next-use", "precomputed": "stale.csv"})
    assert usable_precomputed(stale, instances) is None


def test_belady_at_least_lru_on_classic_unit_size_tasks(mini_suite: Suite) -> None:
    from agents import make_policy
    from agents.runner import run_policy
    from envs.sim import headroom_capacity, prepare
    from envs.trace import Trace

    for inst in mini_suite.instances("test"):
        t = inst.trace()
        unit = Trace.from_arrays(
            {
                **{c: getattr(t, c) for c in ("tensor_id", "op", "kind", "layer", "phase", "op_index", "iteration")},
                "size": np.ones(len(t), dtype=np.int64),
            },
            {"workload": "unit"},
        )
        prepared = prepare(unit, "classic")
        cap = max(headroom_capacity(prepared, inst.headroom), 1)
        lru = run_policy(prepared, make_policy("lru"), cap).result
        bel = run_policy(prepared, make_policy("belady"), cap).result
        assert bel.n_hit >= lru.n_hit


def test_changed_generator_changes_trace_hash() -> None:
    from envs.workloads import generate_trace

    a = generate_trace("transformer-train", "gpt2-small", layers=1, method="analytic")
    b = generate_trace("transformer-train", "gpt2-small", layers=1, method="analytic")
    meta = dict(a.meta)
    meta["generator_version"] = meta["generator_version"] + 1
    from envs.trace import Trace

    bumped = Trace.from_arrays(
        {c: getattr(a, c) for c in ("tensor_id", "size", "op", "kind", "layer", "phase", "op_index", "iteration")},
        meta,
    )
    assert a.content_hash == b.content_hash != bumped.content_hash
    assert dataclasses.is_dataclass(TCB_V1)
