"""The simulator's one error type."""


class SimError(ValueError):
    """Bad simulator input: capacity, policy, mode, or an op that cannot fit."""
