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


def analytic_train_trace(cfg: DecoderConfig, shapes: list[tuple[int, int]]) -> dict:
    """Columns of a ``len(shapes)``-step training trace (one (batch, seq) per step)."""
    el = cfg.torch_dtype.itemsize
    log = OpLog()
    params = _param_shapes(cfg)
    weight = {i: log.new(n * el, Kind.WEIGHT) for i, (_, _, n) in enumerate(params)}
    by_name: dict[tuple[int, str], int] = {(lay, name): i for i, (name, lay, _) in enumerate(params)}
    moments = {
        i: (log.new(n * el, Kind.OPTIMIZER_STATE), log.new(n * el, Kind.OPTIMIZER_STATE)) for i, (_, _, n) in enumerate(params)
    }
    steps = {i: log.new(4, Kind.OPTIMIZER_STATE) for i in weight}
    grads = {i: log.new(n * el, Kind.GRADIENT) for i, (_, _, n) in enumerate(params)}
    d, kv, ff, L = cfg.d_model, cfg.n_kv_heads * cfg.head_dim, cfg.d_ff, cfg.n_layers

    def W(layer: int, name: str) -> int:
        return weight[by_name[(layer, name)]]

    def G(layer: int, name: str) -> int:
        return grads[by_name[(layer, name)]]

    def NG(layer: int, norm: str) -> tuple[int, ...]:
        names = ("w", "b") if cfg.norm == "layer" else ("w",)
        return tuple(G(layer, f"{norm}.{n}") for n in names)

    for it, (batch, seq) in enumerate(shapes):
        log.iteration = it
        tok = batch * seq
        act, act32 = tok * d * el, tok * d * 4
        tokens = log.new(tok * 8, Kind.INPUT)
        labels = log.new(tok * 8, Kind.INPUT)
        # ---------------- forward
        log.phase, log.layer = Phase.FORWARD, 0
        x = log.out((tokens, W(0, "embed_tokens")), act, Kind.ACTIVATION)
        if cfg.positions == "learned":
            pe = log.out((W(0, "embed_positions"),), seq * d * el)
            x = log.out((x, pe), act, Kind.ACTIVATION, frees=(pe,))
        rope = None
        if cfg.positions == "rope":
            rope = (
                log.out((), seq * cfg.head_dim * el, Kind.ACTIVATION),
                log.out((), seq * cfg.head_dim * el, Kind.ACTIVATION),
            )
        saved: list[dict[str, int]] = []
        for i in range(1, L + 1):
            log.layer = i
            s: dict[str, int] = {"x": x}
            s["n1"], s["r1"] = _norm_fwd(log, W(i, "attn_norm.w"), x, act, act32, tok)
            if cfg.fused_qkv:
                qkv = log.out((s["n1"], W(i, "qkv")), tok * (d + 2 * kv) * el, Kind.ACTIVATION)
                s["q"] = s["k"] = s["v"] = qkv
            else:
                s["q"] = log.out((s["n1"], W(i, "q")), act)
                s["k"] = log.out((s["n1"], W(i, "k")), tok * kv * el)
                s["v"] = log.out((s["n1"], W(i, "v")), tok * kv * el, Kind.ACTIVATION)
            if rope is not None:
                q2 = log.out((s["q"], *rope), act, Kind.ACTIVATION, frees=(s["q"],))
                k2 = log.out((s["k"], *rope), tok * kv * el, Kind.ACTIVATION, frees=(s["k"],))
                s["q"], s["k"] = q2, k2
            rep = cfg.n_heads // cfg.n_kv_heads
            kr, vr = s["k"], s["v"]
            if rep > 1:
                kr = log.out((s["k"],), act, Kind.ACTIVATION)
                vr = log.out((s["v"],), act, Kind.ACTIVATION)
            s["kr"], s["vr"] = kr, vr
            s["attn"] = log.new(act, Kind.ACTIVATION)
            s["lse"] = log.new(batch * cfg.n_heads * seq * 4, Kind.ACTIVATION)
            log.op((s["q"], kr, vr), (s["attn"], s["lse"]))
            s["ao"] = log.out((s["attn"],), act, Kind.ACTIVATION)
            o = log.out((s["ao"], W(i, "o")), act)
            h = log.out((x, o), act, Kind.ACTIVATION, frees=(o,))
            s["h"] = h
            s["n2"], s["r2"] = _norm_fwd(log, W(i, "mlp_norm.w"), h, act, act32, tok)
            if cfg.mlp == "swiglu":
                s["g"] = log.out((s["n2"], W(i, "gate")), tok * ff * el, Kind.ACTIVATION)
                s["u"] = log.out((s["n2"], W(i, "up")), tok * ff * el, Kind.ACTIVATION)
                s["sg"] = log.out((s["g"],), tok * ff * el, Kind.ACTIVATION)
                s["m"] = log.out((s["sg"], s["u"]), tok * ff * el, Kind.ACTIVATION)
                y = log.out((s["m"], W(i, "down")), act)
            else:
                s["g"] = log.out((s["n2"], W(i, "fc_in")), tok * ff * el, Kind.ACTIVATION)
                s["m"] = log.out((s["g"],), tok * ff * el, Kind.ACTIVATION)
                y = log.out((s["m"], W(i, "fc_out")), act)
            x = log.out((h, y), act, Kind.ACTIVATION, frees=(y,))
            saved.append(s)
        log.layer = L + 1
        nf, rf = _norm_fwd(log, W(L + 1, "norm.w"), x, act, act32, tok)
        head = W(0, "embed_tokens") if cfg.tied_embeddings else W(L + 1, "lm_head")
        logits = log.out((nf, head), tok * cfg.vocab_size * el)
        logits32 = log.out((logits,), tok * cfg.vocab_size * 4, Kind.ACTIVATION, frees=(logits,))
        lsm = log.out((logits32,), tok * cfg.vocab_size * 4, Kind.ACTIVATION, frees=(logits32,))
        loss = log.out((lsm, labels), 4, Kind.ACTIVATION)
        # ---------------- backward
        log.phase = Phase.BACKWARD
        dl = log.out((loss, lsm, labels), tok * cfg.vocab_size * 4, frees=(loss, lsm, labels))
        dl16 = log.out((dl,), tok * cfg.vocab_size * el, frees=(dl,))
        hg = G(0, "embed_tokens") if cfg.tied_embeddings else G(L + 1, "lm_head")
        log.op((dl16, nf), (hg,))
        dx = log.out((dl16, head), act, frees=(dl16, nf))
        dx = _norm_bwd(log, W(L + 1, "norm.w"), NG(L + 1, "norm"), x, rf, dx, act, act32)
        for i in range(L, 0, -1):
            log.layer = i
            s = saved[i - 1]
            mlp_w = ("gate", "up", "down") if cfg.mlp == "swiglu" else ("fc_in", "fc_out")
            log.op((dx, s["m"]), (G(i, mlp_w[-1]),))
            dm = log.out((dx, W(i, mlp_w[-1])), tok * ff * el, frees=(s["m"],))
            if cfg.mlp == "swiglu":
                du = log.out((dm, s["sg"]), tok * ff * el, frees=(s["sg"],))
                dsg = log.out((dm, s["u"]), tok * ff * el, frees=(dm, s["u"]))
                dg = log.out((dsg, s["g"]), tok * ff * el, frees=(dsg, s["g"]))
                log.op((du, s["n2"]), (G(i, "up"),))
                dn = log.out((du, W(i, "up")), act, frees=(du,))
                log.op((dg, s["n2"]), (G(i, "gate"),))
                dn2 = log.out((dg, W(i, "gate")), act, frees=(dg,))
                dn = log.out((dn, dn2), act, frees=(dn2,))
            else:
                dg = log.out((dm, s["g"]), tok * ff * el, frees=(dm, s["g"]))
                log.op((dg, s["n2"]), (G(i, "fc_in"),))
                dn = log.out((dg, W(i, "fc_in")), act, frees=(dg,))
            log.free(s["n2"])
            dh = _norm_bwd(log, W(i, "mlp_norm.w"), NG(i, "mlp_norm"), s["h"], s["r2"], dn, act, act32)
            dh = log.out((dh, dx), act, frees=(dx, dh))
            log.op((dh, s["ao"]), (G(i, "o"),))
            dao = log.out((dh, W(i, "o")), act, frees=(s["ao"],))
            dq = log.new(act, Kind.TEMPORARY)
            dk = log.new(act, Kind.TEMPORARY)
            dv = log.new(act, Kind.TEMPORARY)
            log.op(
                (dao, s["q"], s["kr"], s["vr"], s["attn"], s["lse"]),
                (dq, dk, dv),
                frees=(dao, s["attn"], s["lse"]),
            )
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
                log.op((dqkv, s["n1"]), (G(i, "qkv"),))
                dn = log.out((dqkv, W(i, "qkv")), act, frees=(dqkv, s["n1"]))
            else:
                dn = None
                for name, dt in (("q", dq), ("k", dk), ("v", dv)):
                    log.op((dt, s["n1"]), (G(i, name),))
                    part = log.out((dt, W(i, name)), act, frees=(dt,))
                    dn = part if dn is None else log.out((dn, part), act, frees=(dn, part))
                log.free(s["v"], s["n1"])
            dxn = _norm_bwd(log, W(i, "attn_norm.w"), NG(i, "attn_norm"), s["x"], s["r1"], dn, act, act32)
            dx = log.out((dxn, dh), act, frees=(dxn, dh, s["h"]))
        log.layer = 0
        if cfg.positions == "learned":
            log.op((dx,), (G(0, "embed_positions"),))
        log.op((dx, tokens), (G(0, "embed_tokens"),), frees=(dx, tokens))
        if saved:
            log.free(saved[0]["x"])
        if rope is not None:
            log.free(*rope)
        # ---------------- optimizer (AdamW, foreach: one op per parameter per foreach call)
        log.phase = Phase.OPTIMIZER
        order = list(weight)
        for p in order:
            log.layer = params[p][1]
            log.op((steps[p],), (steps[p],))
        for p in order:
            log.layer = params[p][1]
            log.op((weight[p],), (weight[p],))
        for p in order:
            log.layer = params[p][1]
            log.op((moments[p][0], grads[p]), (moments[p][0],))
        for p in order:
            log.layer = params[p][1]
            log.op((moments[p][1], grads[p]), (moments[p][1],))
        for p in order:
            log.layer = params[p][1]
            denom = log.out((moments[p][1],), params[p][2] * el)
            log.op((weight[p], moments[p][0], denom), (weight[p],), frees=(denom,))
        log.free(*grads.values())
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
