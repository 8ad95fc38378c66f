"""The UNets of the cascade: show-1-base, -interpolation, -sr1, -sr2, and DeepFloyd IF-II.

One config-driven class builds all five from their `unet/config.json`. For the four Show-1 UNets it
computes exactly what the published `showone.models.unet_3d_condition.UNet3DConditionModel` does:
DeepFloyd-IF blocks (pixel stages) or ModelScope blocks (sr2) with temporal convolutions and
temporal attention, an optional temporal transformer after `conv_in` (`transfromer_in_opt`, sic),
the pooled-text addition embedding and an optional noise-level class embedding. The published class
splits attention heads as heads = `attention_head_dim`; diffusers' own `UNet3DConditionModel`
splits them the other way, so it computes another function with the same weights and is not used.
IF-II's `UNet2DConditionModel` is the same IF family without temporal layers; it takes one frame.

Inputs and outputs are videos `(B, C, F, H, W)`; inside, frames are folded into the batch as
`b * F + f`. Layers come from a layer set (`ops`), so ComfyUI can cast and stream them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from torch import nn

from ..errors import ModelLoadError
from .attention import TemporalTransformer
from .blocks import (
    DOWN_BLOCKS,
    MID_BLOCKS,
    UP_BLOCKS,
    BlockSettings,
    MidBlock,
    TextTimeEmbedding,
    TimestepEmbedding,
    UNetBlock,
    activation,
    timestep_embedding,
)
from .config import from_config
from .ops import TORCH_OPS


def per_block(value: Any, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ModelLoadError(f"unet/config.json: '{name}' has {len(value)} entries for {n} blocks")
        return list(value)
    return [value] * n


@dataclass
class UNetConfig:
    """The keys of the published UNet3DConditionModel (and IF-II UNet2DConditionModel) configs that
    shape the checkpoints."""

    in_channels: int
    out_channels: int
    block_out_channels: list[int]
    down_block_types: list[str]
    up_block_types: list[str]
    layers_per_block: int | list[int] = 2
    attention_head_dim: int | list[int] = 8
    cross_attention_dim: int | list[int] = 1280
    mid_block_type: str | None = "UNetMidBlock3DCrossAttn"
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
    transformer_layers_per_block: int | list[int] = 1
    use_linear_projection: bool = False
    upcast_attention: bool = False
    downsample_padding: int = 1
    sample_size: Any = None
    # accepted and without effect on these models, as in the published implementation
    addition_time_embed_dim: Any = None
    projection_class_embeddings_input_dim: Any = None

    @classmethod
    def from_dict(cls, config: dict) -> "UNetConfig":
        cfg = from_config(cls, config, "unet/config.json", "folder a Show-1 stage")
        cfg.validate()
        return cfg

    @property
    def heads(self) -> list[int]:
        """Per block: the published `num_attention_heads or attention_head_dim`."""
        return per_block(self.attention_head_dim, len(self.block_out_channels), "attention_head_dim")

    @property
    def text_dim(self) -> int:
        """Width of the text states the UNet takes (T5 or CLIP)."""
        return self.encoder_hid_dim or per_block(self.cross_attention_dim, 1, "cross_attention_dim")[0]

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this: IF blocks halve with a resnet that needs even
        sizes; ModelScope blocks take any size."""
        resnet_resampled = sum(DOWN_BLOCKS[t].if_family for t in self.down_block_types[:-1])
        return 2 ** resnet_resampled

    @property
    def temporal(self) -> bool:
        """Whether the UNet sees frames together (False: IF-II, one image at a time)."""
        return all(DOWN_BLOCKS[t].temporal for t in self.down_block_types)

    @property
    def family(self) -> str:
        """"if" (DeepFloyd-IF blocks: the pixel UNets and IF-II) or "modelscope" (sr2)."""
        return "if" if all(DOWN_BLOCKS[t].if_family for t in self.down_block_types) else "modelscope"

    def validate(self) -> None:
        def unsupported(what: str) -> ModelLoadError:
            return ModelLoadError(f"unet/config.json: {what} is not used by any Show-1 checkpoint and is not "
                                  "supported; is this folder a Show-1 stage?")

        n = len(self.block_out_channels)
        kinds = [DOWN_BLOCKS.get(t) for t in self.down_block_types] + [UP_BLOCKS.get(t) for t in self.up_block_types]
        if None not in kinds and len({k.temporal for k in kinds}) > 1:
            raise ModelLoadError("unet/config.json: 2D and 3D blocks are mixed; is this folder a Show-1 stage?")
        if not (len(self.down_block_types) == len(self.up_block_types) == n):
            raise ModelLoadError("unet/config.json: down_block_types, up_block_types and block_out_channels "
                                 "must have the same length")
        for t in self.down_block_types:
            if t not in DOWN_BLOCKS:
                raise unsupported(f"down block '{t}'")
        for t in self.up_block_types:
            if t not in UP_BLOCKS:
                raise unsupported(f"up block '{t}'")
        if self.mid_block_type is not None and self.mid_block_type not in MID_BLOCKS:
            raise unsupported(f"mid_block_type '{self.mid_block_type}'")
        if self.num_attention_heads is not None:
            raise unsupported("num_attention_heads (the published class refuses it)")
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
        if self.norm_num_groups is None:
            raise unsupported("norm_num_groups null")
        for ch, heads, kind in zip(self.block_out_channels, self.heads, self.down_block_types):
            if DOWN_BLOCKS[kind].attention and ch % heads:
                raise ModelLoadError(f"unet/config.json: {ch} channels do not split into {heads} attention heads")


