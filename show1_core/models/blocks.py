"""Building blocks of the Show-1 UNet3D family: resnets, temporal convolutions, resamplers, the
down / mid / up blocks of both layouts the checkpoints use, and the timestep / text embeddings.

Two block families share one layer order (resnet -> temporal conv [-> spatial attention ->
temporal attention]):

* DeepFloyd-IF blocks (show-1-base, -interpolation, -sr1): IF's "simple" cross-attention, and
  resampling inside a resnet (`ResnetDownsampleBlock3D`, `SimpleCrossAttnUpBlock3D`, ...);
* ModelScope blocks (show-1-sr2): a spatial transformer that cross-attends to the text, and
  strided / nearest+conv resamplers (`CrossAttnDownBlock3D`, `UpBlock3D`, ...).

The IF blocks without their temporal layers are DeepFloyd IF-II's 2D blocks
(`ResnetDownsampleBlock2D`, `SimpleCrossAttnDownBlock2D`, ...), so the same code builds IF-II.

Module and parameter names mirror the published checkpoints (diffusers 0.19 layout), e.g.
`down_blocks.1.temp_attentions.0.transformer_blocks.0.attn1.to_q.weight`. Every layer comes from
the layer set `ops` (see `ops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SimpleCrossAttention, SpatialTransformer, TemporalTransformer
from .ops import TORCH_OPS, cast_like

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "mish": nn.Mish, "relu": nn.ReLU}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (diffusers `get_timestep_embedding`), float32."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(exponent / (half - shift))
    args = timesteps[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int, act: str, post_act: str | None = None, cond_dim: int | None = None,
                 ops=TORCH_OPS):
        super().__init__()
        if cond_dim is not None:
            self.cond_proj = ops.Linear(cond_dim, in_dim, bias=False)
        self.linear_1 = ops.Linear(in_dim, dim)
        self.act = activation(act)
        self.linear_2 = ops.Linear(dim, dim)
        self.post_act = activation(post_act) if post_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_2(self.act(self.linear_1(x)))
        return self.post_act(x) if self.post_act is not None else x


class AttentionPooling(nn.Module):
    """DeepFloyd IF's text pooling: one query (mean token + learned position) over [query, tokens]."""

    def __init__(self, heads: int, dim: int, ops=TORCH_OPS):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(1, dim))  # cast where it is used: no layer owns it
        self.k_proj = ops.Linear(dim, dim)
        self.q_proj = ops.Linear(dim, dim)
        self.v_proj = ops.Linear(dim, dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, width = x.shape
        d = width // self.heads

        def shape(t: torch.Tensor) -> torch.Tensor:  # (b, L, width) -> (b * heads, d, L)
            return t.view(b, -1, self.heads, d).transpose(1, 2).reshape(b * self.heads, -1, d).transpose(1, 2)

        cls = x.mean(dim=1, keepdim=True) + cast_like(self.positional_embedding, x)
        x = torch.cat([cls, x], dim=1)
        q, k, v = shape(self.q_proj(cls)), shape(self.k_proj(x)), shape(self.v_proj(x))
        scale = 1 / math.sqrt(math.sqrt(d))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(b, -1, 1).transpose(1, 2)[:, 0, :]


class TextTimeEmbedding(nn.Module):
    """Pooled text embedding added to the timestep embedding (`addition_embed_type` "text")."""

    def __init__(self, text_dim: int, time_dim: int, heads: int, ops=TORCH_OPS):
        super().__init__()
        self.norm1 = ops.LayerNorm(text_dim)
        self.pool = AttentionPooling(heads, text_dim, ops)
        self.proj = ops.Linear(text_dim, time_dim)
        self.norm2 = ops.LayerNorm(time_dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.proj(self.pool(self.norm1(text))))


class ResnetBlock(nn.Module):
    """diffusers `ResnetBlock2D` (pre-norm), optionally resampling both paths by 2."""

    def __init__(self, in_ch: int, out_ch: int, *, temb_ch: int, groups: int, eps: float, act: str,
                 time_scale_shift: str, skip_time_act: bool, output_scale_factor: float,
                 up: bool = False, down: bool = False, ops=TORCH_OPS):
        super().__init__()
        self.norm1 = ops.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = ops.Conv2d(in_ch, out_ch, 3, padding=1)
        self.scale_shift = time_scale_shift == "scale_shift"
        self.time_emb_proj = ops.Linear(temb_ch, out_ch * 2 if self.scale_shift else out_ch)
        self.norm2 = ops.GroupNorm(groups, out_ch, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = ops.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nonlinearity = activation(act)
        self.skip_time_act = skip_time_act
        self.output_scale_factor = output_scale_factor
        self.up, self.down = up, down
        self.conv_shortcut = ops.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            if x.dtype == torch.bfloat16:  # nearest upsampling has no bf16 kernel everywhere
                return F.interpolate(x.float(), scale_factor=2.0, mode="nearest").to(x.dtype)
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.nonlinearity(self.norm1(x))
        x, h = self.resample(x), self.resample(h)
        h = self.conv1(h)
        t = temb if self.skip_time_act else self.nonlinearity(temb)
        t = self.time_emb_proj(t)[:, :, None, None]
        if self.scale_shift:
            scale, shift = t.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + t)
        h = self.conv2(self.nonlinearity(h))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor


class TemporalConv(nn.Module):
    """ModelScope temporal convolution: four GroupNorm-SiLU-Conv3d(3,1,1) stages and a residual.

    The checkpoints' layout (`conv1.0`, `conv1.2`, `conv2.0`, `conv2.3`, ...) keeps the dropout slots
    of the training code; inference runs in eval mode, where they do nothing. Frames are kept in the
    channels-last layout (B, F, H, W, C) of the UNet, so each stage runs on free views: the norm as a
    4-D GroupNorm over (B, C, F*H, W) and the (3, 1, 1) convolution as a (3, 1) conv2d over
    (B, C, F, H*W), with the weights the layer set gives for the input.
    """

    def __init__(self, channels: int, ops=TORCH_OPS):
        super().__init__()
        self.ops = ops

        def stage(dropout: bool) -> nn.Sequential:
            layers = [ops.GroupNorm(32, channels), nn.SiLU()]
            if dropout:
                layers.append(nn.Dropout(0.1))
            layers.append(ops.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
            return nn.Sequential(*layers)

        self.conv1 = stage(dropout=False)
        self.conv2 = stage(dropout=True)
        self.conv3 = stage(dropout=True)
        self.conv4 = stage(dropout=True)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        b = bf // num_frames
        frames = channels_last_frames(x)  # (B, F, H, W, C) memory
        out = frames
        for stage in (self.conv1, self.conv2, self.conv3, self.conv4):
            norm, conv = stage[0], stage[-1]
            v = out.reshape(b, num_frames * h, w, c).permute(0, 3, 1, 2)  # (B, C, F*H, W) channels-last
            v = F.silu(F.group_norm(v, norm.num_groups, *self.ops.weights(norm, v), norm.eps), inplace=True)
            v = v.permute(0, 2, 3, 1).reshape(b, num_frames, h * w, c).permute(0, 3, 1, 2)  # (B, C, F, H*W)
            weight, bias = self.ops.weights(conv, v)
            v = F.conv2d(v, weight.squeeze(-1), bias, padding=(1, 0))
            out = v.permute(0, 2, 3, 1)  # (B, F, H*W, C) memory
        return x + from_frames(out.reshape(b, num_frames, h, w, c))


def channels_last_frames(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) channels-last frames -> the same memory as an (N, H, W, C) tensor."""
    return x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)


def from_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W, C) -> (B*F, C, H, W) channels-last."""
    b, f, h, w, c = frames.shape
    return frames.reshape(b * f, h, w, c).permute(0, 3, 1, 2)


class Downsample(nn.Module):
    """diffusers `Downsample2D` with a convolution: 3x3, stride 2."""

    def __init__(self, channels: int, padding: int = 1, ops=TORCH_OPS):
        super().__init__()
        self.padding = padding
        self.conv = ops.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """diffusers `Upsample2D` with a convolution: nearest upsampling to `size`, then 3x3."""

    def __init__(self, channels: int, ops=TORCH_OPS):
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if x.dtype == torch.bfloat16:  # nearest upsampling has no bf16 kernel everywhere
            return self.conv(F.interpolate(x.float(), size=size, mode="nearest").to(x.dtype))
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


@dataclass(frozen=True)
class BlockType:
    """What a block type of the configs is made of."""

    attention: str | None  # "simple" (IF), "transformer" (ModelScope) or None
    if_family: bool  # IF resnets (the config's skip-act and output scale) and resampling resnets
    temporal: bool = True  # temporal convolutions and attention after each layer (IF-II's 2D blocks: none)


DOWN_BLOCKS = {
    "ResnetDownsampleBlock3D": BlockType(None, True), "SimpleCrossAttnDownBlock3D": BlockType("simple", True),
    "DownBlock3D": BlockType(None, False), "CrossAttnDownBlock3D": BlockType("transformer", False),
    "ResnetDownsampleBlock2D": BlockType(None, True, False), "SimpleCrossAttnDownBlock2D": BlockType("simple", True, False),
}
UP_BLOCKS = {
    "ResnetUpsampleBlock3D": BlockType(None, True), "SimpleCrossAttnUpBlock3D": BlockType("simple", True),
    "UpBlock3D": BlockType(None, False), "CrossAttnUpBlock3D": BlockType("transformer", False),
    "ResnetUpsampleBlock2D": BlockType(None, True, False), "SimpleCrossAttnUpBlock2D": BlockType("simple", True, False),
}
MID_BLOCKS = {"UNetMidBlock3DSimpleCrossAttn": BlockType("simple", True),
              "UNetMidBlock3DCrossAttn": BlockType("transformer", False),
              "UNetMidBlock2DSimpleCrossAttn": BlockType("simple", True, False)}


@dataclass(frozen=True, kw_only=True)
class BlockSettings:
    """Settings shared by every layer of one UNet, read from its config."""

    temb_ch: int
    groups: int
    eps: float
    act: str
    time_scale_shift: str
    skip_time_act: bool
    resnet_scale: float
    cross_attention_norm: str | None
    linear_projection: bool = False
    upcast_attention: bool = False
    downsample_padding: int = 1
    ops: object = TORCH_OPS

    def resnet(self, kind: BlockType, in_ch: int, out_ch: int, scale: float | None = None, **resample) -> ResnetBlock:
        # the ModelScope blocks of the published model take neither skip_time_act nor the output scale
        skip = self.skip_time_act if kind.if_family else False
        default_scale = self.resnet_scale if kind.if_family else 1.0
        return ResnetBlock(in_ch, out_ch, temb_ch=self.temb_ch, groups=self.groups, eps=self.eps, act=self.act,
                           time_scale_shift=self.time_scale_shift, skip_time_act=skip,
                           output_scale_factor=default_scale if scale is None else scale, **resample, ops=self.ops)

    def spatial_attention(self, kind: BlockType, ch: int, heads: int, context_dim: int, only_cross: bool,
                          layers: int) -> nn.Module:
        if kind.attention == "simple":  # here `heads` is the config's attention_head_dim, IF's head size
            return SimpleCrossAttention(ch, heads, context_dim, self.groups, only_cross, self.cross_attention_norm,
                                        self.ops)
        return SpatialTransformer(ch, heads, ch // heads, context_dim, self.groups, layers, self.linear_projection,
                                  only_cross, self.upcast_attention, self.ops)

    def temporal_attention(self, ch: int, heads: int) -> TemporalTransformer:
        # heads = the config's attention_head_dim and head size = channels / heads in every published
        # temporal layer (the spatial IF attention swaps the two)
        return TemporalTransformer(heads=heads, head_dim=ch // heads, channels=ch, groups=self.groups, ops=self.ops)


class UNetBlock(nn.Module):
    """One down or up block of either family.

    Layer i: resnet [-> temporal conv] [-> spatial attention [-> temporal attention]]; then an
    optional resampler (a resampling resnet in IF blocks, a convolution in ModelScope blocks). Up
    blocks concatenate a skip connection before each resnet. 2D blocks (IF-II) have no temporal
    layers.
    """

    def __init__(self, s: BlockSettings, kind: BlockType, *, in_ch: int, out_ch: int, num_layers: int, heads: int,
                 context_dim: int, only_cross: bool, transformer_layers: int, resample: str | None,
                 prev_out_ch: int | None = None):
        super().__init__()
        self.kind = kind
        self.is_up = prev_out_ch is not None
        resnets, convs, attns, temps = [], [], [], []
        for i in range(num_layers):
            if self.is_up:
                skip = in_ch if i == num_layers - 1 else out_ch
                res_in = (prev_out_ch if i == 0 else out_ch) + skip
            else:
                res_in = in_ch if i == 0 else out_ch
            resnets.append(s.resnet(kind, res_in, out_ch))
            convs.append(TemporalConv(out_ch, s.ops))
            if kind.attention:
                attns.append(s.spatial_attention(kind, out_ch, heads, context_dim, only_cross, transformer_layers))
                temps.append(s.temporal_attention(out_ch, heads))
        self.resnets = nn.ModuleList(resnets)
        if kind.temporal:
            self.temp_convs = nn.ModuleList(convs)
        if kind.attention:
            self.attentions = nn.ModuleList(attns)
            if kind.temporal:
                self.temp_attentions = nn.ModuleList(temps)
        if resample == "down":
            self.downsamplers = nn.ModuleList([s.resnet(kind, out_ch, out_ch, down=True) if kind.if_family
                                               else Downsample(out_ch, s.downsample_padding, s.ops)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([s.resnet(kind, out_ch, out_ch, up=True) if kind.if_family
                                             else Upsample(out_ch, s.ops)])
        self.resample = resample

    def forward(self, x, temb, context, num_frames, skips: list[torch.Tensor] | None = None):
        outputs = []
        for i, resnet in enumerate(self.resnets):
            if skips is not None:
                x = torch.cat([x, skips.pop()], dim=1)
            x = resnet(x, temb)
            if self.kind.temporal:
                x = self.temp_convs[i](x, num_frames)
            if self.kind.attention:
                x = self.attentions[i](x, context, num_frames)
                if self.kind.temporal:
                    x = self.temp_attentions[i](x, num_frames)
            outputs.append(x)
        if self.resample == "down":
            x = self.downsamplers[0](x, temb) if self.kind.if_family else self.downsamplers[0](x)
            outputs.append(x)
        elif self.resample == "up":
            # ModelScope upsamplers take the size of the next skip, so odd sizes come out right
            x = self.upsamplers[0](x, temb) if self.kind.if_family else self.upsamplers[0](x, skips[-1].shape[-2:])
        return x, outputs


class MidBlock(nn.Module):
    """`UNetMidBlock3DSimpleCrossAttn` / `UNetMidBlock3DCrossAttn` / `UNetMidBlock2DSimpleCrossAttn`:
    resnet [, temporal conv], then (attention [, temporal attention], resnet [, temporal conv]) per
    layer; its resnets use `mid_block_scale_factor`."""

    def __init__(self, s: BlockSettings, kind: BlockType, *, ch: int, heads: int, context_dim: int, only_cross: bool,
                 scale: float, transformer_layers: int, num_layers: int = 1):
        super().__init__()
        self.temporal = kind.temporal
        self.resnets = nn.ModuleList([s.resnet(kind, ch, ch, scale=scale) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([s.spatial_attention(kind, ch, heads, context_dim, only_cross,
                                                             transformer_layers) for _ in range(num_layers)])
        if kind.temporal:
            self.temp_convs = nn.ModuleList([TemporalConv(ch, s.ops) for _ in range(num_layers + 1)])
            self.temp_attentions = nn.ModuleList([s.temporal_attention(ch, heads) for _ in range(num_layers)])

    def forward(self, x, temb, context, num_frames):
        for i, resnet in enumerate(self.resnets):
            if i > 0:
                x = self.attentions[i - 1](x, context, num_frames)
                if self.temporal:
                    x = self.temp_attentions[i - 1](x, num_frames)
            x = resnet(x, temb)
            if self.temporal:
                x = self.temp_convs[i](x, num_frames)
        return x
