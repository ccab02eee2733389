"""Analytic ``transformer-train`` traces: the op sequence of one AdamW training step of
:class:`~envs.workloads.decoder_model.DecoderLM`, written out per module from the config in milliseconds.

It mirrors what the captured trace records at module granularity: every Linear reads its input and weight and
writes its output; norms, RoPE, attention and the MLP keep the tensors autograd saves (activations) until the
backward pass, which reads them with the incoming gradient and writes weight gradients; AdamW (foreach) updates
each parameter with its two moments and a temporary denominator. Elementwise chains that the captured trace shows
as several small ops are folded into fewer ops with the same tensors, so per-access statistics stay close (see
``tests/test_traces.py`` for the KS bound against the captured trace).
"""

from __future__ import annotations

from envs.trace import Kind, Phase
from envs.workloads.decoder_model import DecoderConfig
from envs.workloads.oplog import OpLog


def _param_shapes(cfg: DecoderConfig) -> list[tuple[str, int, int]]:
    """(name, layer, numel) of every parameter in ``DecoderLM``'s registration order."""
    d, kv, ff = cfg.d_model, cfg.n_kv_heads * cfg.head_dim, cfg.d_ff
    b = cfg.bias
    out = [("embed_tokens", 0, cfg.vocab_size * d)]
    if cfg.positions == "learned":
        out.append(("embed_positions", 0, cfg.max_positions * d))
    norm = [("w", d)] + ([("b", d)] if cfg.norm == "layer" else [])
    for i in range(1, cfg.n_layers + 1):
        out += [(f"attn_norm.{n}", i, s) for n, s in norm]
        if cfg.fused_qkv:
            out.append(("qkv", i, d * (d + 2 * kv)))
            if b:
                out.append(("qkv.b", i, d + 2 * kv))
        else:
            for n, s in (("q", d), ("k", kv), ("v", kv)):
                out.append((n, i, d * s))
                if b:
                    out.append((n + ".b", i, s))
        out.append(("o", i, d * d))
        if b:
            out.append(("o.b", i, d))
        out += [(f"mlp_norm.{n}", i, s) for n, s in norm]
        if cfg.mlp == "swiglu":
            out += [("gate", i, d * ff), ("up", i, d * ff), ("down", i, ff * d)]
        else:
            out += [("fc_in", i, d * ff)] + ([("fc_in.b", i, ff)] if b else [])
            out += [("fc_out", i, ff * d)] + ([("fc_out.b", i, d)] if b else [])
    out += [(f"norm.{n}", cfg.n_layers + 1, s) for n, s in norm]
    if not cfg.tied_embeddings:
        out.append(("lm_head", cfg.n_layers + 1, cfg.vocab_size * d))
    return out


