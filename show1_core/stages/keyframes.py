"""Keyframes from text with show-1-base: a few sharp low-resolution frames."""

from __future__ import annotations

import torch

from .. import rules
from ..loading import Stage, StageKind
from ..memory import Placement
from ..progress import CancelCheck, Progress, StepCallback
from ..sampling import Chain, Denoiser, randn, sample_pixels
from ..schedulers import timesteps
from ..text import PromptEmbeddings
from .common import check_embeddings, check_output, check_size, check_steps, make_generator, placement_for, \
    require_kind

KEYFRAME_FPS = rules.KEYFRAMES.fps


@torch.inference_mode()
def generate_keyframes(model: Stage, embeds: PromptEmbeddings, num_frames: int = 8, height: int = 40,
                       width: int = 64, steps: int = 75, guidance: float = 9.0, seed: int | torch.Generator = 0,
                       placement: Placement | None = None, callback: StepCallback | None = None,
                       check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """Sample `num_frames` keyframes (1, 3, F, H, W) in [-1, 1], float32 on the CPU.

    Noise as in the published pipeline: x_T of shape (1, 3, F, H, W), then whatever the scheduler
    draws per step (nothing for DPM-Solver++; (F, 3, H, W) per step for DDPM), all from one generator
    seeded with `seed`.
    """
    require_kind(model, StageKind.BASE)
    check_embeddings(model, embeds)
    rules.NUM_KEYFRAMES.check("num_frames", num_frames)
    check_size(model, height, width)
    check_steps(steps, guidance)
    generator = make_generator(seed)
    scheduler = model.scheduler()
    schedule = timesteps(scheduler, steps)
    progress = Progress("keyframes", len(schedule), callback, check_cancel)
    place = placement_for(model.unet, placement)
    with place.use(model.unet) as device:
        x = (randn((1, 3, num_frames, height, width), generator) * scheduler.init_noise_sigma).to(device)
        denoiser = Denoiser(model.unet, embeds.pair(), guidance, noise_channels=3)
        video = sample_pixels(denoiser, [Chain(scheduler, generator, slice(None))], x, schedule, progress)
    return check_output(video.float().cpu(), "keyframes")
