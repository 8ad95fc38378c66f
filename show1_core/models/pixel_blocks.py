"""Building blocks of the Show-1 pixel UNets: resnets, temporal convolutions, the IF-style down,
mid and up blocks, and the timestep / text-pooling embeddings.

Module and parameter names mirror the published checkpoints (diffusers 0.19 layout), e.g.
`down_blocks.1.temp_attentions.0.transformer_blocks.0.attn1.to_q.weight`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SimpleCrossAttention, TemporalTransformer

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
    def __init__(self, in_dim: int, dim: int, act: str, post_act: str | None = None, cond_dim: int | None = None):
        super().__init__()
        if cond_dim is not None:
            self.cond_proj = nn.Linear(cond_dim, in_dim, bias=False)
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = activation(act)
        self.linear_2 = nn.Linear(dim, dim)
        self.post_act = activation(post_act) if post_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear_2(self.act(self.linear_1(x)))
        return self.post_act(x) if self.post_act is not None else x


class AttentionPooling(nn.Module):
    """DeepFloyd IF's text pooling: one query (mean token + learned position) over [query, tokens]."""

    def __init__(self, heads: int, dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(1, dim))
        self.k_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, width = x.shape
        d = width // self.heads

        def shape(t: torch.Tensor) -> torch.Tensor:  # (b, L, width) -> (b * heads, d, L)
            return t.view(b, -1, self.heads, d).transpose(1, 2).reshape(b * self.heads, -1, d).transpose(1, 2)

        cls = x.mean(dim=1, keepdim=True) + self.positional_embedding.to(x.dtype)
        x = torch.cat([cls, x], dim=1)
        q, k, v = shape(self.q_proj(cls)), shape(self.k_proj(x)), shape(self.v_proj(x))
        scale = 1 / math.sqrt(math.sqrt(d))
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum("bts,bcs->bct", weight, v)
        return a.reshape(b, -1, 1).transpose(1, 2)[:, 0, :]


