"""Keyframes from text with show-1-base: a few sharp low-resolution frames."""

from __future__ import annotations

import torch

from ..context import RunContext
from ..sampling import Chain, Denoiser, randn, sample_pixels
from ..schedulers import timesteps
from ..settings import KeyframeSettings
from ..stage import Stage, StageKind
from ..text import PromptEmbeddings
from .common import (
    finite_output,
    make_generator,
    require_kind,
    validate_embeddings,
    validate_model_size,
)


@torch.inference_mode()
def generate_keyframes(model: Stage, embeds: PromptEmbeddings, settings: KeyframeSettings = KeyframeSettings(),
                       ctx: RunContext | None = None) -> torch.Tensor:
    """Sample keyframes (1, 3, F, H, W) in [-1, 1], float32 on the CPU.

    Noise as in the published pipeline: x_T of shape (1, 3, F, H, W), then whatever the scheduler
    draws per step (nothing for DPM-Solver++; (F, 3, H, W) per step for DDPM), all from one generator
    seeded with the settings' seed.
    """
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.BASE)
    validate_embeddings(model, embeds)
    validate_model_size(model, s.height, s.width)
    generator = make_generator(s.seed)
    scheduler = model.scheduler()
    schedule = timesteps(scheduler, s.steps)
    progress = ctx.progress("keyframes", len(schedule))
    with ctx.use(model.unet) as device:
        x = (randn((1, 3, s.num_frames, s.height, s.width), generator) * scheduler.init_noise_sigma).to(device)
        denoiser = Denoiser(model.unet, embeds.pair(), s.guidance, ctx, device)
        video = sample_pixels(denoiser, [Chain(scheduler, generator, slice(None))], x, schedule, progress)
    return finite_output(video.float().cpu(), "keyframes")
