"""Simulator semantics, differential tests against libCacheSim, and step-path equivalence."""

from __future__ import annotations

import numpy as np
import pytest

from agents import builtin_registry, make_policy
from agents.rollout import run_policy
from envs.cli.simulate_cli import main as simulate_main
from envs.sim import SimError, headroom_capacity, parse_capacity, prepare, simulate
from envs.sim import engine as E
from envs.sim.policies import CATALOGUE
from envs.sim.simulator import Simulation
from envs.trace import Kind, Op, Trace
from envs.trace.formats import write_oracle_general
from tests.conftest import make_classic_trace

lcs = pytest.importorskip("libcachesim", reason="dev extra")  # the dev extra is always installed by scripts/test.sh
LCS_NAMES = {"lru": "LRU", "fifo": "FIFO", "belady": "Belady", "sieve": "Sieve"}


def random_trace(seed: int, n: int = 3000) -> Trace:
    rng = np.random.default_rng(seed)
    n_obj = int(rng.integers(5, 400))
    p = 1.0 / np.arange(1, n_obj + 1) ** rng.uniform(0.5, 1.3)
    ids = rng.choice(n_obj, size=n, p=p / p.sum())
    sizes = rng.integers(1, 2000, size=n_obj) if seed % 3 else np.ones(n_obj, dtype=np.int64)
    return make_classic_trace(ids, sizes)


def lcs_counts(path, name: str, capacity: int) -> tuple[float, float]:
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
    return getattr(lcs, LCS_NAMES[name])(capacity).process_trace(reader)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("policy", sorted(LCS_NAMES))
