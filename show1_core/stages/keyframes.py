"""Keyframes from text with show-1-base: a few sharp low-resolution frames."""

from __future__ import annotations

import torch

from ..context import RunContext
from ..sampling import Chain, Denoiser, call_memory, guided_rows, randn, sample_pixels
from ..schedulers import timesteps
from ..settings import KeyframeSettings
from ..stage import Stage, StageKind
from ..storyboard import keyframe_shots, shot_text
from ..text import PromptEmbeddings
from .common import (
    finite_output,
    make_generator,
    require_kind,
    validate_embeddings,
    validate_model_size,
)


def keyframe_text(embeds: PromptEmbeddings, frames: int) -> torch.Tensor:
    """The guidance text: one prompt for all frames, or, for a storyboard, prompt i for keyframe i."""
    if embeds.shots == 1:
        return embeds.pair()
    return embeds.frame_texts(shot_text(embeds.positive, keyframe_shots(frames, embeds.shots)))


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
    if embeds.shots > 1:
        keyframe_shots(s.num_frames, embeds.shots)  # one prompt per keyframe, checked before any work
    generator = make_generator(s.seed)
    progress = ctx.progress("keyframes", model.schedule_length(s.steps))

    def sample(device: torch.device) -> torch.Tensor:  # its device tensors die before the stage's scope ends
        scheduler = model.scheduler()
        schedule = timesteps(scheduler, s.steps)
        x = randn((1, 3, s.num_frames, s.height, s.width), generator) * scheduler.init_noise_sigma
        denoiser = Denoiser(model.unet, keyframe_text(embeds, s.num_frames), s.guidance, ctx, device)
        chains = [Chain(scheduler, generator, slice(None))]
        return sample_pixels(denoiser, chains, x.to(device), schedule, progress).float().cpu()

    with ctx.use(model.unet) as device:
        video = sample(device)
    return finite_output(video, "keyframes")


def keyframes_memory(unet: torch.nn.Module, settings: KeyframeSettings, shape: tuple[int, int, int],
                     device: torch.device) -> int:
    """Peak activation bytes of its largest UNet call: the guided pair of the `shape` keyframes."""
    return call_memory(unet, shape, guided_rows(1, settings.guidance), device)


def cascade_step(models, state, settings, ctx: RunContext):
    """The cascade's keyframe step (`cascade.Step`)."""
    video = generate_keyframes(models.stage("keyframes"), state.t5, settings.stage("keyframes"), ctx)
    return state.after("keyframes", video=video)
