"""Latent super-resolution with show-1-sr2: video-to-video in the VAE's latent space.

The sr1 video is resized to the final size, encoded, noised to the `strength` point of the
stage's schedule (DPM-Solver++ as shipped) and denoised by the Show-1 UNet3D in its ModelScope
layout with CLIP text guidance. The published hand-off (uint8 frames, PIL bicubic resize) is kept
in `latent_super_resolve` so the cascade matches the published one.
"""

from __future__ import annotations

import copy

import torch

from ..context import RunContext
from ..errors import require
from ..frames import resize_uint8, to_uint8, uint8_to_video
from ..models.vae import AutoencoderKL
from ..sampling import Denoiser, call_memory, fold, guided_rows, randn, sample_latents, unfold
from ..schedulers import strength_timesteps
from ..settings import (
    LatentSRSettings,
    SR2Settings,
    VAEDecodeSettings,
    VAEEncodeSettings,
)
from ..stage import Stage, StageKind
from ..storyboard import nearest_shots, shot_text
from ..text import PromptEmbeddings, encode_prompt
from .common import (
    finite_output,
    make_generator,
    require_kind,
    validate_embeddings,
    validate_video,
)
from .vae import encode_video, vae_decode, validate_frames


def validate_latents(model: Stage, latents: torch.Tensor, argument: str = "latents") -> None:
    channels = model.unet.config.in_channels
    validate_video(latents, argument, channels, what=f"Show-1 latents (B, {channels}, F, h, w) (encode the frames "
                                                     "with the show-1-sr2 VAE)",
                   fix="the latents feeding this stage are broken; encode the frames again")


def denoise_latents(model: Stage, embeds: PromptEmbeddings, latents: torch.Tensor, s: LatentSRSettings,
                    ctx: RunContext, generator: torch.Generator) -> torch.Tensor:
    scheduler = model.scheduler()
    schedule = strength_timesteps(scheduler, s.steps, s.strength)
    b = latents.shape[0]
    noise = randn(fold(latents).shape, generator)
    x = unfold(scheduler.add_noise(fold(latents.float().cpu()), noise, torch.tensor(schedule[:1])), b)
    progress = ctx.progress("sr2", len(schedule))

    text = embeds.pair() if embeds.shots == 1 else embeds.frame_texts(
        shot_text(embeds.positive, nearest_shots(latents.shape[2], embeds.shots)))  # each frame its shot's prompt

    def sample(device: torch.device) -> torch.Tensor:  # its device tensors die before the scope ends
        denoiser = Denoiser(model.unet, text, s.guidance, ctx, device)
        sampler = copy.deepcopy(scheduler)  # the step state it keeps on the device dies with it
        return sample_latents(denoiser, sampler, x.to(device), schedule, progress, generator).float().cpu()

    with ctx.use(model.unet) as device:
        out = sample(device)
    return finite_output(out, "sr2")


@torch.inference_mode()
def latent_video_to_video(model: Stage, embeds: PromptEmbeddings, latents: torch.Tensor,
                          settings: LatentSRSettings = LatentSRSettings(), ctx: RunContext | None = None) -> torch.Tensor:
    """Re-noise scaled latents (B, C, F, h, w) to `strength` and denoise them with sr2's UNet.
    Draws one (B*F, C, h, w) noise tensor, then whatever the scheduler draws per step (nothing for
    DPM-Solver++). Returns latents, float32 on the CPU."""
    s = settings.validate()
    require_kind(model, StageKind.SR2)
    validate_embeddings(model, embeds)
    validate_latents(model, latents)
    return denoise_latents(model, embeds, latents, s, ctx or RunContext(), make_generator(s.seed))


def published_sr2_input(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The published sr1 -> sr2 hand-off: uint8 frames resized with PIL bicubic, (F, H, W, 3)."""
    return torch.from_numpy(resize_uint8(to_uint8(video), height, width))


def latent_super_resolve(model: Stage, vae: AutoencoderKL, embeds: PromptEmbeddings, video: torch.Tensor,
                         settings: SR2Settings = SR2Settings(), ctx: RunContext | None = None) -> torch.Tensor:
    """sr2 on a pixel video (1, 3, F, h, w) in [-1, 1] -> (1, 3, F, height, width), not clamped,
    through the published uint8 / PIL-bicubic hand-off (recorded as `sr2_input_frames_uint8`)."""
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.SR2)
    validate_video(video, "video")
    require(video.shape[0] == 1, f"video: the published hand-off takes one video at a time, got {video.shape[0]}")
    frames = published_sr2_input(video, s.height, s.width)
    ctx.emit("sr2_input_frames_uint8", frames)
    return sr2_from_frames(model, vae, embeds, frames, s, ctx)


@torch.inference_mode()
def sr2_from_frames(model: Stage, vae: AutoencoderKL, embeds: PromptEmbeddings, frames: torch.Tensor,
                    settings: LatentSRSettings = LatentSRSettings(), ctx: RunContext | None = None) -> torch.Tensor:
    """sr2 on uint8 frames (F, H, W, 3): encode, video-to-video, decode -> (1, 3, F, H, W).

    One generator seeded with the settings' seed draws the VAE posterior sample, then the img2img
    noise, as the published pipeline does.
    """
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.SR2)
    validate_embeddings(model, embeds)
    video = uint8_to_video(frames.numpy())
    validate_frames(vae, video)
    generator = make_generator(s.seed)
    latents = encode_video(vae, video, VAEEncodeSettings(posterior="sample"), ctx, generator)
    latents = denoise_latents(model, embeds, latents, s, ctx, generator)
    return vae_decode(vae, latents, VAEDecodeSettings(), ctx)


def sr2_memory(unet: torch.nn.Module, settings: LatentSRSettings, shape: tuple[int, int, int],
               device: torch.device) -> int:
    """Peak activation bytes of its UNet call on latents of `shape`: the guided pair, as the device
    allows."""
    return call_memory(unet, shape, guided_rows(1, settings.guidance), device)


def cascade_step(models, state, settings, ctx: RunContext):
    """The cascade's sr2 step (`cascade.Step`): CLIP guidance with the job's negative prompt."""
    clip = encode_prompt(models.needed("clip", "the CLIP text encoder (show-1-sr2)"), state.prompt.shots,
                         state.prompt.negative, ctx=ctx)
    video = latent_super_resolve(models.stage("sr2"), models.needed("vae", "the show-1-sr2 VAE"), clip, state.video,
                                 settings.stage("sr2"), ctx)
    return state.after("sr2", video=video)