class _TrainStep:
    """The tensors of one model under training (weights, gradients, AdamW moments and step counters) and the ops
    of one step, written module by module into an :class:`OpLog`."""

    def __init__(self, cfg: DecoderConfig, log: OpLog) -> None:
        self.cfg, self.log = cfg, log
        self.el = el = cfg.torch_dtype.itemsize
        self.params = params = _param_shapes(cfg)
        self.weight = {i: log.new(n * el, Kind.WEIGHT) for i, (_, _, n) in enumerate(params)}
        self.index = {(lay, name): i for i, (name, lay, _) in enumerate(params)}
        self.moments = {
            i: (log.new(n * el, Kind.OPTIMIZER_STATE), log.new(n * el, Kind.OPTIMIZER_STATE))
            for i, (_, _, n) in enumerate(params)
        }
        self.steps = {i: log.new(4, Kind.OPTIMIZER_STATE) for i in self.weight}
        self.grads = {i: log.new(n * el, Kind.GRADIENT) for i, (_, _, n) in enumerate(params)}
        self.d, self.kv, self.ff = cfg.d_model, cfg.n_kv_heads * cfg.head_dim, cfg.d_ff

    # -- lookups
    def w(self, layer: int, name: str) -> int:
        """The weight tensor ``name`` of ``layer``."""
        return self.weight[self.index[(layer, name)]]

    def g(self, layer: int, name: str) -> int:
        """The gradient tensor of weight ``name`` of ``layer``."""
        return self.grads[self.index[(layer, name)]]

    def norm_grads(self, layer: int, norm: str) -> tuple[int, ...]:
        names = ("w", "b") if self.cfg.norm == "layer" else ("w",)
        return tuple(self.g(layer, f"{norm}.{n}") for n in names)

    def mm(self, n_in: int, n_out: int) -> int:
        """FLOPs of one ``n_in`` × ``n_out`` matmul over this step's tokens (2 per multiply-add, as torch counts)."""
        return 2 * self.tok * n_in * n_out

    def head(self) -> int:
        cfg = self.cfg
        return self.w(0, "embed_tokens") if cfg.tied_embeddings else self.w(cfg.n_layers + 1, "lm_head")

    # -- one step
    def step(self, batch: int, seq: int) -> None:
        log, cfg, el = self.log, self.cfg, self.el
        self.tok = tok = batch * seq
        self.batch, self.seq = batch, seq
        self.act, self.act32 = tok * self.d * el, tok * self.d * 4
        tokens = log.new(tok * 8, Kind.INPUT)
        labels = log.new(tok * 8, Kind.INPUT)
        log.phase = Phase.FORWARD
        x, rope = self.embed_forward(tokens, seq)
        saved = []
        for i in range(1, cfg.n_layers + 1):
            s = self.layer_forward(i, x, rope, batch, seq)
            x = s["out"]
            saved.append(s)
        nf, rf, lsm, loss = self.head_forward(x, labels)
        log.phase = Phase.BACKWARD
        dx = self.head_backward(x, nf, rf, lsm, loss, labels)
        for i in range(cfg.n_layers, 0, -1):
            dx = self.layer_backward(i, saved[i - 1], dx, rope)
        self.embed_backward(dx, tokens, saved, rope)
        log.phase = Phase.OPTIMIZER
        self.optimizer_step()

    def embed_forward(self, tokens: int, seq: int) -> tuple[int, tuple[int, int] | None]:
        """Token (and learned position) embeddings; the RoPE tables. Returns (hidden state, RoPE tables or None)."""
        log, cfg, el, act = self.log, self.cfg, self.el, self.act
        log.layer = 0
        x = log.out((tokens, self.w(0, "embed_tokens")), act, Kind.ACTIVATION)
        if cfg.positions == "learned":
            pe = log.out((self.w(0, "embed_positions"),), seq * self.d * el)
            x = log.out((x, pe), act, Kind.ACTIVATION, frees=(pe,))
        rope = None
        if cfg.positions == "rope":
            rope = (
                log.out((), seq * cfg.head_dim * el, Kind.ACTIVATION),
                log.out((), seq * cfg.head_dim * el, Kind.ACTIVATION),
            )
        return x, rope

    def layer_forward(self, i: int, x: int, rope: tuple[int, int] | None, batch: int, seq: int) -> dict[str, int]:
        """Block ``i`` forward: attention and MLP with their norms and residuals. Returns the tensors autograd
        keeps for the backward pass (``out`` is the block's output)."""
        log, cfg, el, act, act32, tok = self.log, self.cfg, self.el, self.act, self.act32, self.tok
        d, kv, ff, w = self.d, self.kv, self.ff, self.w
        log.layer = i
        s: dict[str, int] = {"x": x}
        s["n1"], s["r1"] = _norm_fwd(log, w(i, "attn_norm.w"), x, act, act32, tok)
        if cfg.fused_qkv:
            qkv = log.out((s["n1"], w(i, "qkv")), tok * (d + 2 * kv) * el, Kind.ACTIVATION, flops=self.mm(d, d + 2 * kv))
            s["q"] = s["k"] = s["v"] = qkv
        else:
            s["q"] = log.out((s["n1"], w(i, "q")), act, flops=self.mm(d, d))
            s["k"] = log.out((s["n1"], w(i, "k")), tok * kv * el, flops=self.mm(d, kv))
            s["v"] = log.out((s["n1"], w(i, "v")), tok * kv * el, Kind.ACTIVATION, flops=self.mm(d, kv))
        if rope is not None:
            q2 = log.out((s["q"], *rope), act, Kind.ACTIVATION, frees=(s["q"],))
            k2 = log.out((s["k"], *rope), tok * kv * el, Kind.ACTIVATION, frees=(s["k"],))
            s["q"], s["k"] = q2, k2
        kr, vr = s["k"], s["v"]
        if cfg.n_heads // cfg.n_kv_heads > 1:  # grouped-query attention repeats the key/value heads
            kr = log.out((s["k"],), act, Kind.ACTIVATION)
            vr = log.out((s["v"],), act, Kind.ACTIVATION)
        s["kr"], s["vr"] = kr, vr
        s["attn"] = log.new(act, Kind.ACTIVATION)
        s["lse"] = log.new(batch * cfg.n_heads * seq * 4, Kind.ACTIVATION)
        log.op((s["q"], kr, vr), (s["attn"], s["lse"]), flops=4 * batch * seq * seq * d)
        s["ao"] = log.out((s["attn"],), act, Kind.ACTIVATION)
        o = log.out((s["ao"], w(i, "o")), act, flops=self.mm(d, d))
        h = log.out((x, o), act, Kind.ACTIVATION, frees=(o,))
        s["h"] = h
        s["n2"], s["r2"] = _norm_fwd(log, w(i, "mlp_norm.w"), h, act, act32, tok)
        if cfg.mlp == "swiglu":
            s["g"] = log.out((s["n2"], w(i, "gate")), tok * ff * el, Kind.ACTIVATION, flops=self.mm(d, ff))
            s["u"] = log.out((s["n2"], w(i, "up")), tok * ff * el, Kind.ACTIVATION, flops=self.mm(d, ff))
            s["sg"] = log.out((s["g"],), tok * ff * el, Kind.ACTIVATION)
            s["m"] = log.out((s["sg"], s["u"]), tok * ff * el, Kind.ACTIVATION)
            y = log.out((s["m"], w(i, "down")), act, flops=self.mm(ff, d))
        else:
            s["g"] = log.out((s["n2"], w(i, "fc_in")), tok * ff * el, Kind.ACTIVATION, flops=self.mm(d, ff))
            s["m"] = log.out((s["g"],), tok * ff * el, Kind.ACTIVATION)
            y = log.out((s["m"], w(i, "fc_out")), act, flops=self.mm(ff, d))
        s["out"] = log.out((h, y), act, Kind.ACTIVATION, frees=(y,))
        return s

    def head_forward(self, x: int, labels: int) -> tuple[int, int, int, int]:
        """Final norm, LM head, log-softmax and loss. Returns (normed, norm statistics, log-probs, loss)."""
        log, cfg, el, tok = self.log, self.cfg, self.el, self.tok
        log.layer = cfg.n_layers + 1
        nf, rf = _norm_fwd(log, self.w(cfg.n_layers + 1, "norm.w"), x, self.act, self.act32, tok)
        logits = log.out((nf, self.head()), tok * cfg.vocab_size * el, flops=self.mm(self.d, cfg.vocab_size))
        logits32 = log.out((logits,), tok * cfg.vocab_size * 4, Kind.ACTIVATION, frees=(logits,))
        lsm = log.out((logits32,), tok * cfg.vocab_size * 4, Kind.ACTIVATION, frees=(logits32,))
        loss = log.out((lsm, labels), 4, Kind.ACTIVATION)
        return nf, rf, lsm, loss

    def head_backward(self, x: int, nf: int, rf: int, lsm: int, loss: int, labels: int) -> int:
        """Loss, LM head and final norm backward. Returns the gradient of the last block's output."""
        log, cfg, el, tok, L = self.log, self.cfg, self.el, self.tok, self.cfg.n_layers
        dl = log.out((loss, lsm, labels), tok * cfg.vocab_size * 4, frees=(loss, lsm, labels))
        dl16 = log.out((dl,), tok * cfg.vocab_size * el, frees=(dl,))
        hg = self.g(0, "embed_tokens") if cfg.tied_embeddings else self.g(L + 1, "lm_head")
        head_flops = self.mm(self.d, cfg.vocab_size)
        log.op((dl16, nf), (hg,), flops=head_flops)
        dx = log.out((dl16, self.head()), self.act, frees=(dl16, nf), flops=head_flops)
        return _norm_bwd(log, self.w(L + 1, "norm.w"), self.norm_grads(L + 1, "norm"), x, rf, dx, self.act, self.act32)

    def layer_backward(self, i: int, s: dict[str, int], dx: int, rope: tuple[int, int] | None) -> int:
        """Block ``i`` backward from the saved tensors ``s``: weight gradients, and the gradient of its input."""
        log, cfg, el, act, act32, tok = self.log, self.cfg, self.el, self.act, self.act32, self.tok
        d, kv, ff, w, g = self.d, self.kv, self.ff, self.w, self.g
        log.layer = i
        mlp_w = ("gate", "up", "down") if cfg.mlp == "swiglu" else ("fc_in", "fc_out")
        log.op((dx, s["m"]), (g(i, mlp_w[-1]),), flops=self.mm(ff, d))
        dm = log.out((dx, w(i, mlp_w[-1])), tok * ff * el, frees=(s["m"],), flops=self.mm(ff, d))
        if cfg.mlp == "swiglu":
            du = log.out((dm, s["sg"]), tok * ff * el, frees=(s["sg"],))
            dsg = log.out((dm, s["u"]), tok * ff * el, frees=(dm, s["u"]))
            dg = log.out((dsg, s["g"]), tok * ff * el, frees=(dsg, s["g"]))
            log.op((du, s["n2"]), (g(i, "up"),), flops=self.mm(d, ff))
            dn = log.out((du, w(i, "up")), act, frees=(du,), flops=self.mm(d, ff))
            log.op((dg, s["n2"]), (g(i, "gate"),), flops=self.mm(d, ff))
            dn2 = log.out((dg, w(i, "gate")), act, frees=(dg,), flops=self.mm(d, ff))
            dn = log.out((dn, dn2), act, frees=(dn2,))
        else:
            dg = log.out((dm, s["g"]), tok * ff * el, frees=(dm, s["g"]))
            log.op((dg, s["n2"]), (g(i, "fc_in"),), flops=self.mm(d, ff))
            dn = log.out((dg, w(i, "fc_in")), act, frees=(dg,), flops=self.mm(d, ff))
        log.free(s["n2"])
        dh = _norm_bwd(log, w(i, "mlp_norm.w"), self.norm_grads(i, "mlp_norm"), s["h"], s["r2"], dn, act, act32)
        dh = log.out((dh, dx), act, frees=(dx, dh))
        log.op((dh, s["ao"]), (g(i, "o"),), flops=self.mm(d, d))
        dao = log.out((dh, w(i, "o")), act, frees=(s["ao"],), flops=self.mm(d, d))
        dq = log.new(act, Kind.TEMPORARY)
        dk = log.new(act, Kind.TEMPORARY)
        dv = log.new(act, Kind.TEMPORARY)
        attn_bwd = 10 * self.batch * self.seq * self.seq * d  # as torch counts the fused backward: five matmuls
        log.op((dao, s["q"], s["kr"], s["vr"], s["attn"], s["lse"]), (dq, dk, dv), frees=(dao, s["attn"], s["lse"]),
               flops=attn_bwd)  # fmt: skip
        if cfg.n_heads != cfg.n_kv_heads:
            dk = log.out((dk,), tok * kv * el, frees=(dk, s["kr"]))
            dv = log.out((dv,), tok * kv * el, frees=(dv, s["vr"]))
        if rope is not None:
            dq = log.out((dq, *rope), act, frees=(dq, s["q"]))
            dk = log.out((dk, *rope), tok * kv * el, frees=(dk, s["k"]))
        else:
            log.free(s["q"])
        if cfg.fused_qkv:
            dqkv = log.out((dq, dk, dv), tok * (d + 2 * kv) * el, frees=(dq, dk, dv))
            log.op((dqkv, s["n1"]), (g(i, "qkv"),), flops=self.mm(d, d + 2 * kv))
            dn = log.out((dqkv, w(i, "qkv")), act, frees=(dqkv, s["n1"]), flops=self.mm(d, d + 2 * kv))
        else:
            dn = None
            for name, dt, width in (("q", dq, d), ("k", dk, kv), ("v", dv, kv)):
                log.op((dt, s["n1"]), (g(i, name),), flops=self.mm(d, width))
                part = log.out((dt, w(i, name)), act, frees=(dt,), flops=self.mm(d, width))
                dn = part if dn is None else log.out((dn, part), act, frees=(dn, part))
            log.free(s["v"], s["n1"])
        dxn = _norm_bwd(log, w(i, "attn_norm.w"), self.norm_grads(i, "attn_norm"), s["x"], s["r1"], dn, act, act32)
        return log.out((dxn, dh), act, frees=(dxn, dh, s["h"]))

    def embed_backward(self, dx: int, tokens: int, saved: list[dict[str, int]], rope: tuple[int, int] | None) -> None:
        """Embedding gradients; frees the first block's input and the RoPE tables."""
        log = self.log
        log.layer = 0
        if self.cfg.positions == "learned":
            log.op((dx,), (self.g(0, "embed_positions"),))
        log.op((dx, tokens), (self.g(0, "embed_tokens"),), frees=(dx, tokens))
        if saved:
            log.free(saved[0]["x"])
        if rope is not None:
            log.free(*rope)

    def optimizer_step(self) -> None:
        """AdamW with foreach: each foreach call is one op per parameter (step counters, decay, first and second
        moments, then the update through a temporary denominator); gradients are freed after."""
        log, params, weight, moments = self.log, self.params, self.weight, self.moments
        order = list(weight)
        passes = (
            lambda p: log.op((self.steps[p],), (self.steps[p],)),
            lambda p: log.op((weight[p],), (weight[p],)),
            lambda p: log.op((moments[p][0], self.grads[p]), (moments[p][0],)),
            lambda p: log.op((moments[p][1], self.grads[p]), (moments[p][1],)),
            self._update,
        )
        for run in passes:
            for p in order:
                log.layer = params[p][1]
                run(p)
        log.free(*self.grads.values())

    def _update(self, p: int) -> None:
        log, m = self.log, self.moments[p]
        denom = log.out((m[1],), self.params[p][2] * self.el)
        log.op((self.weight[p], m[0], denom), (self.weight[p],), frees=(denom,))


