"""The episode driver: the one loop that replays a trace decision by decision.

advance → view → choose → evict. The Gymnasium env, the policy runners (:mod:`agents.rollout`), label generation
and the offline references all drive an :class:`Episode`; only the choosing differs.

Example::

    episode = Episode(prepared, capacity, k=16)
    while not episode.advance():
        episode.evict(my_choice(episode.view))
    print(episode.result().bytes_moved)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.features import DecisionView, FeatureBuilder
from envs.sim import engine as E
from envs.sim.oracle import Oracle
from envs.sim.simulator import CANDIDATE_RULES, PreparedTrace, SimError, SimResult, Simulation

#: Built-in engine policies that read the future; their choice is never offered to a view.
ORACLE_ENGINE_POLICIES = ("belady",)


class Episode:
    """One replay of a prepared trace at one capacity, paused at every eviction decision.

    Args:
        prepared: Output of :func:`envs.sim.prepare`.
        capacity: Cache capacity in bytes (feasible; see :func:`envs.sim.resolve_capacity`).
        k: Candidates offered per decision (None = every evictable resident tensor).
        rule: Candidate rule, ``lru`` or ``mixed`` (see :data:`envs.sim.simulator.CANDIDATE_RULES`).
        engine_policy: The engine's built-in policy.
        engine_choice: Put the engine policy's victim into every view (``DecisionView.engine_choice``), for
            policies whose state lives in the engine (SIEVE, Random). Asking the engine advances that state, so
            it is off unless the playing policy is that engine policy; refused for policies that read the future.
        seed: Seed of the engine's random policy.
        features: Per-trace feature arrays to reuse across episodes of the same trace.
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
    ) -> None:
        if rule not in CANDIDATE_RULES:
            raise SimError(f"unknown candidate rule {rule!r}; valid: {', '.join(CANDIDATE_RULES)}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise SimError(f"k must be an integer >= 1, got {k!r}")
        self.prepared = prepared
        self.sim = Simulation(prepared, capacity, engine_policy, seed, pause=True)
        self.k = int(k) if k is not None else max(int(prepared.sizes.shape[0]), 1)
        self.rule = rule
        self.features = features if features is not None else FeatureBuilder(prepared.trace)
        self.oracle = Oracle(self.sim)
        self.n_decisions = 0
        if engine_choice and engine_policy in ORACLE_ENGINE_POLICIES:
            raise SimError(f"{engine_policy} reads the future; its choice is never put into a view")
        self._offer_engine_choice = engine_choice
        self._cands: np.ndarray | None = None
        self._view: DecisionView | None = None
        self._started = False

    # -- the loop -------------------------------------------------------------------------------------------------
    def advance(self, until: int | None = None) -> bool:
        """Runs to the next decision, to access ``until`` (not processed; then no decision is pending), or the end;
        True when the trace is done.

        Raises:
            RuntimeError: If the pending decision has not been answered with :meth:`evict`.
        """
        if self._started and self._cands is not None:
            raise RuntimeError("answer the pending decision with evict() before advancing")
        self._started = True
        done = self.sim.advance(until)
        self._view = None
        self._cands = self.sim.candidates(self.k, self.rule) if self.sim.pending else None
        return done

    @property
    def pending(self) -> bool:
        """Whether a decision waits for :meth:`evict`."""
        return self._cands is not None

    @property
    def done(self) -> bool:
        return self.sim.done

    @property
    def candidates(self) -> np.ndarray:
        """Tensor ids offered at the pending decision."""
        if self._cands is None:
            raise RuntimeError("no pending decision (call advance() first, or the trace is done)")
        return self._cands

    @property
    def view(self) -> DecisionView:
        """The sealed view of the pending decision (built once per decision)."""
        if self._view is None:
            choice = self._engine_choice() if self._offer_engine_choice else None
            self._view = self.features.view(self.sim, self.candidates, self.k, choice)
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
        valid = isinstance(index, (int, np.integer)) and not isinstance(index, bool) and 0 <= index < cands.shape[0]
        if not valid:
            if strict:
                raise ValueError(f"chose candidate {index!r} of {cands.shape[0]}")
            index = 0
        self.sim.evict(int(cands[int(index)]))
        self.n_decisions += 1
        self._cands = None
        self._view = None
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
        S = self.sim.S
        return int(S.item(E.S_BIN) + S.item(E.S_BOUT))

    @property
    def hits(self) -> int:
        return int(self.sim.S.item(E.S_HITS))

    @property
    def capacity(self) -> int:
        return int(self.sim.S.item(E.S_CAP))

    def result(self) -> SimResult:
        """Counters so far (final once :attr:`done`)."""
        return self.sim.result()
