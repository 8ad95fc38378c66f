"""VAE encode / decode of frame batches for the latent stages.

Frames are independent, so they go through the VAE in chunks (slicing) to bound memory; large
frames can also be tiled (overlapping tiles with blended seams, slightly different numbers, so off
by default). Latents are `(B, C, F, h, w)` already multiplied by the VAE's scaling factor, the
layout ComfyUI uses for video latents.
"""

from __future__ import annotations

import torch

from .. import rules
from ..context import RunContext
from ..errors import require
from ..models.vae import AutoencoderKL
from ..sampling import fold, randn, unfold
from ..settings import VAEDecodeSettings, VAEEncodeSettings
from .common import finite_output, make_generator, refuse_non_finite, validate_video


def chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def require_vae(vae) -> None:
    require(isinstance(vae, AutoencoderKL), f"vae: expected the AutoencoderKL of show-1-sr2, got {type(vae).__name__}; "
                                            "connect the show-1-sr2 VAE from Show1VAELoader")


def encode_video(vae: AutoencoderKL, video: torch.Tensor, settings: VAEEncodeSettings, ctx: RunContext,
                 generator: torch.Generator | None) -> torch.Tensor:
    """Scaled latents of a checked video: the posterior mean, or with `generator` a posterior
    sample drawing one (B*F, C, h, w) tensor, as the published sr2 pipeline does."""
    frames = fold(video.float())
    parts = chunks(frames.shape[0], settings.frames_per_chunk)
    progress = ctx.progress("vae", len(parts))
    means, stds = [], []
    with ctx.use(vae) as device:
        for part in parts:
            ctx.stop_if_cancelled()
            mean, std = vae.posterior(frames[part].to(device, vae.compute_dtype), settings.tile)
            means.append(mean.float().cpu())
            stds.append(std.float().cpu())
            progress.step()
    mean, std = torch.cat(means), torch.cat(stds)
    latents = mean if generator is None else mean + std * randn(mean.shape, generator)
    return finite_output(unfold(latents * vae.scaling_factor, video.shape[0]), "VAE encode")


def validate_frames(vae: AutoencoderKL, video: torch.Tensor) -> None:
    require_vae(vae)
    validate_video(video, "video")
    factor = vae.size_multiple
    h, w = video.shape[-2:]
    require(h % factor == 0 and w % factor == 0,
            f"video: frames of {h}x{w} are not a multiple of {factor}, the VAE's downsampling; resize or crop them")


@torch.inference_mode()
def vae_encode(vae: AutoencoderKL, video: torch.Tensor, settings: VAEEncodeSettings = VAEEncodeSettings(),
               ctx: RunContext | None = None) -> torch.Tensor:
    """Encode a video (B, 3, F, H, W) in [-1, 1] to scaled latents (B, C, F, h, w), float32 on the CPU:
    the posterior mean, or a posterior sample seeded with the settings' seed."""
    s = settings.validate()
    validate_frames(vae, video)
    generator = make_generator(s.seed) if s.posterior == "sample" else None
    return encode_video(vae, video, s, ctx or RunContext(), generator)


@torch.inference_mode()
def vae_decode(vae: AutoencoderKL, latents: torch.Tensor, settings: VAEDecodeSettings = VAEDecodeSettings(),
               ctx: RunContext | None = None) -> torch.Tensor:
    """Decode scaled latents (B, C, F, h, w) to a video (B, 3, F, H, W), not clamped, float32 on the CPU."""
    ctx = ctx or RunContext()
    s = settings.validate()
    require_vae(vae)
    channels = vae.latent_channels
    require(isinstance(latents, torch.Tensor) and latents.dim() == 5 and latents.shape[1] == channels,
            f"latents: expected (B, {channels}, F, h, w) Show-1 latents, got {tuple(getattr(latents, 'shape', ()))}; "
            "encode frames with the show-1-sr2 VAE")
    rules.VIDEO_FRAMES.validate("latents (frames)", latents.shape[2])
    refuse_non_finite(latents, "latents", "the latents are broken; encode the frames again")
    frames = fold(latents.float() / vae.scaling_factor)
    parts = chunks(frames.shape[0], s.frames_per_chunk)
    progress = ctx.progress("vae", len(parts))
    outs = []
    with ctx.use(vae) as device:
        for part in parts:
            ctx.stop_if_cancelled()
            outs.append(vae.decode(frames[part].to(device, vae.compute_dtype), s.tile).float().cpu())
            progress.step()
    return finite_output(unfold(torch.cat(outs), latents.shape[0]), "VAE decode")
