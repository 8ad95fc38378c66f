"""The T5 v1.1 encoder of show-1-base (DeepFloyd IF's T5-XXL), with transformers' parameter names.

It computes what transformers' `T5EncoderModel` does: token embeddings, blocks of relative-position
self-attention and a gated-GELU feed-forward, each pre-normed with T5's RMS norm, then a final
norm. The arithmetic runs in float32 whatever the weights are stored in (the layers cast them), as
ComfyUI runs its own T5: no fp16 overflow, and the model runs once per prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import from_config
from .ops import TORCH_OPS, cast_like, lookup

ACTIVATIONS = {"gelu_new": lambda x: F.gelu(x, approximate="tanh"), "gelu_pytorch_tanh":
               lambda x: F.gelu(x, approximate="tanh"), "gelu": F.gelu, "relu": F.relu}


@dataclass
class T5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"
    dense_act_fn: str | None = None

    @classmethod
    def from_dict(cls, config: dict) -> "T5Config":
        return from_config(cls, config, "text_encoder/config.json", "show-1-base's T5", ("activation", ACTIVATIONS))

    @property
    def gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        if self.dense_act_fn:
            return self.dense_act_fn
        act = self.feed_forward_proj.split("-")[-1]
        return "gelu_new" if act == "gelu" and self.gated else act


class RMSNorm(nn.Module):
    """T5's layer norm: scale only, statistics in float32. Its weight is cast where it is used."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return cast_like(self.weight, x) * (x * torch.rsqrt(variance + self.eps)).to(x.dtype)


def relative_position_bucket(relative: torch.Tensor, buckets: int, max_distance: int) -> torch.Tensor:
    """transformers' bidirectional bucketing of key position minus query position."""
    buckets //= 2
    out = (relative > 0).long() * buckets
    relative = relative.abs()
    exact = buckets // 2
    large = exact + (torch.log(relative.float() / exact) / math.log(max_distance / exact)
                     * (buckets - exact)).long()
    large = torch.minimum(large, torch.full_like(large, buckets - 1))
    return out + torch.where(relative < exact, relative, large)


class SelfAttention(nn.Module):
    def __init__(self, c: T5Config, relative_bias: bool, ops):
        super().__init__()
        inner = c.num_heads * c.d_kv
        self.heads, self.c = c.num_heads, c
        self.q = ops.Linear(c.d_model, inner, bias=False)
        self.k = ops.Linear(c.d_model, inner, bias=False)
        self.v = ops.Linear(c.d_model, inner, bias=False)
        self.o = ops.Linear(inner, c.d_model, bias=False)
        self.ops = ops
        if relative_bias:
            self.relative_attention_bias = ops.Embedding(c.relative_attention_num_buckets, c.num_heads)

    def position_bias(self, length: int, like: torch.Tensor) -> torch.Tensor:
        position = torch.arange(length, device=like.device)
        buckets = relative_position_bucket(position[None, :] - position[:, None],
                                           self.c.relative_attention_num_buckets,
                                           self.c.relative_attention_max_distance)
        return lookup(self.ops, self.relative_attention_bias, buckets, like.dtype).permute(2, 0, 1)[None]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), attn_mask=bias,
                                             scale=1.0)  # T5 does not scale its scores
        return self.o(out.transpose(1, 2).reshape(n, length, -1))


class FeedForward(nn.Module):
    def __init__(self, c: T5Config, ops):
        super().__init__()
        if c.gated:
            self.wi_0 = ops.Linear(c.d_model, c.d_ff, bias=False)
            self.wi_1 = ops.Linear(c.d_model, c.d_ff, bias=False)
        else:
            self.wi = ops.Linear(c.d_model, c.d_ff, bias=False)
        self.wo = ops.Linear(c.d_ff, c.d_model, bias=False)
        self.act = ACTIVATIONS[c.activation]
        self.gated = c.gated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))
        return self.wo(h)


class AttentionLayer(nn.Module):
    def __init__(self, c: T5Config, relative_bias: bool, ops):
        super().__init__()
        self.SelfAttention = SelfAttention(c, relative_bias, ops)
        self.layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)


class FeedForwardLayer(nn.Module):
    def __init__(self, c: T5Config, ops):
        super().__init__()
        self.DenseReluDense = FeedForward(c, ops)
        self.layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)


class Block(nn.Module):
    def __init__(self, c: T5Config, relative_bias: bool, ops):
        super().__init__()
        self.layer = nn.ModuleList([AttentionLayer(c, relative_bias, ops), FeedForwardLayer(c, ops)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attn, ff = self.layer
        x = x + attn.SelfAttention(attn.layer_norm(x), bias)
        return x + ff.DenseReluDense(ff.layer_norm(x))


class Stack(nn.Module):
    def __init__(self, c: T5Config, ops):
        super().__init__()
        self.block = nn.ModuleList([Block(c, i == 0, ops) for i in range(c.num_layers)])
        self.final_layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)


class T5Encoder(nn.Module):
    """Token ids (B, L) and their attention mask -> last hidden states (B, L, d_model), float32."""

    IGNORED_KEYS = ("encoder.embed_tokens.weight",)  # a tied copy of `shared`, in most checkpoints

    def __init__(self, config: T5Config, ops=TORCH_OPS):
        super().__init__()
        self.config, self.ops = config, ops
        self.compute_dtype = torch.float32
        self.shared = ops.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, ops)

    @property
    def width(self) -> int:
        return self.config.d_model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = lookup(self.ops, self.shared, ids, torch.float32)
        blocks = self.encoder.block
        bias = blocks[0].layer[0].SelfAttention.position_bias(ids.shape[1], x)
        bias = bias + (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for block in blocks:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)
