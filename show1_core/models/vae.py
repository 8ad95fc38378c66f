"""The latent stage's VAE: diffusers' `AutoencoderKL` (the SD-style VAE of show-1-sr2), with its
parameter names, built from the layers of a layer set so that ComfyUI can cast and stream it.

Tiled encoding and decoding follow diffusers' (tiles a quarter overlapped, seams blended linearly),
for frames larger than the VAE's sample size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError
from .config import from_config
from .ops import TORCH_OPS

EPS = 1e-6


@dataclass
class VAEConfig:
    """The keys of diffusers' AutoencoderKL config that shape the show-1-sr2 VAE."""

    block_out_channels: list[int]
    in_channels: int = 3
    out_channels: int = 3
    down_block_types: list[str] | None = None
    up_block_types: list[str] | None = None
    layers_per_block: int = 1
    act_fn: str = "silu"
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 32
    scaling_factor: float = 0.18215
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    @classmethod
    def from_dict(cls, config: dict) -> "VAEConfig":
        cfg = from_config(cls, config, "vae/config.json", "the show-1-sr2 VAE")
        blocks = {*(cfg.down_block_types or ["DownEncoderBlock2D"]), *(cfg.up_block_types or ["UpDecoderBlock2D"])}
        if not blocks <= {"DownEncoderBlock2D", "UpDecoderBlock2D"} or cfg.act_fn != "silu":
            raise ModelLoadError(f"vae/config.json: blocks {sorted(blocks)} / act_fn {cfg.act_fn} are not the "
                                 "SD-style AutoencoderKL of show-1-sr2")
        return cfg

    @property
    def size_multiple(self) -> int:
        """Frames must be multiples of this: one halving per block but the last."""
        return 2 ** (len(self.block_out_channels) - 1)


