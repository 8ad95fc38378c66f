"""Attention layers of the Show-1 UNets, written against PyTorch SDPA.

Parameter names follow diffusers' `Attention` (`to_q`, `to_k`, `to_v`, `to_out.0`, `add_k_proj`, ...)
so the hub checkpoints load unchanged. Every layer takes its head count and head size from the
caller (the published models split heads differently per layer type, see `blocks.BlockSettings`)
and its layer classes from a layer set `ops` (see `ops`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ops import TORCH_OPS

# Rows of a token-parallel computation processed at once. Bounds the temporary memory of the
# feed-forwards and attentions (their rows are independent), without changing the arithmetic of
# any row.
TOKEN_CHUNK_ELEMENTS = 1 << 24


def row_chunks(rows: int, row_width: int, limit: int | None = None) -> list[slice]:
    """Split `rows` into slices whose temporaries (rows x row_width elements) stay under `limit`."""
    step = max(1, (limit or TOKEN_CHUNK_ELEMENTS) // max(1, row_width))
    return [slice(s, min(s + step, rows)) for s in range(0, rows, step)]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, L, heads * d) -> (N, heads, L, d)."""
    n, length, inner = x.shape
    return x.view(n, length, heads, inner // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(N, heads, L, d) -> (N, L, heads * d)."""
    n, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * d)


HEAD_MULTIPLE = 8  # head sizes CUDA's memory-efficient and flash SDPA kernels take


def pads_heads(q: torch.Tensor) -> bool:
    """Whether `sdpa` pads this call's heads: on CUDA, where a head size off the multiple sends SDPA
    to its math kernel, which materialises every score (sr2's heads are 5, 10 and 20 wide)."""
    return q.device.type == "cuda" and q.shape[-1] % HEAD_MULTIPLE != 0


def padded_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention with q, k and v zero-padded to a multiple of `HEAD_MULTIPLE` channels, scaled by
    the true head size: the padded channels add exact zeros to every score and give zero outputs,
    which are cut off, so this is the same attention."""
    d = q.shape[-1]
    pad = -d % HEAD_MULTIPLE
    q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, scale=d ** -0.5)[..., :d]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention of the UNets, on the fast kernels on every GPU."""
    return padded_sdpa(q, k, v) if pads_heads(q) else F.scaled_dot_product_attention(q, k, v)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, upcast: bool = False) -> torch.Tensor:
    if upcast and q.dtype != torch.float32:
        return sdpa(q.float(), k.float(), v.float()).to(q.dtype)
    return sdpa(q, k, v)


