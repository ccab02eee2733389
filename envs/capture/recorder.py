"""Recording tensor accesses of real PyTorch programs on the ``meta`` device.

:class:`AccessRecorder` is a ``TorchDispatchMode``: every aten op that reaches it is turned into accesses of the
*storages* it touches (tensor identity = storage identity, so views of one tensor are one tensor):

- every input storage is a READ, except the destination of write-only ops (``copy_``, ``zero_``, ``fill_``) and
  the template argument of ``*_like`` / ``new_*`` factories, which only lend their shape;
- every storage an op writes (fresh outputs and in-place-mutated inputs) is a WRITE;
- when a storage is garbage-collected a FREE is recorded (``weakref.finalize`` on the storage; storage addresses
  are reused after a free, so each storage gets a fresh counter id);
- view ops (``view``, ``t``, ``expand``, ``permute``, ``detach``, ...) move no data and record nothing, and
  zero-byte storages are dropped;
- ``_foreach_*`` ops are split into one op per list element, each touching that element of every list argument.

The layer of each op comes from ``torch.utils.module_tracker.ModuleTracker`` (forward and backward); the phase
and iteration are set by the driver. Kinds are assigned afterwards by :func:`build_trace` from what the driver
registered (parameters, gradients, optimizer state, inputs, KV blocks) and from lifetimes.
"""

from __future__ import annotations

import re
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.module_tracker import ModuleTracker

from envs.capture.flops import op_flops, touched_bytes
from envs.trace import Kind, Op, Phase, Trace, renumber