class TextTimeEmbedding(nn.Module):
    """Pooled text embedding added to the timestep embedding (`addition_embed_type` "text")."""

    def __init__(self, text_dim: int, time_dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(text_dim)
        self.pool = AttentionPooling(heads, text_dim)
        self.proj = nn.Linear(text_dim, time_dim)
        self.norm2 = nn.LayerNorm(time_dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.proj(self.pool(self.norm1(text))))


class ResnetBlock(nn.Module):
    """diffusers `ResnetBlock2D` (pre-norm), optionally resampling both paths by 2."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, groups: int, eps: float, act: str,
                 time_scale_shift: str, skip_time_act: bool, output_scale_factor: float,
                 up: bool = False, down: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.scale_shift = time_scale_shift == "scale_shift"
        self.time_emb_proj = nn.Linear(temb_ch, out_ch * 2 if self.scale_shift else out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nonlinearity = activation(act)
        self.skip_time_act = skip_time_act
        self.output_scale_factor = output_scale_factor
        self.up, self.down = up, down
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

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
    (B, C, F, H*W).
    """

    def __init__(self, channels: int):
        super().__init__()

        def stage(dropout: bool) -> nn.Sequential:
            layers = [nn.GroupNorm(32, channels), nn.SiLU()]
            if dropout:
                layers.append(nn.Dropout(0.1))
            layers.append(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
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
            v = F.silu(F.group_norm(v, norm.num_groups, norm.weight, norm.bias, norm.eps), inplace=True)
            v = v.permute(0, 2, 3, 1).reshape(b, num_frames, h * w, c).permute(0, 3, 1, 2)  # (B, C, F, H*W)
            v = F.conv2d(v, conv.weight.squeeze(-1), conv.bias, padding=(1, 0))
            out = v.permute(0, 2, 3, 1)  # (B, F, H*W, C) memory
        return x + from_frames(out.reshape(b, num_frames, h, w, c))


def channels_last_frames(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) channels-last frames -> the same memory as an (N, H, W, C) tensor."""
    return x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)


def from_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W, C) -> (B*F, C, H, W) channels-last."""
    b, f, h, w, c = frames.shape
    return frames.reshape(b * f, h, w, c).permute(0, 3, 1, 2)


class BlockSettings:
    """Settings shared by every resnet and attention of one UNet, read from its config."""

    def __init__(self, temb_ch: int, groups: int, eps: float, act: str, time_scale_shift: str,
                 skip_time_act: bool, resnet_scale: float, context_dim: int, cross_attention_norm: str | None):
        self.temb_ch, self.groups, self.eps, self.act = temb_ch, groups, eps, act
        self.time_scale_shift, self.skip_time_act = time_scale_shift, skip_time_act
        self.resnet_scale, self.context_dim = resnet_scale, context_dim
        self.cross_attention_norm = cross_attention_norm

    def resnet(self, in_ch: int, out_ch: int, scale: float | None = None, **resample) -> ResnetBlock:
        return ResnetBlock(in_ch, out_ch, self.temb_ch, self.groups, self.eps, self.act, self.time_scale_shift,
                           self.skip_time_act, self.resnet_scale if scale is None else scale, **resample)

    def spatial_attention(self, ch: int, head_dim: int, only_cross: bool) -> SimpleCrossAttention:
        return SimpleCrossAttention(ch, head_dim, self.context_dim, self.groups, only_cross, self.cross_attention_norm)

    def temporal_attention(self, ch: int, head_dim: int) -> TemporalTransformer:
        # heads and head size are swapped relative to the spatial attention, as in the checkpoints
        return TemporalTransformer(heads=head_dim, head_dim=ch // head_dim, channels=ch, groups=self.groups)


class PixelBlock(nn.Module):
    """One IF-style down or up block with temporal layers.

    Layer i: resnet -> temporal conv [-> spatial attention -> temporal attention]; then an optional
    resampling resnet. Up blocks concatenate a skip connection before each resnet.
    """

    def __init__(self, s: BlockSettings, in_ch: int, out_ch: int, num_layers: int, attention: bool,
                 head_dim: int, only_cross: bool, resample: str | None, prev_out_ch: int | None = None):
        super().__init__()
        self.is_up = prev_out_ch is not None
        self.has_attention = attention
        resnets, convs, attns, temps = [], [], [], []
        for i in range(num_layers):
            if self.is_up:
                skip = in_ch if i == num_layers - 1 else out_ch
                res_in = (prev_out_ch if i == 0 else out_ch) + skip
            else:
                res_in = in_ch if i == 0 else out_ch
            resnets.append(s.resnet(res_in, out_ch))
            convs.append(TemporalConv(out_ch))
            if attention:
                attns.append(s.spatial_attention(out_ch, head_dim, only_cross))
                temps.append(s.temporal_attention(out_ch, head_dim))
        self.resnets = nn.ModuleList(resnets)
        self.temp_convs = nn.ModuleList(convs)
        if attention:
            self.attentions = nn.ModuleList(attns)
            self.temp_attentions = nn.ModuleList(temps)
        if resample == "down":
            self.downsamplers = nn.ModuleList([s.resnet(out_ch, out_ch, down=True)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([s.resnet(out_ch, out_ch, up=True)])
        self.resample = resample

    def forward(self, x, temb, context, num_frames, skips: list[torch.Tensor] | None = None):
        outputs = []
        for i, (resnet, conv) in enumerate(zip(self.resnets, self.temp_convs)):
            if skips is not None:
                x = torch.cat([x, skips.pop()], dim=1)
            x = conv(resnet(x, temb), num_frames)
            if self.has_attention:
                x = self.attentions[i](x, context, num_frames)
                x = self.temp_attentions[i](x, num_frames)
            outputs.append(x)
        if self.resample == "down":
            x = self.downsamplers[0](x, temb)
            outputs.append(x)
        elif self.resample == "up":
            x = self.upsamplers[0](x, temb)
        return x, outputs


class MidBlock(nn.Module):
    """`UNetMidBlock3DSimpleCrossAttn`: resnet, temporal conv, then (attention, temporal attention,
    resnet, temporal conv) per layer; its resnets use `mid_block_scale_factor`."""

    def __init__(self, s: BlockSettings, ch: int, head_dim: int, only_cross: bool, scale: float, num_layers: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([s.resnet(ch, ch, scale=scale) for _ in range(num_layers + 1)])
        self.temp_convs = nn.ModuleList([TemporalConv(ch) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([s.spatial_attention(ch, head_dim, only_cross) for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList([s.temporal_attention(ch, head_dim) for _ in range(num_layers)])

    def forward(self, x, temb, context, num_frames):
        x = self.temp_convs[0](self.resnets[0](x, temb), num_frames)
        for attn, temp, resnet, conv in zip(self.attentions, self.temp_attentions, self.resnets[1:], self.temp_convs[1:]):
            x = temp(attn(x, context, num_frames), num_frames)
            x = conv(resnet(x, temb), num_frames)
        return x
