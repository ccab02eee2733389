"""A plain-PyTorch decoder-only transformer: Mistral/Llama style (RMSNorm, RoPE, grouped-query attention, SwiGLU),
GPT-2 style (LayerNorm, learned positions, fused QKV, GELU, tied head) and Mixtral style (sparse MoE MLP).

The definitions mirror the published architectures parameter-for-parameter so that a trace's unique weight
bytes equal the real model's parameter count times the dtype size. They are meant to run on the ``meta`` device.
Attention goes through ``aten._scaled_dot_product_flash_attention`` (it has a meta kernel and a backward), so no
T×T score matrix is materialised. Inference keeps K and V in fixed-size paged blocks, one tensor per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class DecoderConfig:
    """Dimensions of a decoder-only transformer."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    norm: str = "rms"  # "rms" or "layer"
    mlp: str = "swiglu"  # "swiglu", "gelu" or "moe"
    positions: str = "rope"  # "rope" or "learned"
    max_positions: int = 0  # learned positions only
    bias: bool = False
    fused_qkv: bool = False
    tied_embeddings: bool = False
    n_experts: int = 0
    experts_per_token: int = 0
    dtype: str = "bfloat16"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)

    def n_params(self) -> int:
        """Parameter count computed from the dimensions (the published figure for the presets)."""
        d, kv = self.d_model, self.n_kv_heads * self.head_dim
        b = 1 if self.bias else 0
        attn = d * (d + 2 * kv) + b * (d + 2 * kv) + d * d + b * d
        if self.mlp == "swiglu":
            mlp = 3 * d * self.d_ff
        elif self.mlp == "gelu":
            mlp = 2 * d * self.d_ff + b * (self.d_ff + d)
        else:
            mlp = self.n_experts * 3 * d * self.d_ff + d * self.n_experts
        norm = (2 if self.norm == "layer" else 1) * d
        per_layer = attn + mlp + 2 * norm
        emb = self.vocab_size * d + (self.max_positions * d if self.positions == "learned" else 0)
        head = 0 if self.tied_embeddings else self.vocab_size * d
        return emb + self.n_layers * per_layer + norm + head


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(var + self.eps)).to(x.dtype) * self.weight


