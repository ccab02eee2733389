"""The byte-capacity cache simulator.

**Classic mode** (libCacheSim's semantics): every access except FREE is a READ request; a hit is a request for a
resident tensor; a miss admits the tensor, evicting victims until it fits (the incoming tensor is never its own
victim); a tensor larger than the whole capacity is a miss and is not admitted. All missed bytes are transferred in.

**Tensor mode** (what an accelerator does): a READ miss transfers the tensor in; a WRITE of a non-resident tensor
allocates it without a transfer and marks it dirty; a WRITE hit marks it dirty; FREE drops the tensor at no cost;
evicting a dirty tensor writes its bytes back, evicting a clean one costs nothing. All tensors of the running op are
pinned (never victims); an op whose operands do not fit together is rejected before the run.

Belady's next use of a tensor is the index of its next READ/WRITE, or *never* if it is FREEd first or not
accessed again.

**Step time** (:mod:`envs.sim.step_time`, on the accelerators of :mod:`envs.sim.accelerators`): each op's roofline
compute from the trace's FLOPs and bytes per op, plus the waits for the link bytes the engine counts per op.
"""

from envs.sim.bandwidth import LINKS, Link, get_link
from envs.sim.capacity import Headroom, headroom_capacity, parse_capacity, resolve_capacity
from envs.sim.errors import SimError
from envs.sim.oracle import Oracle
from envs.sim.prepared import PreparedTrace, prepare
from envs.sim.simulator import POLICY_CODES, SimResult, Simulation, simulate
from envs.sim.step_time import StepModel, StepTime, step_time

__all__ = [
    "LINKS",
    "POLICY_CODES",
    "Headroom",
    "Link",
    "Oracle",
    "PreparedTrace",
    "SimError",
    "SimResult",
    "Simulation",
    "StepModel",
    "StepTime",
    "get_link",
    "headroom_capacity",
    "parse_capacity",
    "prepare",
    "resolve_capacity",
    "simulate",
    "step_time",
]
