"""Latent super-resolution with show-1-sr2: video-to-video in the VAE's latent space.

The sr1 video is resized to the final size, encoded, noised to the `strength` point of the
stage's schedule (DPM-Solver++ as shipped) and denoised by the Show-1 UNet3D in its ModelScope
layout with CLIP text guidance. The published hand-off (uint8 frames, PIL bicubic resize) is kept
in `latent_super_resolve` so the cascade matches the published one.
"""

from __future__ import annotations

import torch

from .. import rules
from ..errors import check
from ..frames import resize_uint8, to_uint8, uint8_to_video
from ..loading import Stage, StageKind
from ..memory import Placement
from ..progress import CancelCheck, Progress, StepCallback
from ..sampling import Denoiser, fold, randn, sample_latents, unfold
from ..schedulers import strength_timesteps
from ..text import PromptEmbeddings
from .common import check_embeddings, check_finite, check_output, check_steps, make_generator, placement_for, \
    require_kind
from .vae import vae_decode, vae_encode


def check_latents(model: Stage, latents: torch.Tensor, argument: str = "latents") -> None:
    channels = model.unet.config.in_channels
    check(isinstance(latents, torch.Tensor) and latents.dim() == 5 and latents.shape[1] == channels,
          f"{argument}: expected Show-1 latents (B, {channels}, F, h, w), got "
          f"{tuple(getattr(latents, 'shape', ()))}; encode the frames with the show-1-sr2 VAE")
    check_finite(latents, argument, "the latents feeding this stage are broken; encode the frames again")


@torch.inference_mode()
def latent_video_to_video(model: Stage, embeds: PromptEmbeddings, latents: torch.Tensor, strength: float = 0.8,
                          steps: int = 50, guidance: float = 15.0, seed: int | torch.Generator = 0,
                          placement: Placement | None = None, callback: StepCallback | None = None,
                          check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """Re-noise scaled latents (B, C, F, h, w) to `strength` and denoise them with sr2's UNet.
    Draws one (B*F, C, h, w) noise tensor, then whatever the scheduler draws per step (nothing for
    DPM-Solver++). Returns latents, float32 on the CPU."""
    require_kind(model, StageKind.SR2)
    check_embeddings(model, embeds)
    check_latents(model, latents)
    check_steps(steps, guidance)
    rules.check_strength_steps(strength, steps)
    scheduler = model.scheduler()
    schedule = strength_timesteps(scheduler, steps, strength)
    b = latents.shape[0]
    generator = make_generator(seed)
    noise = randn(fold(latents).shape, generator)
    x = unfold(scheduler.add_noise(fold(latents.float().cpu()), noise, torch.tensor(schedule[:1])), b)
    progress = Progress("sr2", len(schedule), callback, check_cancel)
    with placement_for(model.unet, placement).use(model.unet) as device:
        denoiser = Denoiser(model.unet, embeds.pair(), guidance, noise_channels=latents.shape[1])
        out = sample_latents(denoiser, scheduler, x.to(device), schedule, progress, generator)
    return check_output(out.float().cpu(), "sr2")


def published_sr2_input(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The published sr1 -> sr2 hand-off: uint8 frames resized with PIL bicubic, (F, H, W, 3)."""
    return torch.from_numpy(resize_uint8(to_uint8(video), height, width))


def latent_super_resolve(model: Stage, vae, embeds: PromptEmbeddings, video: torch.Tensor, height: int = 320,
                         width: int = 576, strength: float = 0.8, steps: int = 50, guidance: float = 15.0,
                         seed: int = 0, placement: Placement | None = None, callback: StepCallback | None = None,
                         check_cancel: CancelCheck | None = None, record=None) -> torch.Tensor:
    """sr2 on a pixel video (1, 3, F, h, w) in [-1, 1] -> (1, 3, F, height, width), not clamped,
    through the published uint8 / PIL-bicubic hand-off."""
    require_kind(model, StageKind.SR2)
    frames = published_sr2_input(video, height, width)
    if record is not None:
        record("sr2_input_frames_uint8", frames)
    return sr2_from_frames(model, vae, embeds, frames, strength, steps, guidance, seed, placement, callback,
                           check_cancel)


def sr2_from_frames(model: Stage, vae, embeds: PromptEmbeddings, frames: torch.Tensor, strength: float = 0.8,
                    steps: int = 50, guidance: float = 15.0, seed: int | torch.Generator = 0,
                    placement: Placement | None = None, callback: StepCallback | None = None,
                    check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """sr2 on uint8 frames (F, H, W, 3): encode, video-to-video, decode -> (1, 3, F, H, W).

    One generator seeded with `seed` draws the VAE posterior sample, then the img2img noise, as the
    published pipeline does.
    """
    generator = make_generator(seed)
    hooks = dict(placement=placement, check_cancel=check_cancel)
    latents = vae_encode(vae, uint8_to_video(frames.numpy()), seed=generator, **hooks)
    latents = latent_video_to_video(model, embeds, latents, strength, steps, guidance, generator, callback=callback,
                                    **hooks)
    return vae_decode(vae, latents, **hooks)