class Attention(nn.Module):
    """Multi-head attention without bias on q/k/v (diffusers `Attention`): self-attention, or
    cross-attention to `context` when built with a `context_dim`."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None, upcast: bool = False,
                 ops=TORCH_OPS):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.upcast = heads, upcast
        self.to_q = ops.Linear(dim, inner, bias=False)
        self.to_k = ops.Linear(context_dim or dim, inner, bias=False)
        self.to_v = ops.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([ops.Linear(inner, dim), nn.Dropout(0.0)])

    def keys(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_heads(self.to_k(context), self.heads), split_heads(self.to_v(context), self.heads)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """`kv`: keys and values computed once by `keys` (cross-attention); None for self-attention."""
        k, v = kv if kv is not None else self.keys(x)
        out = attend(split_heads(self.to_q(x), self.heads), k, v, self.upcast)
        return self.to_out[0](merge_heads(out))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int, ops=TORCH_OPS):
        super().__init__()
        self.proj = ops.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, 4x wide (diffusers `FeedForward` with activation "geglu")."""

    def __init__(self, dim: int, mult: int = 4, ops=TORCH_OPS):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner, ops), nn.Dropout(0.0), ops.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    """diffusers `BasicTransformerBlock`: attn1, attn2, GEGLU feed-forward, each pre-normed.

    Temporal layers use two self-attentions (`context_dim` None). Spatial layers cross-attend to
    the text in attn2, and with `only_cross` in attn1 as well.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None,
                 only_cross: bool = False, upcast: bool = False, ops=TORCH_OPS):
        super().__init__()
        self.only_cross = only_cross
        self.norm1 = ops.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim, context_dim if only_cross else None, upcast, ops)
        self.norm2 = ops.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim, upcast, ops)
        self.norm3 = ops.LayerNorm(dim)
        self.ff = FeedForward(dim, ops=ops)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """`context`: text states (N, L, D) per row of `x` (spatial layers only)."""
        cross = None if context is None else self.attn2.keys(context)
        first = self.attn1.keys(context) if self.only_cross else None
        x = self.attn1(self.norm1(x), first) + x
        x = self.attn2(self.norm2(x), cross) + x
        return self.ff(self.norm3(x)) + x


class TemporalTransformer(nn.Module):
    """Attention across the frames of each pixel (diffusers/Show-1 `TransformerTemporalModel`).

    Every (video, pixel) sequence is independent once the input is normalised, so the projection
    in, the transformer block and the projection out run over chunks of image rows: the peak memory
    is set by the chunk, not by the video's size. Frames are channels-last (B, F, H, W, C) memory.
    """

    def __init__(self, heads: int, head_dim: int, channels: int, groups: int, num_layers: int = 1, ops=TORCH_OPS):
        super().__init__()
        inner = heads * head_dim
        self.norm = ops.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = ops.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(inner, heads, head_dim, ops=ops)
                                                 for _ in range(num_layers)])
        self.proj_out = ops.Linear(inner, channels)
        self.inner = inner

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        b = bf // num_frames
        frames = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)  # (B*F, H, W, C) memory
        normed = self.norm(frames.reshape(b, num_frames * h, w, c).permute(0, 3, 1, 2))  # stats over all frames
        normed = normed.permute(0, 2, 3, 1).reshape(b, num_frames, h, w, c)
        out = torch.empty_like(normed)
        per_row = num_frames * w * self.inner * 8  # widest temporary: the GEGLU projection
        for rows in row_chunks(h, b * per_row):
            part = normed[:, :, rows].permute(0, 2, 3, 1, 4).reshape(-1, num_frames, c)  # (b*rows*w, F, C)
            hid = self.proj_in(part)
            for block in self.transformer_blocks:
                hid = block(hid)
            hid = self.proj_out(hid).view(b, rows.stop - rows.start, w, num_frames, c)
            out[:, :, rows] = hid.permute(0, 3, 1, 2, 4)
        return x + out.reshape(bf, h, w, c).permute(0, 3, 1, 2)


class SpatialTransformer(nn.Module):
    """The spatial transformer of the ModelScope blocks (diffusers `Transformer2DModel`, continuous
    input): GroupNorm, projection in (1x1 conv or linear), transformer blocks that cross-attend to
    the text, projection out, residual.

    Frames attend only within themselves, so the layer runs over chunks of frames: memory follows
    the chunk, not the video length.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, context_dim: int, groups: int, num_layers: int = 1,
                 linear_projection: bool = False, only_cross: bool = False, upcast: bool = False, ops=TORCH_OPS):
        super().__init__()
        inner = heads * head_dim
        self.linear_projection = linear_projection
        self.norm = ops.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = ops.Linear(channels, inner) if linear_projection else ops.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, heads, head_dim, context_dim, only_cross, upcast, ops) for _ in range(num_layers)])
        self.proj_out = ops.Linear(inner, channels) if linear_projection else ops.Conv2d(inner, channels, 1)
        self.inner = inner

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        """`x` (B*F, C, H, W); `context` the text states of each video (B, L, D)."""
        n, c, h, w = x.shape
        text = context if context.shape[0] == n else context.repeat_interleave(num_frames, dim=0)  # per frame as is
        out = torch.empty_like(x)
        for part in row_chunks(n, h * w * self.inner * 8):
            out[part] = self.run(x[part], text[part]) + x[part]
        return out

    def run(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        hid = self.norm(x)
        if self.linear_projection:
            hid = self.proj_in(hid.permute(0, 2, 3, 1).reshape(n, h * w, c))
        else:
            hid = self.proj_in(hid).permute(0, 2, 3, 1).reshape(n, h * w, self.inner)
        for block in self.transformer_blocks:
            hid = block(hid, text)
        if self.linear_projection:
            return self.proj_out(hid).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return self.proj_out(hid.reshape(n, h, w, self.inner).permute(0, 3, 1, 2))


class SimpleCrossAttention(nn.Module):
    """DeepFloyd-IF spatial attention: image tokens attend to [text tokens, image tokens].

    The text keys and values come from `add_k_proj` / `add_v_proj` (text first); with
    `only_cross_attention` the image keys are left out. The text states are normalised with their own
    GroupNorm over the feature axis when `cross_attention_norm` is "group_norm".
    """

    def __init__(self, channels: int, head_dim: int, context_dim: int, groups: int,
                 only_cross_attention: bool, cross_attention_norm: str | None, ops=TORCH_OPS):
        super().__init__()
        inner = channels  # heads * head_dim with heads = channels // head_dim
        self.heads = channels // head_dim
        self.only_cross_attention = only_cross_attention
        self.group_norm = ops.GroupNorm(groups, channels, eps=1e-5)
        self.norm_cross = ops.GroupNorm(32, context_dim, eps=1e-5) if cross_attention_norm == "group_norm" else None
        self.to_q = ops.Linear(channels, inner)
        if not only_cross_attention:
            self.to_k = ops.Linear(channels, inner)
            self.to_v = ops.Linear(channels, inner)
        self.add_k_proj = ops.Linear(context_dim, inner)
        self.add_v_proj = ops.Linear(context_dim, inner)
        self.to_out = nn.ModuleList([ops.Linear(inner, channels), nn.Dropout(0.0)])

    def text_keys(self, context: torch.Tensor, frames: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Text keys/values of each video, computed once and shared by its frames (a text per frame,
        `rows` of them, is used as it is)."""
        if self.norm_cross is not None:
            context = self.norm_cross(context.transpose(1, 2)).transpose(1, 2)
        k = split_heads(self.add_k_proj(context), self.heads)
        v = split_heads(self.add_v_proj(context), self.heads)
        if context.shape[0] == rows:
            return k, v
        return k.repeat_interleave(frames, dim=0), v.repeat_interleave(frames, dim=0)

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.contiguous(memory_format=torch.channels_last)
        tokens = self.group_norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c)  # free view in channels-last
        q = split_heads(self.to_q(tokens), self.heads)
        k, v = self.text_keys(context, num_frames, n)
        if not self.only_cross_attention:
            k = torch.cat([k, split_heads(self.to_k(tokens), self.heads)], dim=2)
            v = torch.cat([v, split_heads(self.to_v(tokens), self.heads)], dim=2)
        out = self.to_out[0](merge_heads(sdpa(q, k, v)))
        return out.view(n, h, w, c).permute(0, 3, 1, 2) + x
