"""The Show-1 pixel UNet family (show-1-base, show-1-interpolation, show-1-sr1).

One config-driven class builds all three from their `unet/config.json`, exactly as the published
`showone.models.UNet3DConditionModel` does for these checkpoints: DeepFloyd-IF blocks with temporal
convolutions and temporal attention, an optional temporal transformer after `conv_in`
(`transfromer_in_opt`, sic), the pooled-text addition embedding and an optional noise-level
class embedding. Inputs and outputs are videos `(B, C, F, H, W)`; inside, frames are folded into
the batch as `b * F + f`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .attention import TemporalTransformer
from .pixel_blocks import BlockSettings, MidBlock, PixelBlock, TextTimeEmbedding, TimestepEmbedding, activation, \
    timestep_embedding

DOWN_BLOCKS = {"ResnetDownsampleBlock3D": False, "SimpleCrossAttnDownBlock3D": True}
UP_BLOCKS = {"ResnetUpsampleBlock3D": False, "SimpleCrossAttnUpBlock3D": True}


def per_block(value: Any, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ModelLoadError(f"unet/config.json: '{name}' has {len(value)} entries for {n} blocks")
        return list(value)
    return [value] * n


@dataclass
class PixelUNetConfig:
    """The subset of diffusers' UNet3DConditionModel config that the Show-1 pixel checkpoints use."""

    in_channels: int
    out_channels: int
    block_out_channels: list[int]
    down_block_types: list[str]
    up_block_types: list[str]
    layers_per_block: int | list[int] = 2
    attention_head_dim: int | list[int] = 8
    cross_attention_dim: int = 1280
    mid_block_type: str | None = "UNetMidBlock3DSimpleCrossAttn"
    mid_block_scale_factor: float = 1.0
    mid_block_only_cross_attention: bool | None = None
    only_cross_attention: bool | list[bool] = False
    act_fn: str = "silu"
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: float = 0
    time_embedding_type: str = "positional"
    time_embedding_dim: int | None = None
    time_embedding_act_fn: str | None = None
    timestep_post_act: str | None = None
    time_cond_proj_dim: int | None = None
    class_embed_type: str | None = None
    num_class_embeds: int | None = None
    class_embeddings_concat: bool = False
    addition_embed_type: str | None = None
    addition_embed_type_num_heads: int = 64
    encoder_hid_dim: int | None = None
    encoder_hid_dim_type: str | None = None
    resnet_time_scale_shift: str = "default"
    resnet_skip_time_act: bool = False
    resnet_out_scale_factor: float = 1.0
    cross_attention_norm: str | None = None
    conv_in_kernel: int = 3
    conv_out_kernel: int = 3
    center_input_sample: bool = False
    transfromer_in_opt: bool = False
    num_attention_heads: Any = None
    dual_cross_attention: bool = False
    transformer_layers_per_block: int = 1
    sample_size: Any = None
    # accepted and without effect on these blocks, as in the published implementation
    use_linear_projection: bool = False
    upcast_attention: bool = False
    downsample_padding: int = 1
    addition_time_embed_dim: Any = None
    projection_class_embeddings_input_dim: Any = None

    @classmethod
    def from_dict(cls, config: dict) -> "PixelUNetConfig":
        names = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in config.items() if k in names})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def unsupported(what: str) -> ModelLoadError:
            return ModelLoadError(f"unet/config.json: {what} is not used by any Show-1 pixel checkpoint and is not "
                                  "supported; is this folder a Show-1 stage?")

        n = len(self.block_out_channels)
        if not (len(self.down_block_types) == len(self.up_block_types) == n):
            raise ModelLoadError("unet/config.json: down_block_types, up_block_types and block_out_channels "
                                 "must have the same length")
        for t in self.down_block_types:
            if t not in DOWN_BLOCKS:
                raise unsupported(f"down block '{t}'")
        for t in self.up_block_types:
            if t not in UP_BLOCKS:
                raise unsupported(f"up block '{t}'")
        if self.mid_block_type not in ("UNetMidBlock3DSimpleCrossAttn", None):
            raise unsupported(f"mid_block_type '{self.mid_block_type}'")
        if self.num_attention_heads is not None:
            raise unsupported("num_attention_heads")
        if self.time_embedding_type != "positional":
            raise unsupported(f"time_embedding_type '{self.time_embedding_type}'")
        if self.class_embed_type not in (None, "timestep") or self.num_class_embeds is not None:
            raise unsupported(f"class_embed_type '{self.class_embed_type}'")
        if self.class_embeddings_concat:
            raise unsupported("class_embeddings_concat")
        if self.addition_embed_type not in (None, "text"):
            raise unsupported(f"addition_embed_type '{self.addition_embed_type}'")
        if self.encoder_hid_dim is not None and self.encoder_hid_dim_type is None:
            self.encoder_hid_dim_type = "text_proj"
        if self.encoder_hid_dim_type not in (None, "text_proj"):
            raise unsupported(f"encoder_hid_dim_type '{self.encoder_hid_dim_type}'")
        if self.resnet_time_scale_shift not in ("default", "scale_shift"):
            raise unsupported(f"resnet_time_scale_shift '{self.resnet_time_scale_shift}'")
        if self.cross_attention_norm not in (None, "group_norm"):
            raise unsupported(f"cross_attention_norm '{self.cross_attention_norm}'")
        if self.dual_cross_attention or self.center_input_sample:
            raise unsupported("dual_cross_attention / center_input_sample")
        if not isinstance(self.cross_attention_dim, int):
            raise unsupported("a per-block cross_attention_dim")


