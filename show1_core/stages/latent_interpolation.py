"""Latent interpolation: a latent video whose anchor frames are given keyframes.

Keyframes from Show-1 or from any image model are encoded with the sr2 VAE and placed at their
anchor frame indices. The latent video UNet of show-1-sr2 denoises the whole video while, after
every scheduler step, the anchor frames are replaced by the encoded keyframes noised to the current
level with the scheduler's `add_noise` (one fixed noise draw, so the anchors follow the same
forward trajectory the sampler assumes). The last step puts the clean keyframes back, so the
anchors of the output equal the encoded keyframes exactly, while the motion between them comes
from the video prior.

The in-between frames start from pure noise (`strength` 1) or, with `strength` < 1, from the
time-interpolated anchors noised to that point of the schedule. Long videos are denoised in
overlapping windows whose predictions are blended, so the UNet's memory is set by `window`.
"""

from __future__ import annotations

import torch

from .. import rules
from ..errors import check
from ..loading import Stage, StageKind
from ..memory import Placement
from ..progress import CancelCheck, Progress, StepCallback
from ..sampling import Denoiser, WindowedDenoiser, randn, sample_latents
from ..schedulers import strength_timesteps
from ..text import PromptEmbeddings
from .common import check_embeddings, check_output, check_steps, make_generator, placement_for, require_kind
from .latent_sr import check_latents

LATENT_FPS = rules.LATENT_INTERPOLATION.fps


def even_anchors(keyframes: int, frames_between: int) -> list[int]:
    """Anchor indices with `frames_between` new frames in every gap: 0, g+1, 2(g+1), ..."""
    return [i * (frames_between + 1) for i in range(keyframes)]


def check_anchors(anchors: list[int], keyframes: int, num_frames: int) -> None:
    rules.check_keyframe_count("keyframes", keyframes)
    check(len(anchors) == keyframes,
          f"anchors: {len(anchors)} indices for {keyframes} keyframes; give one anchor frame index per keyframe")
    check(all(isinstance(a, int) for a in anchors), f"anchors: {anchors} must be integers")
    check(all(0 <= a < num_frames for a in anchors),
          f"anchors: {anchors} out of range for {num_frames} frames; use indices in 0..{num_frames - 1}")
    check(all(b > a for a, b in zip(anchors, anchors[1:])),
          f"anchors: {anchors} must be strictly increasing (one keyframe per frame, in time order)")


def blend_in_time(keyframes: torch.Tensor, anchors: list[int], num_frames: int) -> torch.Tensor:
    """Linear blend between neighbouring anchors; held constant before the first and after the last."""
    b, c, k, h, w = keyframes.shape
    out = torch.empty(b, c, num_frames, h, w, dtype=keyframes.dtype)
    out[:, :, : anchors[0] + 1] = keyframes[:, :, :1]
    out[:, :, anchors[-1]:] = keyframes[:, :, -1:]
    for i in range(k - 1):
        a, z = anchors[i], anchors[i + 1]
        frac = torch.linspace(0, 1, z - a + 1, dtype=keyframes.dtype)[None, None, :, None, None]
        out[:, :, a:z + 1] = keyframes[:, :, i:i + 1] * (1 - frac) + keyframes[:, :, i + 1:i + 2] * frac
    return out


@torch.inference_mode()
def interpolate_latents(model: Stage, embeds: PromptEmbeddings, keyframes: torch.Tensor,
                        anchors: list[int] | None = None, num_frames: int | None = None, frames_between: int = 7,
                        steps: int = 50, guidance: float = 9.0, strength: float = 1.0, seed: int = 0,
                        window: int = 16, overlap: int = 4, placement: Placement | None = None,
                        callback: StepCallback | None = None, check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """Latent keyframes (B, C, K, h, w) (scaled, from `vae_encode`) -> latent video (B, C, F, h, w).

    Anchors default to `frames_between` new frames in every gap. Returns float32 latents on the CPU.
    Draws: the initial noise (B, C, F, h, w), which also serves as the anchors' noise.
    """
    require_kind(model, StageKind.SR2)
    check_embeddings(model, embeds)
    check_latents(model, keyframes, "keyframes")
    k = keyframes.shape[2]
    rules.FRAMES_BETWEEN.check("frames_between", frames_between)
    anchors = list(anchors) if anchors is not None else even_anchors(k, frames_between)
    num_frames = num_frames if num_frames is not None else anchors[-1] + 1 if anchors else 0
    check_anchors(anchors, k, num_frames)
    check_steps(steps, guidance)
    rules.check_strength_steps(strength, steps)
    rules.check_window_overlap(window, overlap)

    scheduler = model.scheduler()
    schedule = strength_timesteps(scheduler, steps, strength)
    keyframes = keyframes.float().cpu()
    b, c, _, h, w = keyframes.shape
    generator = make_generator(seed)
    noise = randn((b, c, num_frames, h, w), generator)
    anchor_noise = noise[:, :, anchors]

    def noised_anchors(t: int) -> torch.Tensor:
        return scheduler.add_noise(keyframes, anchor_noise, torch.tensor([t]))

    if strength >= 1.0:
        x = noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(blend_in_time(keyframes, anchors, num_frames), noise, torch.tensor(schedule[:1]))
    x[:, :, anchors] = noised_anchors(schedule[0])

    progress = Progress("latent_interpolation", len(schedule), callback, check_cancel)
    with placement_for(model.unet, placement).use(model.unet) as device:
        def reimpose(latents: torch.Tensor, i: int) -> torch.Tensor:
            target = noised_anchors(schedule[i + 1]) if i + 1 < len(schedule) else keyframes
            latents[:, :, anchors] = target.to(latents.device)
            return latents

        denoiser = WindowedDenoiser(Denoiser(model.unet, embeds.pair(), guidance, noise_channels=c), window, overlap)
        out = sample_latents(denoiser, scheduler, x.to(device), schedule, progress, generator, after_step=reimpose)
    return check_output(out.float().cpu(), "latent interpolation")