def analytic_train_trace(cfg: DecoderConfig, shapes: list[tuple[int, int]]) -> dict:
    """Columns of a ``len(shapes)``-step training trace (one (batch, seq) per step)."""
    log = OpLog()
    step = _TrainStep(cfg, log)
    for it, (batch, seq) in enumerate(shapes):
        log.iteration = it
        step.step(batch, seq)
    return log.arrays()


def _norm_fwd(log: OpLog, w: int, x: int, act: int, act32: int, tok: int) -> tuple[int, int]:
    """RMSNorm/LayerNorm forward with weight ``w``: returns (normalised output, saved statistics)."""
    x32 = log.out((x,), act32)
    stats = log.out((x32,), tok * 4, Kind.ACTIVATION)
    xn = log.out((x32, stats), act, frees=(x32,))
    out = log.out((xn, w), act, Kind.ACTIVATION, frees=(xn,))
    return out, stats


def _norm_bwd(log: OpLog, w: int, grads: tuple[int, ...], x: int, stats: int, dy: int, act: int, act32: int) -> int:
    """Norm backward: reads input, statistics and incoming gradient; writes the weight (and bias) gradients."""
    for g in grads:
        log.op((dy, x, stats), (g,))
    dx32 = log.out((dy, x, stats, w), act32, frees=(dy, stats))
    return log.out((dx32,), act, frees=(dx32,))