_aten = torch.ops.aten
#: Ops whose only tensor effect is allocating an uninitialised output (first real access comes later).
_ALLOC_ONLY = {
    _aten.empty.memory_format,
    _aten.empty_strided.default,
    _aten.empty_like.default,
    _aten.new_empty.default,
    _aten.new_empty_strided.default,
}
#: Ops whose tensor inputs only lend a shape/dtype.
_TEMPLATE_INPUT = {
    _aten.zeros_like.default,
    _aten.ones_like.default,
    _aten.full_like.default,
    _aten.rand_like.default,
    _aten.randn_like.default,
    _aten.new_zeros.default,
    _aten.new_ones.default,
    _aten.new_full.default,
}
#: In-place ops that overwrite their destination without reading it.
_WRITE_ONLY_DEST = {"copy_", "zero_", "fill_", "normal_", "uniform_", "random_", "bernoulli_"}
_NO_DATA = {"detach", "alias", "lift_fresh", "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "device"}
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")
#: The most accesses a recording in this context may hold (None: no limit), and a callable that raises to stop it
#: (a cancelled request, a spent time budget); see :func:`access_limit`.
_ACCESS_LIMIT: ContextVar[int | None] = ContextVar("tensorcache_access_limit", default=None)
_STOP_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("tensorcache_stop_check", default=None)
#: Told the accesses recorded so far, as often as the stop check (a server shows it as a job's progress).
_PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("tensorcache_progress", default=None)


class AccessLimitError(ValueError):
    """A recording grew past the limit set with :func:`access_limit` (it stops there, before using more)."""


@contextmanager
def access_limit(n: int | None, stop_check: Callable[[], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[None]:  # fmt: skip
    """Within the block, any trace being recorded or generated stops with :class:`AccessLimitError` as soon as it
    holds more than ``n`` accesses, and calls ``stop_check`` every few hundred ops (it raises to stop the work: a
    server bounds what a request can cost and drops work nobody waits for) and ``progress`` with the accesses
    recorded so far."""
    tokens = _ACCESS_LIMIT.set(n), _STOP_CHECK.set(stop_check), _PROGRESS.set(progress)
    try:
        yield
    finally:
        _ACCESS_LIMIT.reset(tokens[0])
        _STOP_CHECK.reset(tokens[1])
        _PROGRESS.reset(tokens[2])


def check_access_limit(count: int) -> None:
    """Raises :class:`AccessLimitError` when ``count`` accesses exceed the current context's limit, and whatever the
    context's stop check raises."""
    limit = _ACCESS_LIMIT.get()
    if limit is not None and count > limit:
        raise AccessLimitError(f"the trace grows past {limit} accesses (the limit here); ask for fewer layers or steps")
    stop = _STOP_CHECK.get()
    if stop is not None:
        stop()
    progress = _PROGRESS.get()
    if progress is not None:
        progress(count)


def _storage(t: torch.Tensor) -> torch.UntypedStorage:
    return t.untyped_storage()


@dataclass
class _Events:
    """Recorded events in typed buffers (``array.array``: 1-8 bytes per field instead of a Python int object each);
    :func:`build_trace` reads them as numpy arrays without copying."""

    uid: array = field(default_factory=lambda: array("q"))
    nbytes: array = field(default_factory=lambda: array("q"))
    op: array = field(default_factory=lambda: array("B"))
    phase: array = field(default_factory=lambda: array("B"))
    layer: array = field(default_factory=lambda: array("i"))
    op_index: array = field(default_factory=lambda: array("q"))
    iteration: array = field(default_factory=lambda: array("i"))
    #: Per op (index = op number): FLOPs and device-memory bytes read and written (see :mod:`envs.capture.flops`).
    op_flops: array = field(default_factory=lambda: array("q"))
    op_bytes: array = field(default_factory=lambda: array("q"))


class AccessRecorder(TorchDispatchMode):
    """Records storage-level READ/WRITE/FREE events of every aten op run under it.

    Args:
        n_layers: Number of blocks of the model (for the head's layer index ``n_layers + 1``).
        stem_names: Module-name fragments that mark the embedding/stem (layer 0).
    """

    def __init__(
        self,
        n_layers: int,
        stem_names: Iterable[str] = ("embed", "stem", "wte", "wpe"),
        layer_of_paths: Callable[[frozenset[str]], int] | None = None,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.stem_names = tuple(stem_names)
        self.layer_of_paths = layer_of_paths
        self.phase = Phase.FORWARD
        self.iteration = 0
        self.events = _Events()
        self.n_ops = 0
        self._uid_of: dict[int, int] = {}
        self._next_uid = 0
        self._tracker = ModuleTracker()
        self._layer_cache: dict[frozenset[str], int] = {}
        self._closed = False
        self.forced_layer: int | None = None
        self._limit = _ACCESS_LIMIT.get()
        self._stop = _STOP_CHECK.get() or _PROGRESS.get()  # either is called every 256 ops

    # -- identity -------------------------------------------------------------------------------------------------
    def uid(self, t: torch.Tensor) -> int:
        """Counter id of the storage behind ``t`` (registers a FREE callback on first sight)."""
        s = _storage(t)
        key = s._cdata
        uid = self._uid_of.get(key)
        if uid is None:
            uid = self._next_uid
            self._next_uid += 1
            self._uid_of[key] = uid
            weakref.finalize(s, self._on_free, key, uid, s.nbytes())
        return uid

    def _on_free(self, key: int, uid: int, nbytes: int) -> None:
        if self._uid_of.get(key) == uid:
            del self._uid_of[key]
        if nbytes > 0 and not self._closed:
            self._emit(uid, nbytes, Op.FREE, self._current_layer())

    # -- recording ------------------------------------------------------------------------------------------------
    def __enter__(self) -> AccessRecorder:
        self._tracker.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._tracker.__exit__(*exc)

    def close(self) -> None:
        """Stops recording FREE events (call before dropping the model and optimizer)."""
        self._closed = True

    def _current_layer(self) -> int:
        if self.forced_layer is not None:
            return self.forced_layer
        parents = frozenset(self._tracker.parents)
        layer = self._layer_cache.get(parents)
        if layer is None and self.layer_of_paths is not None:
            layer = self._layer_cache[parents] = self.layer_of_paths(parents)
        if layer is None:
            layer = self.n_layers + 1
            found = [int(m.group(1)) for p in parents if (m := _LAYER_RE.search(p))]
            if found:
                layer = max(found) + 1
            elif any(s in p for p in parents for s in self.stem_names):
                layer = 0
            self._layer_cache[parents] = layer
        return layer

    def _emit(self, uid: int, nbytes: int, op: int, layer: int) -> None:
        ev = self.events
        ev.uid.append(uid)
        ev.nbytes.append(nbytes)
        ev.op.append(int(op))
        ev.phase.append(int(self.phase))
        ev.layer.append(layer)
        ev.op_index.append(max(self.n_ops - 1, 0))
        ev.iteration.append(self.iteration)

    def _record_op(self, reads: list[torch.Tensor], writes: list[torch.Tensor], layer: int, flops: int = 0) -> None:
        self.n_ops += 1
        self.events.op_flops.append(flops)
        self.events.op_bytes.append(touched_bytes(reads) + touched_bytes(writes))
        for tensors, op in ((reads, Op.READ), (writes, Op.WRITE)):
            seen: set[int] = set()  # a storage once per direction
            for t in tensors:
                n = _storage(t).nbytes()
                u = self.uid(t)
                if n > 0 and u not in seen:
                    seen.add(u)
                    self._emit(u, n, op, layer)
        if (self._limit is not None and len(self.events.uid) > self._limit) or (self._stop is not None and not self.n_ops & 255):
            check_access_limit(len(self.events.uid))

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Mapping | None = None) -> Any:
        kwargs = dict(kwargs or {})
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if func.is_view or name in _NO_DATA:
            return out
        layer = self._current_layer()
        if func in _ALLOC_ONLY:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.uid(t)
            return out
        schema_args = func._schema.arguments
        mutated: list[Any] = []
        inputs: list[Any] = []
        for i, a in enumerate(schema_args):
            value = args[i] if i < len(args) else kwargs.get(a.name)
            if value is None:
                continue
            if a.alias_info is not None and a.alias_info.is_write:
                mutated.append(value)
            elif func not in _TEMPLATE_INPUT:
                inputs.append(value)
        write_only = name in _WRITE_ONLY_DEST
        fresh = [] if mutated else [out]
        if name.startswith("_foreach_"):
            self._record_foreach(inputs, mutated, fresh, write_only, layer)
            return out
        reads = [t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)]
        muts = [t for t in tree_leaves(mutated) if isinstance(t, torch.Tensor)]
        if not write_only:
            reads = muts + reads
        writes = muts + [t for t in tree_leaves(fresh) if isinstance(t, torch.Tensor)]
        self._record_op(reads, writes, layer, op_flops(func, args, kwargs, out))
        return out

    def _record_foreach(self, inputs: list, mutated: list, fresh: list, write_only: bool, layer: int) -> None:
        groups = [*mutated, *inputs, *[f for f in fresh if isinstance(f, (list, tuple))]]
        length = max((len(g) for g in groups if isinstance(g, (list, tuple))), default=0)

        def pick(values: list, i: int) -> list[torch.Tensor]:
            picked: list[torch.Tensor] = []
            for v in values:
                item = v[i] if isinstance(v, (list, tuple)) else v
                picked.extend(t for t in tree_leaves(item) if isinstance(t, torch.Tensor))
            return picked

        for i in range(length):
            muts = pick(mutated, i)
            reads = pick(inputs, i) if write_only else muts + pick(inputs, i)
            self._record_op(reads, muts + pick(fresh, i), layer)


@dataclass
class Registry:
    """Storage ids the driver knows the kind of, and the layer of persistent tensors.

    Attributes:
        kinds: uid -> kind for weights, gradients, optimizer state, inputs and KV blocks.
        layers: uid -> layer index, for persistent tensors (used for optimizer-phase ops).
        aliases: uid -> canonical uid (e.g. a parameter's gradient keeps one id across iterations).
    """

    kinds: dict[int, Kind] = field(default_factory=dict)
    layers: dict[int, int] = field(default_factory=dict)
    aliases: dict[int, int] = field(default_factory=dict)

    def add(self, uid: int, kind: Kind, layer: int | None = None, canonical: int | None = None) -> None:
        """Registers one storage id."""
        self.kinds[uid] = kind
        if layer is not None:
            self.layers[uid] = layer
        if canonical is not None and canonical != uid:
            self.aliases[uid] = canonical


def build_trace(recorder: AccessRecorder, registry: Registry, meta: Mapping[str, Any]) -> Trace:
    """Turns recorded events into a :class:`Trace` with kinds, layers and compact ids.

    Unregistered storages are *activations* if they outlive the phase (or layer) that created them, otherwise
    *temporaries*. Optimizer-phase ops take the layer of the persistent tensor they update.
    """
    ev = recorder.events
    uid = np.frombuffer(ev.uid, dtype=np.int64)
    if registry.aliases:
        lut = np.arange(max(int(uid.max()) + 1, max(registry.aliases) + 1), dtype=np.int64)
        for a, c in registry.aliases.items():
            lut[a] = c
        uid = lut[uid]
    op = np.frombuffer(ev.op, dtype=np.uint8)
    phase = np.frombuffer(ev.phase, dtype=np.uint8)
    layer = np.frombuffer(ev.layer, dtype=np.int32)
    op_index = np.frombuffer(ev.op_index, dtype=np.int64)
    iteration = np.frombuffer(ev.iteration, dtype=np.int32)
    nbytes = np.frombuffer(ev.nbytes, dtype=np.int64)

    n_uid = int(uid.max()) + 1
    kind_of = np.full(n_uid, 255, dtype=np.int16)
    for u, k in registry.kinds.items():
        c = registry.aliases.get(u, u)
        if c < n_uid:
            kind_of[c] = int(k)
    # lifetimes of unregistered storages: phases and layers they are touched in
    first_phase = np.full(n_uid, -1, dtype=np.int16)
    idx = np.arange(uid.shape[0])
    first_idx = np.full(n_uid, uid.shape[0], dtype=np.int64)
    np.minimum.at(first_idx, uid, idx)
    touched = first_idx < uid.shape[0]
    first_phase[touched] = phase[first_idx[touched]]
    first_layer = np.zeros(n_uid, dtype=np.int32)
    first_layer[touched] = layer[first_idx[touched]]
    crosses = np.zeros(n_uid, dtype=bool)
    non_free = op != Op.FREE
    crosses_phase = non_free & (phase != first_phase[uid])
    crosses_layer = non_free & (layer != first_layer[uid])
    crosses[uid[crosses_phase | crosses_layer]] = True
    unknown = kind_of == 255
    kind_of[unknown & crosses] = Kind.ACTIVATION
    kind_of[unknown & ~crosses] = Kind.TEMPORARY
    kind = kind_of[uid].astype(np.uint8)

    # optimizer ops: layer of the persistent tensor they touch
    if registry.layers:
        layer_of = np.full(n_uid, -1, dtype=np.int32)
        for u, lay in registry.layers.items():
            c = registry.aliases.get(u, u)
            if c < n_uid:
                layer_of[c] = lay
        opt = phase == Phase.OPTIMIZER
        if opt.any():
            per_access = np.where(opt, layer_of[uid], -1)
            op_layer = np.full(int(op_index.max()) + 1, -1, dtype=np.int32)
            np.maximum.at(op_layer, op_index, per_access)
            fixed = opt & (op_layer[op_index] >= 0)
            layer = np.where(fixed, op_layer[op_index], layer).astype(np.int32)

    # a FREE counts only for a storage that was accessed before it
    first_use = np.full(n_uid, uid.shape[0], dtype=np.int64)
    np.minimum.at(first_use, uid[non_free], idx[non_free])
    keep = (nbytes > 0) & (non_free | (first_use[uid] < idx))
    n_ops = int(op_index[keep][-1]) + 1 if keep.any() else 0
    arrays = {
        "tensor_id": renumber(uid[keep]),
        "size": nbytes[keep],
        "op": op[keep],
        "kind": kind[keep],
        "layer": layer[keep],
        "phase": phase[keep],
        "op_index": op_index[keep],
        "iteration": iteration[keep],
        "op_flops": np.frombuffer(ev.op_flops, dtype=np.int64)[:n_ops],
        "op_bytes": np.frombuffer(ev.op_bytes, dtype=np.int64)[:n_ops],
    }
    return Trace.from_arrays(arrays, meta)


# ------------------------------------------------------------------------------------------------- public API
