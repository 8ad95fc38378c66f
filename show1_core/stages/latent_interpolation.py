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

import copy

from dataclasses import dataclass

import torch

from .. import rules
from ..context import RunContext
from ..errors import require
from ..sampling import Denoiser, WindowedDenoiser, call_memory, guided_rows, randn, sample_latents
from ..schedulers import strength_timesteps
from ..settings import LatentInterpolationSettings
from ..stage import Stage, StageKind
from ..storyboard import blended_text, transition_weights
from ..text import PromptEmbeddings
from .common import finite_output, make_generator, require_kind, validate_embeddings
from .latent_sr import validate_latents


@dataclass(frozen=True)
class Anchors:
    """Where the keyframes sit: one frame index per keyframe, strictly increasing, in a video of
    `num_frames` frames (default: up to the last anchor)."""

    indices: tuple[int, ...]
    num_frames: int | None = None

    @classmethod
    def even(cls, keyframes: int, frames_between: int) -> "Anchors":
        """`frames_between` new frames in every gap: 0, g+1, 2(g+1), ..."""
        return cls(tuple(i * (frames_between + 1) for i in range(keyframes)))

    @property
    def frames(self) -> int:
        return self.num_frames if self.num_frames is not None else self.indices[-1] + 1 if self.indices else 0

    def validate(self, keyframes: int) -> None:
        anchors, frames = list(self.indices), self.frames
        rules.validate_keyframe_count("keyframes", keyframes)
        require(len(anchors) == keyframes,
                f"anchors: {len(anchors)} indices for {keyframes} keyframes; give one anchor frame index per keyframe")
        require(all(isinstance(a, int) for a in anchors), f"anchors: {anchors} must be integers")
        rules.VIDEO_FRAMES.validate("anchors (frames)", frames)
        require(all(0 <= a < frames for a in anchors),
                f"anchors: {anchors} out of range for {frames} frames; use indices in 0..{frames - 1}")
        require(all(b > a for a, b in zip(anchors, anchors[1:])),
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
                        settings: LatentInterpolationSettings = LatentInterpolationSettings(),
                        ctx: RunContext | None = None, anchors: Anchors | None = None) -> torch.Tensor:
    """Latent keyframes (B, C, K, h, w) (scaled, from `vae_encode`) -> latent video (B, C, F, h, w).

    Anchors default to `frames_between` new frames in every gap. Returns float32 latents on the CPU.
    Draws: the initial noise (B, C, F, h, w), which also serves as the anchors' noise.
    """
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.SR2)
    validate_embeddings(model, embeds)
    validate_latents(model, keyframes, "keyframes")
    k = keyframes.shape[2]
    anchors = anchors or Anchors.even(k, s.frames_between)
    anchors.validate(k)
    if embeds.shots > 1 and embeds.shots != k:
        raise InputError(f"prompt: {embeds.shots} prompts for {k} keyframes; give one prompt per keyframe (one per "
                         "line), or a single prompt")
    indices, num_frames = list(anchors.indices), anchors.frames

    scheduler = model.scheduler()
    schedule = strength_timesteps(scheduler, s.steps, s.strength)
    keyframes = keyframes.float().cpu()
    b, c, _, h, w = keyframes.shape
    generator = make_generator(s.seed)
    noise = randn((b, c, num_frames, h, w), generator)
    anchor_noise = noise[:, :, indices]

    def noised_anchors(t: int) -> torch.Tensor:
        return scheduler.add_noise(keyframes, anchor_noise, torch.tensor([t]))

    if s.strength >= 1.0:
        x = noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(blend_in_time(keyframes, indices, num_frames), noise, torch.tensor(schedule[:1]))
    x[:, :, indices] = noised_anchors(schedule[0])

    progress = ctx.progress("latent_interpolation", len(schedule))

    def reimpose(latents: torch.Tensor, i: int) -> torch.Tensor:
        target = noised_anchors(schedule[i + 1]) if i + 1 < len(schedule) else keyframes
        latents[:, :, indices] = target.to(latents.device)
        return latents

    text = embeds.pair() if embeds.shots == 1 else embeds.frame_texts(
        blended_text(embeds.positive, transition_weights(num_frames, [float(i) for i in indices])))

    def sample(device: torch.device) -> torch.Tensor:  # its device tensors die before the scope ends
        denoiser = WindowedDenoiser(Denoiser(model.unet, text, s.guidance, ctx, device), s.window, s.overlap)
        sampler = copy.deepcopy(scheduler)  # the step state it keeps on the device dies with it
        return sample_latents(denoiser, sampler, x.to(device), schedule, progress, generator,
                              after_step=reimpose).float().cpu()

    with ctx.use(model.unet) as device:
        out = sample(device)
    return finite_output(out, "latent interpolation")


def latent_interpolation_memory(unet: torch.nn.Module, settings: LatentInterpolationSettings,
                                shape: tuple[int, int, int], device: torch.device) -> int:
    """Peak activation bytes of its largest UNet call for a latent video of `shape`: one window of
    `window` frames, guided, as the device allows."""
    frames, h, w = shape
    return call_memory(unet, (min(frames, settings.window), h, w), guided_rows(1, settings.guidance), device)
