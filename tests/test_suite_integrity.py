"""The suites' yardstick: splits that never share a trace, held-out families, and scores that cannot exceed 1."""

from __future__ import annotations

import csv

import pytest

from agents import builtin_registry
from envs.benchmarks import TCB_V2, TCB_V3, Suite
from eval.leaderboard.replay import validate
from eval.leaderboard.run import LeaderboardRun, resolve_agents, write_outputs
from tests.conftest import family, make_suite


@pytest.mark.slow  # generates the whole suite
@pytest.mark.parametrize("suite", [TCB_V2, TCB_V3], ids=lambda s: s.name)
def test_every_split_holds_distinct_traces(suite: Suite) -> None:
    """Distinct by the access columns alone (metadata such as the seed excluded), across all splits."""
    seen: dict[str, tuple[str, str, int]] = {}
    for split in suite.seeds:
        for inst in suite.instances(split):
            if inst.headroom != (suite.ood_headrooms if split == "test-ood" else suite.headrooms)[0]:
                continue  # the trace does not depend on the capacity
            h = inst.trace().access_hash
            assert h not in seen, f"{split} {inst.family.name} seed {inst.seed} repeats {seen[h]}"
            seen[h] = (split, inst.family.name, inst.seed)
    n_traces = len(suite.families) * sum(len(v) for k, v in suite.seeds.items() if k != "test-ood")
    assert len(seen) == n_traces + len(suite.ood_families) * len(suite.seeds["test-ood"])


@pytest.mark.parametrize("suite", [TCB_V2, TCB_V3], ids=lambda s: s.name)
def test_test_ood_families_and_capacities_are_held_out(suite: Suite) -> None:
    in_dist = {(f.workload, f.preset, f.batch) for f in suite.families}
    assert not in_dist & {(f.workload, f.preset, f.batch) for f in suite.ood_families}
    assert not set(suite.headrooms) & set(suite.ood_headrooms)
    held = set(suite.seeds["test"]) | set(suite.seeds["test-ood"])
    assert not held & (set(suite.seeds["train"]) | set(suite.seeds["validation"]))
    assert suite.describe()["held_out_splits"] == ["test", "test-ood"]


def test_tcb_v3_trains_three_steps_and_holds_out_hugging_face_architectures() -> None:
    """tcb-v3 keeps tcb-v2's in-distribution splits (the same traces), runs every training family at least three
    steps, and its test-ood holds two architectures traced from configs (training and serving each)."""
    assert TCB_V3.families == TCB_V2.families and TCB_V3.seeds == TCB_V2.seeds
    assert all((f.iterations or 3) >= 3 for f in (*TCB_V3.families, *TCB_V3.ood_families) if f.workload.endswith("train"))
    from envs.benchmarks.suite import HF_WORKLOADS

    hf = [f for f in TCB_V3.ood_families if f.workload in HF_WORKLOADS]
    assert {f.preset for f in hf} == {"pythia-1.4b", "gemma-2b"}
    assert {(f.preset, HF_WORKLOADS[f.workload]) for f in hf} == {(p, t) for p in ("pythia-1.4b", "gemma-2b")
                                                                  for t in ("train", "infer")}  # fmt: skip
    inst = next(i for i in TCB_V3.instances("test-ood") if i.family.name == "gemma-serve")
    trace = inst.trace()
    assert trace.meta["spec"] == inst.spec and len(trace) > 0
    assert len({i.trace().access_hash for i in TCB_V3.instances("test-ood") if i.family.name == "pythia-train"}) == 3


@pytest.fixture(scope="module")
def bound_suite() -> Suite:
    return make_suite("mini-v2", {"train": (0,), "test": (11, 12), "test-ood": (21,)}, anchor="lower-bound",
                      ood_families=(family("gpt2-train", batch=4),), ood_headrooms=(0.3,), min_lru_gap=0.05)  # fmt: skip


def test_bound_anchored_leaderboard_scores_at_most_one_and_replays(bound_suite: Suite, tmp_path) -> None:
    agents = resolve_agents("lru,mru,next-use,belady", builtin_registry(), bound_suite)
    assert "best-offline" in agents
    all_agents = resolve_agents("all", builtin_registry(), bound_suite)
    assert {"cost-belady", "lp-guided", "best-offline"} <= set(all_agents)
    lb = LeaderboardRun(bound_suite, ("test", "test-ood"), agents)
    rows = lb.run()
    assert {r["split"] for r in rows} == {"test", "test-ood"}
    for r in rows:
        assert r["norm_byte_score"] <= 1.0, r
        assert r["anchor_bytes"] <= r["bytes_moved"]
    best = {(r["task"], r["seed"]): r["bytes_moved"] for r in rows if r["agent"] == "best-offline"}
    for r in rows:
        if r["agent"] == "belady":
            assert best[(r["task"], r["seed"])] <= r["bytes_moved"]
    board = write_outputs(lb, tmp_path / "lb")
    assert set(board["splits"]) == {"test", "test-ood"}
    assert board["splits"]["test"]["anchor"] == "lower-bound"
    assert "lower bound" in (tmp_path / "lb" / "leaderboard.md").read_text()
    assert validate(tmp_path / "lb" / "results.csv", bound_suite) == []
    # a best-offline row with forged raw counts is caught by the replay of the references
    table = list(csv.DictReader((tmp_path / "lb" / "results.csv").open()))
    row = next(r for r in table if r["agent"] == "best-offline")
    row["bytes_in"] = str(int(row["bytes_in"]) - 1)
    with (tmp_path / "forged.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    assert any("bytes_in" in p for p in validate(tmp_path / "forged.csv", bound_suite))
