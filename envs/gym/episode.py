"""The episode driver: the one loop that replays a trace decision by decision.

advance → view → choose → evict. The Gymnasium env, the policy runners (:mod:`agents.rollout`), label generation
and the offline references all drive an :class:`Episode`; only the choosing differs.

Example::

    episode = Episode(prepared, capacity, k=16)
    while not episode.advance():
        episode.evict(my_choice(episode.view))
    print(episode.result().bytes_moved)

:meth:`Episode.step` is the same evict-then-advance in one compiled call that also writes the next decision's
observation (:mod:`envs.gym.step_kernel`); the Gymnasium env steps through it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.gym import step_kernel
from envs.gym.features import DecisionView, FeatureBuilder, feature_tables, observation_size
from envs.gym.schedule import preference
from envs.sim.errors import SimError
from envs.sim.oracle import Oracle
from envs.sim.prepared import PreparedTrace
from envs.sim.simulator import CANDIDATE_RULES, SimResult, Simulation

#: Candidate rules of an episode: the engine's, and ``schedule`` (the schedule heuristic's first K).
EPISODE_RULES = (*CANDIDATE_RULES, "schedule")
#: Built-in engine policies that read the future; their choice is never offered to a view.
ORACLE_ENGINE_POLICIES = ("belady",)


class Episode:
    """One replay of a prepared trace at one capacity, paused at every eviction decision.

    Args:
        prepared: Output of :func:`envs.sim.prepare`.
        capacity: Cache capacity in bytes (feasible; see :func:`envs.sim.resolve_capacity`).
        k: Candidates offered per decision (None = every evictable resident tensor).
        rule: Candidate rule: ``lru`` or ``mixed`` (see :data:`envs.sim.simulator.CANDIDATE_RULES`), or
            ``schedule``: the K evictable tensors the schedule heuristic would evict first, in its order
            (:func:`envs.gym.schedule.preference` over every evictable tensor), so candidate 0 is its choice.
        engine_policy: The engine's built-in policy.
        engine_choice: Put the engine policy's victim into every view (``DecisionView.engine_choice``), for
            policies whose state lives in the engine (SIEVE, Random). Asking the engine advances that state, so
            it is off unless the playing policy is that engine policy; refused for policies that read the future.
        seed: Seed of the engine's random policy.
        features: Per-trace feature arrays to reuse across episodes of the same trace.
        schedule: Put the schedule-aware predicted distances into every view (``DecisionView.schedule_distance``);
            always on with the ``schedule`` rule or observation version 2.
        observation_version: The observation :meth:`step` writes (1 or 2; see :mod:`envs.gym.features`).
    """

    def __init__(
        self,
        prepared: PreparedTrace,
        capacity: int,
        *,
        k: int | None = None,
        rule: str = "lru",
        engine_policy: str = "lru",
        engine_choice: bool = False,
        seed: int = 0,
        features: FeatureBuilder | None = None,
        schedule: bool = False,
        observation_version: int = 1,
    ) -> None:
        if rule not in EPISODE_RULES:
            raise SimError(f"unknown candidate rule {rule!r}; valid: {', '.join(EPISODE_RULES)}")
        feature_tables(observation_version)  # a ValueError naming the versions
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise SimError(f"k must be an integer >= 1, got {k!r}")
        if features is None:
            features = FeatureBuilder(prepared)
        elif not features.owns(prepared):
            raise SimError("features were built from another prepared trace")
        self.features = features
        self.prepared = prepared = features.prepared  # the same arrays, as rows of the features' block
        self.sim = Simulation(prepared, capacity, engine_policy, seed, pause=True)
        self.k = int(k) if k is not None else max(int(prepared.sizes.shape[0]), 1)
        self.rule = rule
        self.oracle = Oracle(self.sim)
        self.n_decisions = 0
        if engine_choice and engine_policy in ORACLE_ENGINE_POLICIES:
            raise SimError(f"{engine_policy} reads the future; its choice is never put into a view")
        self._offer_engine_choice = engine_choice
        self._prediction: np.ndarray | None = None  # the schedule rule's predictions of the pending candidates
        self.observation_version = observation_version
        self._schedule = schedule or rule == "schedule" or observation_version != 1
        # the pending decision: its candidates are the first _n of _buf (_n = -1: none pending); _cands is a
        # read-only copy made when someone asks for them
        self._buf = np.empty(self.k, dtype=np.int64)
        self._n = -1
        self._cands: np.ndarray | None = None
        self._view: DecisionView | None = None
        self._rule_code = CANDIDATE_RULES.index(rule) if rule in CANDIDATE_RULES else -1
        sim = self.sim  # the engine's arrays are never reallocated, so one tuple serves every step
        self._state = (sim.T, sim.S, sim.H, sim.dense, features.block, self.k, self._rule_code, self._buf)
        self._scratch_obs = np.zeros(observation_size(self.k, observation_version), dtype=np.float32)
        # every step is one compiled call: decide() for the engine's own rules and version 1, decide_any() for the
        # schedule rule and version 2 (the schedule's tables and scratch after the decision's own arguments)
        self._decide, self._extra = step_kernel.decide, ()
        if rule not in CANDIDATE_RULES or observation_version != 1:
            self._decide, self._extra = step_kernel.decide_any, features.fused_scratch(self.k, observation_version)

    # -- the loop -------------------------------------------------------------------------------------------------
    def advance(self, until: int | None = None) -> bool:
        """Runs to the next decision, to access ``until`` (not processed; then no decision is pending), or the end;
        True when the trace is done.

        Raises:
            RuntimeError: If the pending decision has not been answered with :meth:`evict`.
        """
        if self._n >= 0:
            raise RuntimeError("answer the pending decision with evict() before advancing")
        done = self.sim.advance(until)
        self._view = self._cands = self._prediction = None
        self._n = -1
        if self.sim.pending:
            self._cands = self._schedule_candidates() if self._rule_code < 0 else self.sim.candidates(self.k, self.rule)
            self._cands.flags.writeable = False
            self._n = self._cands.shape[0]
        return done

    def _schedule_candidates(self) -> np.ndarray:
        """The ``schedule`` rule: every evictable tensor, ordered by the schedule heuristic, the first K."""
        sim = self.sim
        everyone = sim.candidates()
        state = sim.tensor_state(everyone)
        dist, reads = self.features.schedule.predict(sim.now, everyone, state.last_access, state.reuse_interval)
        first = preference(dist, reads, state.dirty, state.last_access, everyone)[: self.k]
        self._prediction = np.stack([dist[first], reads[first]])  # the view of these candidates reuses it
        return everyone[first]

    @property
    def pending(self) -> bool:
        """Whether a decision waits for :meth:`evict`."""
        return self._n >= 0

    @property
    def n_candidates(self) -> int:
        """Number of candidates at the pending decision (0 when none is pending)."""
        return max(self._n, 0)

    @property
    def done(self) -> bool:
        return self.sim.done

    @property
    def candidates(self) -> np.ndarray:
        """Tensor ids offered at the pending decision (read-only)."""
        if self._cands is None:
            if self._n < 0:
                raise RuntimeError("no pending decision (call advance() first, or the trace is done)")
            self._cands = self._buf[: self._n].copy()
            self._cands.flags.writeable = False
        return self._cands

    @property
    def view(self) -> DecisionView:
        """The sealed view of the pending decision (built once per decision)."""
        if self._view is None:
            choice = self._engine_choice() if self._offer_engine_choice else None
            self._view = self.features.view(self.sim, self.candidates, self.k, choice, self._schedule, self._prediction)
        return self._view

    def evict(self, index: int, *, strict: bool = True) -> bool:
        """Evicts candidate ``index`` of the pending decision.

        Args:
            index: Index into the candidates.
            strict: Raise on an invalid index; otherwise evict candidate 0 instead.

        Returns:
            Whether ``index`` was valid.

        Raises:
            ValueError: On an invalid index when ``strict``.
        """
        cands = self.candidates
        valid = _is_index(index, cands.shape[0])
        if not valid:
            if strict:
                raise ValueError(f"chose candidate {index!r} of {cands.shape[0]}")
            index = 0
        self.sim.evict(int(cands[int(index)]))
        self.n_decisions += 1
        self._n = -1
        self._cands = self._view = None
        return valid

    def step(self, index: int | None, obs: np.ndarray | None = None) -> bool:
        """Answers the pending decision with candidate ``index`` and runs to the next decision or the end, in one
        compiled call; the same as :meth:`evict` (not strict) then :meth:`advance`, with the next decision's
        observation written into ``obs``.

        Args:
            index: Candidate index to evict (invalid = candidate 0, as ``evict(index, strict=False)``), or None
                to start the episode (no decision may be pending).
            obs: A zeroed float32 array of ``observation_size(k)`` that receives the next decision's observation
                (left zero when the trace ends); None = not needed.

        Returns:
            Whether ``index`` was valid (True when starting).

        Raises:
            RuntimeError: If ``index`` is None while a decision is pending, or given while none is.
        """
        n = self._n
        victim, valid = -1, True
        if index is None:
            if n >= 0:
                raise RuntimeError("answer the pending decision before advancing")
        elif n < 0:
            raise RuntimeError("no pending decision (call advance() first, or the trace is done)")
        if index is not None:
            valid = _is_index(index, n)  # plain ints take its short path
            victim = (self._cands if self._cands is not None else self._buf).item(int(index) if valid else 0)
            self.n_decisions += 1
        if obs is None:
            obs = self._scratch_obs
            obs[:] = 0.0
        n = self._decide(*self._state, victim, obs, *self._extra)
        self._n = n
        self.sim.set_status(n >= 0)
        self._cands = self._view = self._prediction = None
        return valid

    def play(self, choose: Callable[[DecisionView], int]) -> SimResult:
        """Runs the episode to its end, asking ``choose`` at every decision; returns the counters."""
        while not self.advance():
            self.evict(choose(self.view))
        return self.result()

    # -- state ----------------------------------------------------------------------------------------------------
    def _engine_choice(self) -> int:
        victim = self.sim.builtin_victim()
        hits = np.flatnonzero(self.candidates == victim)
        if hits.size == 0:
            raise RuntimeError(f"the engine's victim {victim} is not among the {self.candidates.shape[0]} candidates")
        return int(hits[0])

    @property
    def bytes_moved(self) -> int:
        """Bytes transferred in plus dirty bytes written back so far."""
        return self.sim.bytes_moved

    @property
    def hits(self) -> int:
        return self.sim.hits

    @property
    def capacity(self) -> int:
        return self.sim.capacity

    def result(self) -> SimResult:
        """Counters so far (final once :attr:`done`)."""
        return self.sim.result()


def _is_index(index: object, n: int) -> bool:
    """Whether ``index`` is an integer (not a bool) in ``[0, n)``; plain ints take the short path of the env's hot
    loop."""
    if type(index) is int:
        return 0 <= index < n
    return isinstance(index, np.integer) and 0 <= index < n
