"""Suite, metrics, leaderboard outputs and replay validation (on a miniature suite)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from agents import builtin_registry
from envs.benchmarks import TCB_V1, Suite, get_suite
from eval.leaderboard.replay import validate
from eval.leaderboard.run import LeaderboardRun, resolve_agents, write_outputs
from eval.metrics import aggregate, normalized
from tests.conftest import family, make_suite


@pytest.fixture()
def mini_suite() -> Suite:
    families = (family("mistral-train", layers=2), family("gpt2-serve", layers=2))
    return make_suite("mini", {"train": (0,), "test": (11, 12)}, families=families, headrooms=(0.2, 0.5))


def _write_csv(path, table) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)


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
    with pytest.raises(ValueError, match="valid: tcb-v2, tcb-v3, tcb-v1"):
        get_suite("tcb-v9")
    with pytest.raises(ValueError, match="unknown agent"):
        resolve_agents("lru,oracle9000", builtin_registry())
    with pytest.raises(ValueError, match="names no agent"):
        resolve_agents(",", builtin_registry())


def test_leaderboard_run_outputs_and_replay(mini_suite: Suite, tmp_path) -> None:
    agents = resolve_agents("lru,fifo,next-use,sieve,belady", builtin_registry())
    lb = LeaderboardRun(mini_suite, "test", agents)
    rows = lb.run()
    out = tmp_path / "lb"
    board = write_outputs(lb, out)
    for name in (
        "results.csv",
        "leaderboard.json",
        "leaderboard.md",
        "report.html",
        "scores_test.png",
        "heatmap_test.png",
        "capacity_curves_test.png",
    ):
        assert (out / name).is_file()
    assert all(r["norm_byte_score"] == 0.0 for r in rows if r["agent"] == "lru")
    assert board["splits"]["test"]["agents"]["lru"]["byte_score"]["iqm"] == 0.0
    saved = json.loads((out / "leaderboard.json").read_text())
    assert saved["suite"] == "mini"
    # every agent's kind is recorded, as the registry (and so the Copilot) says, and the report groups by it
    from eval.leaderboard.entries import registry

    reg = registry()
    kinds = saved["splits"]["test"]["kinds"]
    assert kinds == {a: reg.kind(a) for a in kinds} and set(kinds) == set(board["splits"]["test"]["ranking"])
    assert kinds["lru"] == "heuristic" and kinds["belady"] == "offline"
    report = (out / "report.html").read_text()
    assert "<td>legal heuristic</td>" in report and "<td>offline reference</td>" in report
    assert "| kind |" in (out / "leaderboard.md").read_text()
    # step time: every row has it, LRU's speed-up is 1, and the board, the Markdown and the report show it
    for r in rows:
        assert r["compute_s"] < r["step_s"] and r["step_s"] == pytest.approx(r["compute_s"] + r["stall_s"])
        lru_row = next(x for x in rows if x["agent"] == "lru" and (x["task"], x["seed"]) == (r["task"], r["seed"]))
        assert r["speedup_step_vs_lru"] == pytest.approx(lru_row["step_s"] / r["step_s"])
    test_board = board["splits"]["test"]
    assert test_board["agents"]["lru"]["step_speedup_vs_lru"] == pytest.approx(1.0)
    assert test_board["agents"]["belady"]["per_task_step_s"]["mistral-train@0.2"] > 0
    assert "step speed-up vs LRU" in (out / "leaderboard.md").read_text() and "LRU s/step" in report
    # the report stands alone (figures inline), says what made it, and lists each improvement pair once
    import re

    assert 'src="data:image/png;base64,' in report and not re.search(r'<img src="[^d]', report)
    assert saved["provenance"]["versions"]["numpy"] and saved["provenance"]["created"].endswith("Z")
    assert "from commit <code>" in report and "numba" in report
    pairs = [tuple(p.split(" > ")) for p in test_board["probability_of_improvement"]]
    assert pairs and len({frozenset(p) for p in pairs}) == len(pairs)
    from eval.report import agent_styles

    styles = agent_styles([f"agent{i}" for i in range(15)])
    assert len({s["color"] for s in styles.values()}) == 15
    # identical across two runs
    again = LeaderboardRun(mini_suite, "test", agents).run()
    strip = ("walltime_s", "decisions_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in again
    ]
    assert validate(out / "results.csv", mini_suite) == []
    # a tampered row is caught
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    table[0]["bytes_in"] = str(int(table[0]["bytes_in"]) + 1)
    _write_csv(out / "tampered.csv", table)
    problems = validate(out / "tampered.csv", mini_suite)
    assert any("bytes_in" in p for p in problems)
    # an edited derived column is caught even when every raw count is right
    table = list(csv.DictReader((out / "results.csv").open()))
    table[0]["norm_byte_score"] = "2.0"
    _write_csv(out / "doctored.csv", table)
    assert [p for p in validate(out / "doctored.csv", mini_suite) if "norm_byte_score" in p]
    # an empty file and an unknown agent are refused
    (out / "empty.csv").write_text(",".join(table[0]) + "\n")
    assert validate(out / "empty.csv", mini_suite) == [f"{out / 'empty.csv'}: no rows"]
    # a forged stall count is caught, and a file from before step time is told to regenerate
    table = list(csv.DictReader((out / "results.csv").open()))
    forged = [dict(r, stall_bytes=str(int(r["stall_bytes"]) // 2)) for r in table[:1]]
    _write_csv(out / "stall.csv", forged)
    assert any("stall_bytes" in p for p in validate(out / "stall.csv", mini_suite))
    _write_csv(out / "old.csv", [{k: v for k, v in r.items() if k != "stall_bytes"} for r in table[:1]])
    assert any("missing raw column stall_bytes" in p for p in validate(out / "old.csv", mini_suite))
    table[0]["agent"] = "oracle9000"
    _write_csv(out / "unknown.csv", table)
    assert any("unknown agent" in p for p in validate(out / "unknown.csv", mini_suite))


def test_shipped_rows_are_used_only_when_they_match_and_replay(mini_suite: Suite, tmp_path) -> None:
    from pathlib import Path

    from eval.evaluate import evaluate
    from eval.leaderboard.entries import Entry
    from eval.leaderboard.shipped import ShippedRowsError, replays_needed, shipped_rows, verified_rows

    lb = LeaderboardRun(mini_suite, "test", ["next-use", "lru", "belady"])
    lb.run()
    write_outputs(lb, tmp_path / "lb")
    instances = mini_suite.instances("test")
    replays: list[int] = []

    def replay(insts):
        replays.append(len(insts))
        return evaluate(builtin_registry().make("next-use"), instances=insts, name="next-use").rows

    entry = Entry("next-use", "baseline", tmp_path / "lb", {"policy": "next-use", "precomputed": "results.csv"})
    rows = verified_rows(entry, instances, replay)
    assert rows is not None and len(rows) == len(instances) and replays == [replays_needed(len(instances))]
    table = list(csv.DictReader((tmp_path / "lb" / "results.csv").open()))
    # a stale hash (the generator changed): the rows are not used, the agent is run instead
    stale_table = [dict(r) for r in table]
    next(r for r in stale_table if r["agent"] == "next-use")["trace_hash"] = "0" * 64
    _write_csv(tmp_path / "stale.csv", stale_table)
    stale = Entry("next-use", "baseline", Path(tmp_path), {"policy": "next-use", "precomputed": "stale.csv"})
    assert shipped_rows(stale, instances) is None
    # another suite's rows of the very same instances carry over (a later suite that keeps a split keeps its rows),
    # one file may hold both suites' rows, and another suite's rows of other traces are not used
    mine = [r for r in table if r["agent"] == "next-use"]
    older = [dict(r, suite="an-older-suite") for r in mine]
    for name, table_rows, usable in (("older.csv", older, True), ("both.csv", older + mine, True),
                                     ("moved.csv", [dict(r, trace_hash="0" * 64) for r in older], False)):  # fmt: skip
        _write_csv(tmp_path / name, table_rows)
        carried = Entry("next-use", "baseline", Path(tmp_path), {"policy": "next-use", "precomputed": name})
        assert (shipped_rows(carried, instances) is not None) == usable, name
    # a doctored score is never used: derived columns are recomputed from raw counts
    doctored_table = [dict(r) for r in table]
    for r in doctored_table:
        if r["agent"] == "next-use":
            r["norm_byte_score"] = "2.0"
    _write_csv(tmp_path / "doctored.csv", doctored_table)
    doctored = Entry("next-use", "baseline", Path(tmp_path), {"policy": "next-use", "precomputed": "doctored.csv"})
    assert all(r["norm_byte_score"] < 2.0 for r in verified_rows(doctored, instances, replay))
    # doctored raw counts that look plausible: the replayed sample catches them and the entry is refused
    forged = [dict(r) for r in table]
    for r in forged:
        if r["agent"] == "next-use":
            r["n_hit"] = str(int(r["n_hit"]) - 1)
    _write_csv(tmp_path / "forged.csv", forged)
    fake = Entry("next-use", "baseline", Path(tmp_path), {"policy": "next-use", "precomputed": "forged.csv"})
    with pytest.raises(ShippedRowsError, match="does not replay"):
        verified_rows(fake, instances, replay)
    # a whole run schedules the replays with the other agents' work: same rows, and a forgery still refused
    from eval.leaderboard.entries import Discovery

    timing = ("walltime_s", "decisions_per_s")
    shipped_run = LeaderboardRun(mini_suite, "test", ["next-use", "lru", "belady"], discovery=Discovery({"next-use": entry}))
    shipped_run.run()
    assert shipped_run.shipped_agents == ["next-use"]
    assert [{k: v for k, v in r.items() if k not in timing} for r in shipped_run.rows] == [
        {k: v for k, v in r.items() if k not in timing} for r in lb.rows
    ]
    refusing = LeaderboardRun(mini_suite, "test", ["next-use", "lru"], discovery=Discovery({"next-use": fake}))
    assert all(r["agent"] == "lru" for r in refusing.run())  # the others go on
    assert "does not replay" in refusing.refused["next-use"] and "next-use" not in refusing.board()["splits"]["test"]["agents"]


def test_belady_at_least_lru_on_classic_unit_size_tasks(mini_suite: Suite) -> None:
    from agents import make_policy
    from agents.rollout import run_policy
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


def test_the_replay_sample_is_large_enough_and_unpredictable() -> None:
    from math import ceil, comb

    from eval.leaderboard.shipped import replay_sample, replays_needed

    assert [replays_needed(n) for n in (21, 42, 63)] == [16, 25, 29]
    for n in (5, 21, 42, 63, 200):
        k, forged = replays_needed(n), max(1, ceil(n / 10))
        assert comb(n - forged, k) / comb(n, k) <= 0.01 < (comb(n - forged, k - 1) / comb(n, k - 1) if k else 1)
    suite = make_suite("mini", {"test": tuple(range(10))}, families=(family("gpt2-serve"), family("gpt2-train")))
    instances = suite.instances("test")
    samples = [replay_sample(instances, np.random.default_rng(seed), 3) for seed in range(20)]
    assert all({i.family.name for i in s} == {"gpt2-serve", "gpt2-train"} and len(s) == 3 for s in samples)
    assert len({tuple((i.task, i.seed) for i in s) for s in samples}) > 10  # the seed decides
    runs = [LeaderboardRun(suite, "test", ["lru"]) for _ in range(2)]
    assert runs[0].replay_seed != runs[1].replay_seed  # drawn fresh: nobody knows the sample in advance


def test_implausible_shipped_rows_refuse_the_entry_before_any_work(mini_suite: Suite, tmp_path) -> None:
    import dataclasses

    from eval.leaderboard.entries import Discovery, Entry

    mini_suite = dataclasses.replace(mini_suite, anchor="lower-bound")  # scores against the certified bound
    lb = LeaderboardRun(mini_suite, "test", ["next-use", "lru", "belady"], replay_seed=0)
    lb.run()
    write_outputs(lb, tmp_path / "lb")
    table = [r for r in csv.DictReader((tmp_path / "lb" / "results.csv").open()) if r["agent"] == "next-use"]
    bound = {(r["task"], int(r["seed"])): int(r["anchor_bytes"]) for r in table}

    def attack(name: str, edit) -> LeaderboardRun:
        rows = [dict(r) for r in table]
        edit(rows)
        _write_csv(tmp_path / f"{name}.csv", rows)
        entry = Entry("next-use", "exported-net", tmp_path, {"precomputed": f"{name}.csv"})
        run = LeaderboardRun(mini_suite, "test", ["next-use", "lru"], discovery=Discovery({"next-use": entry}))
        run.run()
        assert "next-use" in run.refused and all(r["agent"] == "lru" for r in run.rows), name
        return run

    def claim_bound(rows):  # the attack that ranked first: every row claims the lower bound
        for r in rows:
            r["bytes_in"], r["bytes_out"] = str(bound[(r["task"], int(r["seed"]))]), "0"

    assert "does not replay" in attack("bound", claim_bound).refused["next-use"]

    def below_bound(rows):
        rows[0]["bytes_in"], rows[0]["bytes_out"] = str(bound[(rows[0]["task"], int(rows[0]["seed"]))] - 1000), "0"

    assert "below the certified lower bound" in attack("below", below_bound).refused["next-use"]
    cases = {
        "duplicate": (lambda rows: rows.append(dict(rows[0])), "appears twice"),
        "missing": (lambda rows: rows.pop(), "cover 7 of the 8"),
        "foreign": (lambda rows: rows[0].update(task="gpt2-serve@0.9"), "not an instance"),
        "n_req": (lambda rows: rows[0].update(n_req=str(int(rows[0]["n_req"]) * 1000), n_hit=rows[0]["n_req"]), "n_req"),
        "huge": (lambda rows: rows[0].update(bytes_in=str(10**30)), "exceeds the bytes missed"),
        "nan": (lambda rows: rows[0].update(walltime_s="nan"), "walltime_s"),
        "float": (lambda rows: rows[0].update(bytes_out="1.5"), "not an integer"),
        "negative": (lambda rows: rows[0].update(bytes_out="-5"), "negative"),
        "split": (lambda rows: rows[0].update(split="secret"), "split 'secret'"),
    }
    for name, (edit, why) in cases.items():
        assert why in attack(name, edit).refused["next-use"], name


def test_validate_requires_full_coverage_and_no_duplicates(mini_suite: Suite, tmp_path) -> None:
    lb = LeaderboardRun(mini_suite, "test", ["lru", "belady"])
    lb.run()
    write_outputs(lb, tmp_path)
    table = list(csv.DictReader((tmp_path / "results.csv").open()))
    lru = [r for r in table if r["agent"] == "lru"]
    _write_csv(tmp_path / "two.csv", [lru[0], lru[0], lru[1], lru[1]])  # "all rows confirmed" before
    problems = validate(tmp_path / "two.csv", mini_suite)
    assert sum("duplicate" in p for p in problems) == 2 and any("covers 2 of the 8" in p for p in problems)