@dataclass
class PixelTextCondition:
    """Prompt-dependent inputs of the UNet, computed once per sampling run instead of every step."""

    context: torch.Tensor  # projected text states (B, 77, cross_attention_dim)
    pooled: torch.Tensor | None  # pooled text embedding added to the timestep embedding (B, time_dim)

    def select(self, index: torch.Tensor) -> "PixelTextCondition":
        """Rows for a model batch built from these prompts, e.g. [negative, positive] per window."""
        return PixelTextCondition(self.context[index], None if self.pooled is None else self.pooled[index])


class PixelUNet(nn.Module):
    """Show-1 pixel UNet (base / interpolation / sr1), built from its `unet/config.json`."""

    def __init__(self, config: PixelUNetConfig):
        super().__init__()
        self.config = config
        c = config
        n = len(c.block_out_channels)
        ch0 = c.block_out_channels[0]
        time_dim = c.time_embedding_dim or ch0 * 4
        layers = per_block(c.layers_per_block, n, "layers_per_block")
        head_dims = per_block(c.attention_head_dim, n, "attention_head_dim")
        only_cross = per_block(c.only_cross_attention, n, "only_cross_attention")
        mid_only_cross = c.mid_block_only_cross_attention
        if mid_only_cross is None:
            mid_only_cross = c.only_cross_attention if isinstance(c.only_cross_attention, bool) else False

        pad = (c.conv_in_kernel - 1) // 2
        self.conv_in = nn.Conv2d(c.in_channels, ch0, c.conv_in_kernel, padding=pad)
        if c.transfromer_in_opt:
            # hard-wired in the published model: 8 heads of 64, one layer
            self.transformer_in = TemporalTransformer(heads=8, head_dim=64, channels=ch0, groups=32)
        self.time_embedding = TimestepEmbedding(ch0, time_dim, c.act_fn, c.timestep_post_act, c.time_cond_proj_dim)
        if c.encoder_hid_dim_type == "text_proj":
            self.encoder_hid_proj = nn.Linear(c.encoder_hid_dim, c.cross_attention_dim)
        if c.class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(ch0, time_dim, c.act_fn)
        if c.addition_embed_type == "text":
            text_dim = c.encoder_hid_dim if c.encoder_hid_dim is not None else c.cross_attention_dim
            self.add_embedding = TextTimeEmbedding(text_dim, time_dim, c.addition_embed_type_num_heads)
        self.time_embed_act = activation(c.time_embedding_act_fn) if c.time_embedding_act_fn else None

        s = BlockSettings(time_dim, c.norm_num_groups, c.norm_eps, c.act_fn, c.resnet_time_scale_shift,
                          c.resnet_skip_time_act, c.resnet_out_scale_factor, c.cross_attention_dim,
                          c.cross_attention_norm)
        self.down_blocks = nn.ModuleList()
        out_ch = ch0
        for i, kind in enumerate(c.down_block_types):
            in_ch, out_ch = out_ch, c.block_out_channels[i]
            self.down_blocks.append(PixelBlock(
                s, in_ch, out_ch, layers[i], DOWN_BLOCKS[kind], head_dims[i], only_cross[i],
                resample="down" if i < n - 1 else None))
        self.mid_block = None
        if c.mid_block_type is not None:
            self.mid_block = MidBlock(s, c.block_out_channels[-1], head_dims[-1], mid_only_cross,
                                      c.mid_block_scale_factor)
        rev_ch = list(reversed(c.block_out_channels))
        rev_layers = list(reversed(layers))
        rev_only_cross = list(reversed(only_cross))
        self.up_blocks = nn.ModuleList()
        out_ch = rev_ch[0]
        for i, kind in enumerate(c.up_block_types):
            prev_out, out_ch = out_ch, rev_ch[i]
            in_ch = rev_ch[min(i + 1, n - 1)]
            # the published model indexes attention_head_dim without reversing it for the up blocks
            self.up_blocks.append(PixelBlock(
                s, in_ch, out_ch, rev_layers[i] + 1, UP_BLOCKS[kind], head_dims[i], rev_only_cross[i],
                resample="up" if i < n - 1 else None, prev_out_ch=prev_out))
        self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, ch0, eps=c.norm_eps)
        self.conv_act = activation(c.act_fn)
        pad = (c.conv_out_kernel - 1) // 2
        self.conv_out = nn.Conv2d(ch0, c.out_channels, c.conv_out_kernel, padding=pad)

    def use_channels_last(self) -> "PixelUNet":
        """Store conv weights channels-last, the layout the blocks compute in (faster CPU convolutions)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
        return self

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (one halving per down block but the last)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def text_dim(self) -> int:
        return self.config.encoder_hid_dim or self.config.cross_attention_dim

    def prepare_text(self, encoder_hidden_states: torch.Tensor) -> PixelTextCondition:
        pooled = self.add_embedding(encoder_hidden_states) if self.config.addition_embed_type == "text" else None
        context = encoder_hidden_states
        if self.config.encoder_hid_dim_type == "text_proj":
            context = self.encoder_hid_proj(context)
        return PixelTextCondition(context, pooled)

    def time_embed(self, timestep: torch.Tensor, batch: int, class_labels: torch.Tensor | None,
                   pooled: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        c = self.config
        ch0 = c.block_out_channels[0]
        t = timestep.reshape(-1).to(self.conv_in.weight.device).expand(batch)
        emb = self.time_embedding(timestep_embedding(t, ch0, c.flip_sin_to_cos, c.freq_shift).to(dtype))
        if c.class_embed_type == "timestep":
            if class_labels is None:
                raise ValueError("this UNet is conditioned on a noise level: pass class_labels")
            labels = class_labels.reshape(-1).to(t.device).expand(batch)
            emb = emb + self.class_embedding(timestep_embedding(labels, ch0, c.flip_sin_to_cos, c.freq_shift).to(dtype))
        if pooled is not None:
            emb = emb + pooled
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        return emb

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int,
                encoder_hidden_states: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                text: PixelTextCondition | None = None) -> torch.Tensor:
        """Predict noise (channels 0..C-1) and the learned variance (C..2C-1) for a video batch.

        Pass either the raw text states `encoder_hidden_states` (B, 77, D) or a `text` condition from
        `prepare_text`, which sampling loops compute once.
        """
        if text is None:
            text = self.prepare_text(encoder_hidden_states)
        b, _, frames, h, w = sample.shape
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long)
        emb = self.time_embed(timestep, b, class_labels, text.pooled, sample.dtype)
        emb = emb.repeat_interleave(frames, dim=0)
        context = text.context

        x = sample.transpose(1, 2).reshape(b * frames, -1, h, w).contiguous(memory_format=torch.channels_last)
        x = self.conv_in(x)
        if self.config.transfromer_in_opt:
            x = self.transformer_in(x, frames)
        skips = [x]
        for block in self.down_blocks:
            x, outs = block(x, emb, context, frames)
            skips.extend(outs)
        if self.mid_block is not None:
            x = self.mid_block(x, emb, context, frames)
        for block in self.up_blocks:
            x, _ = block(x, emb, context, frames, skips=skips)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(b, frames, -1, h, w).transpose(1, 2)