def _norm(cfg: DecoderConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rms" else nn.LayerNorm(cfg.d_model)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Applies rotary position embedding (half-split convention) to ``x`` of shape (B, H, T, Dh)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def rope_tables(positions: torch.Tensor, head_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (T, Dh) for the given positions (theta = 10000)."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    ang = positions.float()[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class PagedKV:
    """A paged KV cache: per sequence and layer, a list of fixed-size K and V blocks (one tensor each).

    Args:
        cfg: Model dimensions.
        block_tokens: Tokens per block (vLLM's default is 16).
        device: Where blocks live.
        on_new_block: Called with every new block tensor (the tracer registers it as KV cache).
    """

    def __init__(
        self,
        cfg: DecoderConfig,
        block_tokens: int,
        device: torch.device | str,
        on_new_block: Callable[[torch.Tensor, int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.block_tokens = block_tokens
        self.device = device
        self.on_new_block = on_new_block
        self.k: dict[tuple[int, int], list[torch.Tensor]] = {}
        self.v: dict[tuple[int, int], list[torch.Tensor]] = {}
        self.length: dict[int, int] = {}

    def _block(self, layer: int) -> torch.Tensor:
        shape = (self.block_tokens, self.cfg.n_kv_heads, self.cfg.head_dim)
        block = torch.zeros(shape, dtype=self.cfg.torch_dtype, device=self.device)
        if self.on_new_block is not None:
            self.on_new_block(block, layer)
        return block

    def append(self, seq: int, layer: int, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        """Writes K/V of shape (T, Hkv, Dh) for positions ``start..start+T-1`` into the sequence's blocks."""
        ks = self.k.setdefault((seq, layer), [])
        vs = self.v.setdefault((seq, layer), [])
        t, pos = k.shape[0], start
        while t > 0:
            bi, off = divmod(pos, self.block_tokens)
            while len(ks) <= bi:
                ks.append(self._block(layer + 1))
                vs.append(self._block(layer + 1))
            n = min(t, self.block_tokens - off)
            lo = pos - start
            ks[bi][off : off + n].copy_(k[lo : lo + n])
            vs[bi][off : off + n].copy_(v[lo : lo + n])
            pos, t = pos + n, t - n

    def gather(self, seq: int, layer: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of the first ``length`` positions, shape (1, Hkv, length, Dh) (reads every block)."""
        nb = math.ceil(length / self.block_tokens)
        k = torch.cat(self.k[(seq, layer)][:nb], dim=0)[:length]
        v = torch.cat(self.v[(seq, layer)][:nb], dim=0)[:length]
        return k.transpose(0, 1).unsqueeze(0), v.transpose(0, 1).unsqueeze(0)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Attention through the flash aten op (meta kernel, no T×T scores); K/V heads repeated for GQA."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal)[0]


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, kv = cfg.d_model, cfg.n_kv_heads * cfg.head_dim
        if cfg.fused_qkv:
            self.qkv_proj = nn.Linear(d, d + 2 * kv, bias=cfg.bias)
        else:
            self.q_proj = nn.Linear(d, d, bias=cfg.bias)
            self.k_proj = nn.Linear(d, kv, bias=cfg.bias)
            self.v_proj = nn.Linear(d, kv, bias=cfg.bias)
        self.o_proj = nn.Linear(d, d, bias=cfg.bias)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        b, t, _ = x.shape
        kv = cfg.n_kv_heads * cfg.head_dim
        if cfg.fused_qkv:
            q, k, v = self.qkv_proj(x).split([cfg.d_model, kv, kv], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = k.view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = v.view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | list | None,
        kv: PagedKV | None = None,
        seqs: list[int] | None = None,
        layer: int = 0,
        starts: list[int] | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self._qkv(x)
        if kv is None:
            if rope is not None:
                q, k = rotate(q, *rope), rotate(k, *rope)
            out = flash_attention(q, k, v, causal=True)
        else:
            # paged inference: one sequence at a time (each has its own blocks and position)
            outs = []
            for i, (seq, start) in enumerate(zip(seqs or [], starts or [], strict=True)):
                qi, ki, vi = q[i : i + 1], k[i : i + 1], v[i : i + 1]
                if rope is not None:
                    qi, ki = rotate(qi, *rope[i]), rotate(ki, *rope[i])
                kv.append(seq, layer, ki[0].transpose(0, 1), vi[0].transpose(0, 1), start)
                if start > 0:
                    ki, vi = kv.gather(seq, layer, start + t)
                outs.append(flash_attention(qi, ki, vi, causal=True))
            out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(nn.Module):
    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d, d_ff, bias=False)
        self.up_proj = nn.Linear(d, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class GeluMLP(nn.Module):
    def __init__(self, d: int, d_ff: int, bias: bool) -> None:
        super().__init__()
        self.fc_in = nn.Linear(d, d_ff, bias=bias)
        self.fc_out = nn.Linear(d_ff, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))


#: A router returns, for the current layer, the expert ids chosen for each token: a list of ``n_tokens`` lists of
#: ``top_k`` distinct ids.
Router = Callable[[int, int], list[list[int]]]


class SparseMoE(nn.Module):
    """Mixtral's sparse MoE block: a linear gate and ``n_experts`` SwiGLU experts, top-k per token.

    On the meta device gate logits have no values, so expert choice comes from ``router(layer, n_tokens)`` — a
    seeded sampler supplied by the workload. The gate matmul, softmax and top-k still run and are recorded.
    """

    def __init__(self, cfg: DecoderConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.top_k = cfg.experts_per_token
        self.gate = nn.Linear(cfg.d_model, cfg.n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(cfg.d_model, cfg.d_ff) for _ in range(cfg.n_experts))
        self.router: Router | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        flat = x.reshape(b * t, d)
        weights = F.softmax(self.gate(flat).float(), dim=-1)
        top_w, _ = torch.topk(weights, self.top_k, dim=-1)
        if self.router is None:
            raise RuntimeError("SparseMoE needs a router (set by the workload)")
        choice = self.router(self.layer, b * t)
        out = torch.zeros_like(flat)
        by_expert: dict[int, list[int]] = {}
        for tok, experts in enumerate(choice):
            for e in experts:
                by_expert.setdefault(e, []).append(tok)
        for e in sorted(by_expert):
            rows = torch.tensor(by_expert[e], device=x.device)
            y = self.experts[e](flat.index_select(0, rows))
            w = top_w.index_select(0, rows)[:, :1].to(y.dtype)
            out = out.index_add(0, rows, y * w)
        return out.view(b, t, d)


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = _norm(cfg)
        self.attn = Attention(cfg)
        self.mlp_norm = _norm(cfg)
        if cfg.mlp == "swiglu":
            self.mlp: nn.Module = SwiGLU(cfg.d_model, cfg.d_ff)
        elif cfg.mlp == "gelu":
            self.mlp = GeluMLP(cfg.d_model, cfg.d_ff, cfg.bias)
        else:
            self.mlp = SparseMoE(cfg, layer)

    def forward(self, x: torch.Tensor, rope: tuple | None, **kv_args: object) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), rope, **kv_args)
        return x + self.mlp(self.mlp_norm(x))


class DecoderLM(nn.Module):
    """The full model: embeddings, ``n_layers`` blocks, final norm and LM head."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positions == "learned":
            self.embed_positions = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = _norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def set_router(self, router: Router) -> None:
        for m in self.modules():
            if isinstance(m, SparseMoE):
                m.router = router

    def forward(
        self,
        tokens: torch.Tensor,
        kv: PagedKV | None = None,
        seqs: list[int] | None = None,
        starts: list[int] | None = None,
    ) -> torch.Tensor:
        """Logits for every position (training) or, with a paged KV cache, for the last position only.

        Args:
            tokens: (batch, seq) token ids.
            kv: Paged KV cache (inference); then ``seqs`` names each row's sequence and ``starts`` its position.
        """
        b, t = tokens.shape
        x = self.embed_tokens(tokens)
        dev = tokens.device
        rope: tuple | list | None = None
        if kv is None:
            pos = torch.arange(t, device=dev)
            if self.cfg.positions == "learned":
                x = x + self.embed_positions(pos)
            else:
                rope = rope_tables(pos, self.cfg.head_dim, x.dtype)
        else:
            starts = starts or [0] * b
            pos_rows = [torch.arange(s, s + t, device=dev) for s in starts]
            if self.cfg.positions == "learned":
                x = x + torch.stack([self.embed_positions(p) for p in pos_rows])
            else:
                rope = [rope_tables(p, self.cfg.head_dim, x.dtype) for p in pos_rows]
        for i, block in enumerate(self.layers):
            kv_args = {} if kv is None else {"kv": kv, "seqs": seqs, "layer": i, "starts": starts}
            x = block(x, rope, **kv_args)
        if kv is not None:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))


PRESETS: dict[str, DecoderConfig] = {
    "mistral-7b": DecoderConfig(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, d_ff=14336),
    "gpt2-small": DecoderConfig(
        vocab_size=50257,
        d_model=768,
        n_layers=12,
        n_heads=12,
        n_kv_heads=12,
        d_ff=3072,
        norm="layer",
        mlp="gelu",
        positions="learned",
        max_positions=1024,
        bias=True,
        fused_qkv=True,
        tied_embeddings=True,
    ),
    "mixtral-8x7b": DecoderConfig(
        vocab_size=32000,
        d_model=4096,
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        d_ff=14336,
        mlp="moe",
        n_experts=8,
        experts_per_token=2,
    ),
}

#: Published parameter counts (Hugging Face model cards / configs).
PUBLISHED_PARAMS = {"mistral-7b": 7_241_732_096, "gpt2-small": 124_439_808, "mixtral-8x7b": 46_702_792_704}