class Resnet(nn.Module):
    """diffusers `ResnetBlock2D` without a time embedding."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, ops):
        super().__init__()
        self.norm1 = ops.GroupNorm(groups, in_ch, eps=EPS)
        self.conv1 = ops.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = ops.GroupNorm(groups, out_ch, eps=EPS)
        self.conv2 = ops.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = ops.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class SelfAttention(nn.Module):
    """The mid block's single-head attention over all pixels of a frame."""

    def __init__(self, channels: int, groups: int, ops):
        super().__init__()
        self.group_norm = ops.GroupNorm(groups, channels, eps=EPS)
        self.to_q = ops.Linear(channels, channels)
        self.to_k = ops.Linear(channels, channels)
        self.to_v = ops.Linear(channels, channels)
        self.to_out = nn.ModuleList([ops.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)
        q, k, v = (layer(tokens).unsqueeze(1) for layer in (self.to_q, self.to_k, self.to_v))
        out = self.to_out[0](F.scaled_dot_product_attention(q, k, v)[:, 0])
        return out.transpose(1, 2).reshape(n, c, h, w) + x


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int, attention: bool, ops):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(channels, channels, groups, ops) for _ in range(2)])
        self.attentions = nn.ModuleList([SelfAttention(channels, groups, ops)] if attention else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        for attention in self.attentions:
            x = attention(x)
        return self.resnets[1](x)


class Downsample(nn.Module):
    """3x3 stride-2 convolution after padding the bottom and right by one (diffusers, padding 0)."""

    def __init__(self, channels: int, ops):
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int, ops):
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16:  # nearest upsampling has no bf16 kernel everywhere
            return self.conv(F.interpolate(x.float(), scale_factor=2.0, mode="nearest").to(x.dtype))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class CoderBlock(nn.Module):
    """`DownEncoderBlock2D` / `UpDecoderBlock2D`: resnets, then an optional resampler."""

    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, resample: str | None, ops):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(in_ch if i == 0 else out_ch, out_ch, groups, ops) for i in range(layers)])
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample(out_ch, ops)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample(out_ch, ops)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for resampler in (*getattr(self, "downsamplers", ()), *getattr(self, "upsamplers", ())):
            x = resampler(x)
        return x


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig, ops):
        super().__init__()
        ch = c.block_out_channels
        self.conv_in = ops.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            CoderBlock(ch[max(i - 1, 0)], ch[i], c.layers_per_block, c.norm_num_groups,
                       "down" if i < len(ch) - 1 else None, ops) for i in range(len(ch))])
        self.mid_block = MidBlock(ch[-1], c.norm_num_groups, c.mid_block_add_attention, ops)
        self.conv_norm_out = ops.GroupNorm(c.norm_num_groups, ch[-1], eps=EPS)
        self.conv_out = ops.Conv2d(ch[-1], 2 * c.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig, ops):
        super().__init__()
        ch = list(reversed(c.block_out_channels))
        self.conv_in = ops.Conv2d(c.latent_channels, ch[0], 3, padding=1)
        self.mid_block = MidBlock(ch[0], c.norm_num_groups, c.mid_block_add_attention, ops)
        self.up_blocks = nn.ModuleList([
            CoderBlock(ch[max(i - 1, 0)], ch[i], c.layers_per_block + 1, c.norm_num_groups,
                       "up" if i < len(ch) - 1 else None, ops) for i in range(len(ch))])
        self.conv_norm_out = ops.GroupNorm(c.norm_num_groups, ch[-1], eps=EPS)
        self.conv_out = ops.Conv2d(ch[-1], c.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    """Images (N, 3, H, W) in [-1, 1] <-> unscaled latents (N, C, H/f, W/f)."""

    def __init__(self, config: VAEConfig, ops=TORCH_OPS):
        super().__init__()
        self.config = c = config
        self.compute_dtype = torch.float32  # set by the loader
        self.encoder = Encoder(c, ops)
        self.decoder = Decoder(c, ops)
        self.quant_conv = ops.Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1) if c.use_quant_conv else None
        self.post_quant_conv = ops.Conv2d(c.latent_channels, c.latent_channels, 1) if c.use_post_quant_conv else None

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    def moments(self, images: torch.Tensor) -> torch.Tensor:
        m = self.encoder(images)
        return m if self.quant_conv is None else self.quant_conv(m)

    @property
    def tile_size(self) -> int:
        """Pixel size of one tile of a tiled encode or decode: the VAE's sample size."""
        sample = self.config.sample_size
        return sample[0] if isinstance(sample, (list, tuple)) else sample

    def posterior(self, images: torch.Tensor, tile: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the latent distribution of `images`."""
        pixels, latents = self.tile_size, self.tile_size // self.size_multiple
        moments = tiled(images, self.moments, pixels, latents) if tile else self.moments(images)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents if self.post_quant_conv is None else self.post_quant_conv(latents))

    def decode(self, latents: torch.Tensor, tile: bool = False) -> torch.Tensor:
        """Images from unscaled latents, not clamped."""
        pixels, latent_size = self.tile_size, self.tile_size // self.size_multiple
        return tiled(latents, self._decode, latent_size, pixels) if tile else self._decode(latents)


def tiled(x: torch.Tensor, run, tile_in: int, tile_out: int) -> torch.Tensor:
    """`run` over tiles of `x` of `tile_in` pixels, a quarter overlapped, as diffusers' tiled
    encode/decode does: each output tile (`tile_out` pixels) is blended linearly with its upper and
    left neighbours over a quarter of its size. Inputs no larger than one tile go through whole."""
    if x.shape[-1] <= tile_in and x.shape[-2] <= tile_in:
        return run(x)
    stride, blend = int(tile_in * 0.75), int(tile_out * 0.25)
    keep = tile_out - blend
    rows = [[run(x[:, :, i:i + tile_in, j:j + tile_in]) for j in range(0, x.shape[-1], stride)]
            for i in range(0, x.shape[-2], stride)]
    out_rows = []
    for i, row in enumerate(rows):
        parts = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = blend_rows(rows[i - 1][j], tile, blend)
            if j > 0:
                tile = blend_columns(row[j - 1], tile, blend)
            parts.append(tile[:, :, :keep, :keep])
        out_rows.append(torch.cat(parts, dim=3))
    return torch.cat(out_rows, dim=2)


def blend_rows(above: torch.Tensor, tile: torch.Tensor, extent: int) -> torch.Tensor:
    extent = min(above.shape[2], tile.shape[2], extent)
    if extent:
        w = torch.arange(extent, dtype=tile.dtype, device=tile.device)[:, None] / extent
        tile = tile.clone()
        tile[:, :, :extent] = above[:, :, -extent:] * (1 - w) + tile[:, :, :extent] * w
    return tile


def blend_columns(left: torch.Tensor, tile: torch.Tensor, extent: int) -> torch.Tensor:
    extent = min(left.shape[3], tile.shape[3], extent)
    if extent:
        w = torch.arange(extent, dtype=tile.dtype, device=tile.device) / extent
        tile = tile.clone()
        tile[:, :, :, :extent] = left[:, :, :, -extent:] * (1 - w) + tile[:, :, :, :extent] * w
    return tile


def convert_legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints written before diffusers 0.14 name the mid-block attention query/key/value/
    proj_attn (possibly as 1x1 convolutions); diffusers converts them on load, and so do we."""
    names = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in names:
            key = ".".join([*parts[:-2], names[parts[-2]], parts[-1]])
            if tensor.dim() == 4:
                tensor = tensor[:, :, 0, 0]
        out[key] = tensor
    return out