def test_classic_mode_matches_libcachesim(tmp_path, seed: int, policy: str) -> None:
    trace = random_trace(seed)
    path = write_oracle_general(trace, tmp_path / "t.bin")
    prepared = prepare(trace, "classic")
    total_bytes = int(trace.size.sum())
    max_size = int(trace.size.max())
    # tiny (smaller than some tensors), medium and roomy capacities
    for capacity in (max(max_size // 2, 1), max_size * 3, total_bytes // 20 + 1, total_bytes // 3):
        ours = simulate(prepared, policy, capacity)
        miss_ratio, byte_miss_ratio = lcs_counts(path, policy, capacity)
        assert ours.n_miss == round(miss_ratio * ours.n_req), (policy, capacity)
        assert ours.n_miss_bytes == round(byte_miss_ratio * ours.n_req_bytes), (policy, capacity)
        # the general (pausable) engine gives exactly the specialised kernels' numbers, evictions and peak included
        engine = Simulation(prepared, capacity, policy)
        engine.advance()
        assert engine.result() == ours, (policy, capacity)


@pytest.mark.parametrize("seed", range(16))
def test_s3fifo_matches_libcachesim(tmp_path, seed: int) -> None:
    trace = random_trace(seed)
    path = write_oracle_general(trace, tmp_path / "t.bin")
    prepared = prepare(trace, "classic")
    max_size, total = int(trace.size.max()), int(trace.size.sum())
    # libCacheSim aborts the process when 10% of the capacity rounds to 0 bytes: keep capacities >= 10
    caps = [c for c in (max(max_size // 2, 1), max_size * 3, max_size * 12, total // 20 + 1, total // 3) if c >= 10]
    for capacity in caps:
        ours = simulate(prepared, "s3fifo", capacity)
        reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        miss_ratio, byte_miss_ratio = lcs.S3FIFO(capacity).process_trace(reader)
        assert ours.n_miss == round(miss_ratio * ours.n_req), capacity
        assert ours.n_miss_bytes == round(byte_miss_ratio * ours.n_req_bytes), capacity


def test_s3fifo_is_classic_only(small_train_trace: Trace) -> None:
    with pytest.raises(SimError, match="classic mode only"):
        simulate(small_train_trace, "s3fifo", "100GiB", mode="tensor")


@pytest.mark.parametrize("mode", ["tensor", "classic"])
def test_mixed_candidates_follow_their_documented_rule(small_serve_trace: Trace, mode: str) -> None:
    prepared = prepare(small_serve_trace, mode)
    sim = Simulation(prepared, headroom_capacity(prepared, 0.2), "lru", pause=True)
    checked = 0
    while not sim.advance() and checked < 600:
        everyone = sim.candidates(10**6, "lru")  # every evictable tensor, least recent first
        state = sim.tensor_state(everyone)
        iv = state.reuse_interval
        predicted = np.where(iv > 0, state.last_access + iv, E.NEVER)
        for k in (1, 2, 5, 16):
            half = min((k + 1) // 2, everyone.size)
            first = everyone[np.argsort(-predicted, kind="stable")[:half]]
            rest = [t for t in everyone if t not in set(first.tolist())][: k - half]
            assert sim.candidates(k, "mixed").tolist() == [*first.tolist(), *rest]
        sim.evict(int(everyone[0]))
        checked += 1
    assert checked > 20


def test_larger_than_cache_is_a_miss_not_admitted() -> None:
    trace = make_classic_trace(np.array([0, 1, 0, 1]), np.array([10, 100]))
    r = simulate(trace, "lru", 50, mode="classic")
    assert (r.n_hit, r.n_miss) == (1, 3)


@pytest.mark.parametrize("seed", range(10))
def test_belady_never_worse_on_unit_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 30, size=600)
    trace = make_classic_trace(ids, np.ones(30, dtype=np.int64))
    prepared = prepare(trace, "classic")
    for cap in (2, 5, 12):
        best = simulate(prepared, "belady", cap).n_hit
        reg = builtin_registry()
        for name in reg.names():  # every built-in agent, on its fast path or through the episode driver
            assert best >= run_policy(prepared, reg.make(name), cap).result.n_hit, (name, cap)


def tensor_trace(rows: list[tuple[int, int, Op, int]]) -> Trace:
    """rows: (tensor id, size, op, op index)."""
    t, s, o, k = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return Trace.from_arrays(
        {
            "tensor_id": t,
            "size": s,
            "op": o,
            "kind": np.full(n, Kind.ACTIVATION),
            "layer": np.zeros(n),
            "phase": np.zeros(n),
            "op_index": k,
            "iteration": np.zeros(n),
        },
        {"workload": "hand"},
    )


def test_write_allocates_without_transfer_and_dirty_eviction_writes_back() -> None:
    trace = tensor_trace([(0, 60, Op.WRITE, 0), (1, 60, Op.READ, 1)])
    r = simulate(trace, "lru", 100)
    assert r.bytes_in == 60  # only the READ miss of tensor 1
    assert r.bytes_out == 60  # evicting dirty tensor 0 writes it back
    assert r.n_miss == 2


def test_clean_eviction_is_free_and_free_drops_at_no_cost() -> None:
    trace = tensor_trace([(0, 60, Op.READ, 0), (1, 60, Op.READ, 1), (1, 60, Op.FREE, 1), (2, 60, Op.WRITE, 2)])
    r = simulate(trace, "lru", 100)
    assert r.bytes_out == 0  # tensor 0 was clean
    assert r.bytes_in == 120
    assert r.n_evictions == 1  # tensor 1's FREE made room for tensor 2


def test_operands_of_the_running_op_are_pinned() -> None:
    # op 1 reads 0 and 1; tensor 0 is least recently used but must not be evicted while op 1 runs
    trace = tensor_trace([(0, 40, Op.READ, 0), (2, 40, Op.READ, 0), (0, 40, Op.READ, 1), (1, 40, Op.READ, 1)])
    r = simulate(trace, "lru", 80)
    assert r.n_hit == 1 and r.n_evictions == 1  # tensor 2 evicted, tensor 0 kept


def test_op_that_cannot_fit_is_an_error() -> None:
    trace = tensor_trace([(0, 60, Op.READ, 0), (1, 60, Op.READ, 0)])
    with pytest.raises(SimError, match="cannot hold op 0, whose operands need 120 bytes"):
        simulate(trace, "lru", 100)


@pytest.mark.parametrize("mode", ["tensor", "classic"])
@pytest.mark.parametrize("policy", sorted(builtin_registry().names()))
def test_step_path_equals_fast_path(small_train_trace: Trace, mode: str, policy: str) -> None:
    prepared = prepare(small_train_trace, mode)
    from envs.sim import headroom_capacity

    cap = headroom_capacity(prepared, 0.3)
    fast = run_policy(prepared, make_policy(policy), cap, seed=3)
    step = run_policy(prepared, make_policy(policy), cap, seed=3, fast=False)
    assert step.decisions > 0
    assert step.result == fast.result


def test_bad_inputs() -> None:
    with pytest.raises(SimError, match="positive"):
        parse_capacity(0)
    with pytest.raises(SimError, match="does not parse"):
        parse_capacity("12 parsecs")
    assert parse_capacity("1.5KiB") == 1536
    trace = make_classic_trace(np.array([0]), np.array([5]))
    with pytest.raises(SimError, match="unknown policy 'nope'"):
        simulate(trace, "nope", 10)
    with pytest.raises(SimError, match="unknown mode"):
        simulate(trace, "lru", 10, mode="fuzzy")
    with pytest.raises(ValueError, match="sizes must be positive"):
        make_classic_trace(np.array([0]), np.array([-5]))


def test_cli_json(tmp_path, capsys) -> None:
    import json

    trace = random_trace(1)
    path = write_oracle_general(trace, tmp_path / "t.bin")
    assert simulate_main(["--trace", str(path), "--policy", "lru", "belady", "--capacity", "10KiB", "50KiB", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and rows[0]["mode"] == "classic"
    for key in (
        "policy",
        "capacity_bytes",
        "n_req",
        "n_miss",
        "n_req_bytes",
        "n_miss_bytes",
        "hit_ratio",
        "byte_hit_ratio",
        "bytes_in",
        "bytes_out",
    ):
        assert key in rows[0]
    assert simulate_main(["--trace", str(path), "--capacity=-1"]) == 2
    err = capsys.readouterr().err
    assert "positive" in err and len(err.strip().splitlines()) == 1
    assert simulate_main(["--trace", str(path), "--capacity", str(2**70)]) == 2
    assert "2**62" in capsys.readouterr().err


def test_cli_threads_give_the_serial_rows(tmp_path, capsys) -> None:
    import json

    path = write_oracle_general(random_trace(2), tmp_path / "t.bin")
    args = ["--trace", str(path), "--policy", "fifo", "mru", "lfu", "belady", "sieve", "s3fifo", "--capacity", "10KiB",
            "40KiB", "--json"]  # fmt: skip
    outputs = []
    for jobs in ("1", "3"):
        assert simulate_main([*args, "--jobs", jobs]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 12
    assert [r["policy"] for r in outputs[0][:6:2]] == ["fifo", "mru", "lfu"]  # rows in the order asked, no LRU row added
    assert all(r["bytes_ratio_vs_lru"] > 0 for r in outputs[0])
    assert simulate_main([*args, "--jobs", "-1"]) == 2
    assert "--jobs must be >= 0" in capsys.readouterr().err
    assert simulate_main(["--trace", str(path), "--policy", "nope", "--capacity", "1KiB"]) == 2
    assert "unknown policy 'nope'; valid: lru" in capsys.readouterr().err


def _reference_priority_run(prepared, policy: str, cap: int) -> tuple[int, int, int]:
    """Classic-mode replay in plain Python, evicting the resident tensor with the smallest documented key."""
    sizes, nxt = prepared.sizes, prepared.next_use
    last, interval, freq, next_at = {}, {}, {}, {}
    resident: set[int] = set()
    used = hits = b_in = evictions = 0

    def key(t: int) -> tuple[int, int, int]:
        if policy == "mru":
            return (-last[t], 0, t)
        if policy == "lfu":
            return (freq[t], last[t], t)
        if policy == "belady":
            return (-next_at[t], last[t], t)
        pred = last[t] + interval[t] if interval.get(t, 0) > 0 else E.NEVER
        return (-pred, last[t], t)

    for i, t in enumerate(prepared.tid.tolist()):
        size = int(sizes[t])
        if t in last:
            interval[t] = i - last[t]
        if t in resident:
            hits += 1
            freq[t] += 1
        elif size > cap:
            b_in += size
            continue  # not admitted: no history update, as in the engine
        else:
            b_in += size
            while used + size > cap:
                victim = min(resident, key=key)
                resident.discard(victim)
                used -= int(sizes[victim])
                evictions += 1
            resident.add(t)
            used += size
            freq[t] = 1
        last[t], next_at[t] = i, int(nxt[i])
    return hits, b_in, evictions


@pytest.mark.parametrize("policy", ["mru", "lfu", "belady", "next-use"])
@pytest.mark.parametrize("seed", [1, 2, 4])
def test_priority_heap_compaction_keeps_exact_choices(seed: int, policy: str) -> None:
    # few tensors, many accesses: the heap (room for twice the tensors) is compacted many times over; MRU walks the
    # recency list instead and must choose the same as the reference's priority order
    prepared = prepare(random_trace(seed, n=4000), "classic")
    cap = int(prepared.sizes.sum() // 3) or 1
    sim = Simulation(prepared, cap, policy)
    rows = sim.H.shape[0]
    heap = policy in {p.name for p in CATALOGUE if p.heap}
    assert heap != (policy == "mru")
    assert prepared.tid.shape[0] > 2 * rows  # more pushes than rows: compaction must have run
    sim.advance()
    r = sim.result()
    assert sim.H.shape[0] == rows == (2 * prepared.sizes.shape[0] + 16 if heap else 16)
    assert (r.n_hit, r.bytes_in, r.n_evictions) == _reference_priority_run(prepared, policy, cap)
