"""The policy catalogue (envs/sim/policies.py) is the one list: every entry is wired into every layer it claims,
and every layer's list is the catalogue's."""

from __future__ import annotations

import typing

import pytest

from agents.registry import BUILTIN_CLASSES, builtin_registry
from envs.sim import engine as E
from envs.sim import headroom_capacity, prepare, simulate
from envs.sim.classic_fast import KERNELS, run_classic
from envs.sim.offline import OFFLINE_REFERENCES, best_offline, run_offline
from envs.sim.policies import CATALOGUE, KINDS, kind_of, policy_spec
from envs.sim.simulator import POLICY_CODES, SIM_POLICIES
from envs.trace import Trace


def test_names_are_unique_and_kinds_known() -> None:
    names = [p.name for p in CATALOGUE]
    assert len(names) == len(set(names))
    assert {p.kind for p in CATALOGUE} <= set(KINDS)
    assert all(p.description.strip() for p in CATALOGUE)
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        policy_spec("nope")
    assert kind_of("ppo") is None and kind_of("lru") == "heuristic" and kind_of("lower-bound") == "bound"


def test_engine_codes_heap_and_kernels_come_from_the_catalogue() -> None:
    coded = {p.name: p.engine_code for p in CATALOGUE if p.engine_code is not None}
    assert coded == POLICY_CODES
    assert len(set(coded.values())) == len(coded)
    assert set(E.HEAP_POLICIES) == {p.engine_code for p in CATALOGUE if p.heap}
    assert all(p.engine_code is not None for p in CATALOGUE if p.heap)
    assert set(KERNELS) == {p.name for p in CATALOGUE if p.classic_kernel}
    assert set(SIM_POLICIES) == set(coded) | set(KERNELS)


@pytest.mark.parametrize("spec", [p for p in CATALOGUE if p.engine_code is not None or p.classic_kernel], ids=lambda p: p.name)
def test_every_simulated_policy_runs_in_its_modes(small_serve_trace: Trace, spec) -> None:
    for mode in spec.modes:
        prepared = prepare(small_serve_trace, mode)
        cap = headroom_capacity(prepared, 0.3)
        result = simulate(prepared, spec.name, cap)
        assert result.policy == spec.name and result.n_req > 0
        if mode == "classic" and spec.classic_kernel and spec.engine_code is not None:
            # the specialised kernel and the resumable engine agree exactly
            from envs.sim.simulator import Simulation

            sim = Simulation(prepared, cap, spec.name)
            sim.advance()
            assert sim.result() == result
            counters = run_classic(spec.name, prepared.tid, prepared.opc, prepared.sizes, prepared.next_use, cap)
            assert int(counters[4]) == result.bytes_in


def test_agents_of_the_registry_are_the_catalogue_agents() -> None:
    reg = builtin_registry()
    agents = [p for p in CATALOGUE if p.agent]
    assert reg.names() == [p.name for p in agents]
    for p in agents:
        assert reg.spec(p.name).legal == p.legal
        policy = reg.make(p.name)
        assert policy.name == p.name
        # an engine-coded agent runs on the compiled fast path under the same name
        assert policy.engine_policy == (p.name if p.engine_code is not None else None)
    assert set(BUILTIN_CLASSES) == {p.name for p in agents}


def test_offline_references_and_best_offline(small_train_trace: Trace) -> None:
    assert tuple(p.name for p in CATALOGUE if p.kind == "offline" and p.name != "best-offline") == OFFLINE_REFERENCES
    prepared = prepare(small_train_trace)
    cap = headroom_capacity(prepared, 0.3)
    runs = [run_offline(name, prepared, cap) for name in OFFLINE_REFERENCES]
    assert [r.policy for r in runs] == list(OFFLINE_REFERENCES)
    assert best_offline(runs).bytes_moved == min(r.bytes_moved for r in runs)


def test_leaderboard_and_copilot_kinds_follow_the_catalogue() -> None:
    from app.service import Copilot
    from eval.leaderboard.board import OFFLINE_AGENTS

    assert {p.name for p in CATALOGUE if p.kind == "offline"} == set(OFFLINE_AGENTS)
    copilot = Copilot()
    listed = {s["name"]: s["kind"] for s in copilot.strategies()}
    assert listed == {n: copilot.registry().kind(n) for n in listed}  # one answer to "who is legal", as the board's
    for p in CATALOGUE:
        if "tensor" in p.modes:
            assert listed.get(p.name) == p.kind, p.name
    learned = {n: k for n, k in listed.items() if kind_of(n) is None}
    assert learned and set(learned.values()) == {"learned"}


def test_the_cli_offers_every_simulated_policy() -> None:
    from envs.cli.simulate_cli import SimPolicy

    assert set(typing.get_args(SimPolicy)) == set(SIM_POLICIES)