@dataclass
class TextCondition:
    """Prompt-dependent inputs of the UNet, computed once per sampling run instead of every step:
    per text row (T, ...), or per text row and frame (T, F, ...) for a storyboard, where every frame
    of a video attends to its own text."""

    context: torch.Tensor  # text states for cross-attention (T, [F,] 77, cross_attention_dim), projected if asked
    pooled: torch.Tensor | None  # pooled text embedding added to the timestep embedding (T, [F,] time_dim)

    @property
    def per_frame(self) -> bool:
        return self.context.dim() == 4

    def select(self, index: torch.Tensor) -> "TextCondition":
        """Rows for a model batch built from these prompts, e.g. [negative, positive] per window."""
        return TextCondition(self.context[index], None if self.pooled is None else self.pooled[index])

    def frames(self, part: slice) -> "TextCondition":
        """The text of the frames `part` (per-video text is the same for every frame)."""
        if not self.per_frame:
            return self
        return TextCondition(self.context[:, part], None if self.pooled is None else self.pooled[:, part])


class Show1UNet(nn.Module):
    """A UNet of the cascade (base / interpolation / sr1 / sr2 / IF-II), built from its
    `unet/config.json` with the layers of `ops`."""

    def __init__(self, config: UNetConfig, ops=TORCH_OPS):
        super().__init__()
        self.config = c = config
        self.compute_dtype = torch.float32  # the dtype its arithmetic runs in; set by the loader
        n = len(c.block_out_channels)
        ch0 = c.block_out_channels[0]
        time_dim = c.time_embedding_dim or ch0 * 4
        layers = per_block(c.layers_per_block, n, "layers_per_block")
        heads = c.heads
        context = per_block(c.cross_attention_dim, n, "cross_attention_dim")
        tlayers = per_block(c.transformer_layers_per_block, n, "transformer_layers_per_block")
        only_cross = per_block(c.only_cross_attention, n, "only_cross_attention")
        mid_only_cross = c.mid_block_only_cross_attention
        if mid_only_cross is None:
            mid_only_cross = c.only_cross_attention if isinstance(c.only_cross_attention, bool) else False

        pad = (c.conv_in_kernel - 1) // 2
        self.conv_in = ops.Conv2d(c.in_channels, ch0, c.conv_in_kernel, padding=pad)
        if c.transfromer_in_opt:
            # hard-wired in the published model: 8 heads of 64, one layer
            self.transformer_in = TemporalTransformer(heads=8, head_dim=64, channels=ch0, groups=32, ops=ops)
        self.time_embedding = TimestepEmbedding(ch0, time_dim, c.act_fn, c.timestep_post_act, c.time_cond_proj_dim,
                                                ops=ops)
        if c.encoder_hid_dim_type == "text_proj":
            self.encoder_hid_proj = ops.Linear(c.encoder_hid_dim, context[0])
        if c.class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(ch0, time_dim, c.act_fn, ops=ops)
        if c.addition_embed_type == "text":
            self.add_embedding = TextTimeEmbedding(c.text_dim, time_dim, c.addition_embed_type_num_heads, ops)
        self.time_embed_act = activation(c.time_embedding_act_fn) if c.time_embedding_act_fn else None

        s = BlockSettings(temb_ch=time_dim, groups=c.norm_num_groups, eps=c.norm_eps, act=c.act_fn,
                          time_scale_shift=c.resnet_time_scale_shift, skip_time_act=c.resnet_skip_time_act,
                          resnet_scale=c.resnet_out_scale_factor, cross_attention_norm=c.cross_attention_norm,
                          linear_projection=c.use_linear_projection, upcast_attention=c.upcast_attention,
                          downsample_padding=c.downsample_padding, ops=ops)
        self.down_blocks = nn.ModuleList()
        out_ch = ch0
        for i, name in enumerate(c.down_block_types):
            in_ch, out_ch = out_ch, c.block_out_channels[i]
            self.down_blocks.append(UNetBlock(
                s, DOWN_BLOCKS[name], in_ch=in_ch, out_ch=out_ch, num_layers=layers[i], heads=heads[i],
                context_dim=context[i], only_cross=only_cross[i], transformer_layers=tlayers[i],
                resample="down" if i < n - 1 else None))
        self.mid_block = None
        if c.mid_block_type is not None:
            kind = MID_BLOCKS[c.mid_block_type]
            self.mid_block = MidBlock(s, kind, ch=c.block_out_channels[-1], heads=heads[-1], context_dim=context[-1],
                                      only_cross=mid_only_cross if kind.if_family else False,
                                      scale=c.mid_block_scale_factor, transformer_layers=tlayers[-1])
        rev_ch = list(reversed(c.block_out_channels))
        self.up_blocks = nn.ModuleList()
        out_ch = rev_ch[0]
        for i, name in enumerate(c.up_block_types):
            kind, r = UP_BLOCKS[name], n - 1 - i
            prev_out, out_ch = out_ch, rev_ch[i]
            in_ch = rev_ch[min(i + 1, n - 1)]
            # the published model reverses the head counts for the ModelScope up blocks only
            self.up_blocks.append(UNetBlock(
                s, kind, in_ch=in_ch, out_ch=out_ch, num_layers=layers[r] + 1,
                heads=heads[i] if kind.if_family else heads[r], context_dim=context[r], only_cross=only_cross[r],
                transformer_layers=tlayers[r], resample="up" if i < n - 1 else None, prev_out_ch=prev_out))
        self.conv_norm_out = ops.GroupNorm(c.norm_num_groups, ch0, eps=c.norm_eps)
        self.conv_act = activation(c.act_fn)
        pad = (c.conv_out_kernel - 1) // 2
        self.conv_out = ops.Conv2d(ch0, c.out_channels, c.conv_out_kernel, padding=pad)

    def use_channels_last(self) -> "Show1UNet":
        """Store conv weights channels-last, the layout the blocks compute in (faster CPU convolutions)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
        return self

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def text_dim(self) -> int:
        return self.config.text_dim

    @property
    def noise_channels(self) -> int:
        """Output channels that predict noise; the IF family predicts as many again, its learned variance."""
        return self.config.out_channels // 2 if self.config.family == "if" else self.config.out_channels

    @property
    def max_frames(self) -> int | None:
        """Frames one video may have: 1 for IF-II, any number for the Show-1 UNets."""
        return None if self.config.temporal else 1

    def activation_elements(self, frames: int, height: int, width: int) -> int:
        """Elements of one video's first-level activation, the unit of the activation budget: the
        ModelScope layout (sr2) keeps wide spatial transformers at every level, hence x4."""
        weight = 4 if self.config.family == "modelscope" else 1
        return frames * height * width * self.config.block_out_channels[0] * weight

    def prepare_text(self, encoder_hidden_states: torch.Tensor) -> TextCondition:
        """Text states (T, 77, D), or (T, F, 77, D) with a text per frame -> the UNet's condition."""
        if encoder_hidden_states.dim() == 4:
            rows, frames = encoder_hidden_states.shape[:2]
            flat = self.prepare_text(encoder_hidden_states.flatten(0, 1))
            return TextCondition(flat.context.unflatten(0, (rows, frames)),
                                 None if flat.pooled is None else flat.pooled.unflatten(0, (rows, frames)))
        pooled = self.add_embedding(encoder_hidden_states) if self.config.addition_embed_type == "text" else None
        context = encoder_hidden_states
        if self.config.encoder_hid_dim_type == "text_proj":
            context = self.encoder_hid_proj(context)
        return TextCondition(context, pooled)

    def time_embed(self, timestep: torch.Tensor, batch: int, class_labels: torch.Tensor | None,
                   pooled: torch.Tensor | None, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        c = self.config
        ch0 = c.block_out_channels[0]
        t = timestep.reshape(-1).to(device).expand(batch)
        emb = self.time_embedding(timestep_embedding(t, ch0, c.flip_sin_to_cos, c.freq_shift).to(dtype))
        if c.class_embed_type == "timestep":
            if class_labels is None:
                raise ValueError("this UNet is conditioned on a noise level: pass class_labels")
            labels = class_labels.reshape(-1).to(t.device).expand(batch)
            emb = emb + self.class_embedding(timestep_embedding(labels, ch0, c.flip_sin_to_cos, c.freq_shift).to(dtype))
        if pooled is not None and pooled.dim() == 3:  # a text per frame: the embedding per frame
            emb = emb.repeat_interleave(pooled.shape[1], dim=0) + pooled.flatten(0, 1)
        elif pooled is not None:
            emb = emb + pooled
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        return emb

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int,
                encoder_hidden_states: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                text: TextCondition | None = None) -> torch.Tensor:
        """Predict noise for a video batch (pixel UNets: noise in channels 0..C-1 and the learned
        variance in C..2C-1).

        Pass either the raw text states `encoder_hidden_states` (B, 77, D) or a `text` condition from
        `prepare_text`, which sampling loops compute once (per video, or per frame: (B, F, ...)).
        """
        if text is None:
            text = self.prepare_text(encoder_hidden_states)
        b, _, frames, h, w = sample.shape
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long)
        if self.max_frames is not None and frames > self.max_frames:
            raise ValueError(f"this UNet takes {self.max_frames} frame(s) per video, got {frames}")
        emb = self.time_embed(timestep, b, class_labels, text.pooled, sample.dtype, sample.device)
        if emb.shape[0] == b:
            emb = emb.repeat_interleave(frames, dim=0)
        context = text.context.flatten(0, 1) if text.per_frame else text.context  # (B*F, ...) rows per frame

        x = rearrange(sample, "b c f h w -> (b f) c h w").contiguous(memory_format=torch.channels_last)
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
        return rearrange(x, "(b f) c h w -> b c f h w", b=b)
