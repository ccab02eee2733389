"""Eviction agents behind one interface (:class:`agents.base.Policy`), and their registry."""

from agents.base import Policy, ScorerPolicy
from agents.registry import REFERENCE_AGENTS, AgentSpec, Registry, builtin_registry, make_policy

__all__ = ["REFERENCE_AGENTS", "AgentSpec", "Policy", "Registry", "ScorerPolicy", "builtin_registry", "make_policy"]
