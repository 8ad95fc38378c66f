"""The published Show-1 cascade as one function: text -> keyframes -> pixel interpolation ->
pixel super-resolution (IF-II first frame + sr1 windows) -> latent super-resolution (sr2).

Defaults are those of the published inference script. Every stage can be the last one, and every
stage's output is reported to `record(name, tensor)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from .loading import Stage
from .memory import Placement
from .progress import CancelCheck, StepCallback
from .stages import generate_keyframes, interpolate_keyframes, latent_super_resolve, super_resolve_pixels
from .text import PromptEmbeddings, TextEncoder, encode_prompt

STAGE_ORDER = ("keyframes", "interpolation", "sr1", "sr2")


@dataclass
class CascadeSettings:
    """Sizes, steps, guidance and noise levels of each stage (published defaults)."""

    num_frames: int = 8
    height: int = 40
    width: int = 64
    keyframe_steps: int = 75
    keyframe_guidance: float = 9.0
    interp_steps: int = 75
    interp_guidance: float = 4.0
    if_ii_steps: int = 70
    if_ii_guidance: float = 4.0
    if_ii_noise_level: int = 150
    sr1_steps: int = 125
    sr1_guidance: float = 7.0
    sr1_noise_level: int = 250
    sr1_window: int = 8
    sr1_stride: int = 7
    sr1_scale: int = 4
    sr2_height: int = 320
    sr2_width: int = 576
    sr2_strength: float = 0.8
    sr2_steps: int = 50
    sr2_guidance: float = 15.0
    clean_caption: bool = False  # the published script encodes the prompt without caption cleaning

    def replace(self, **changes) -> "CascadeSettings":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown cascade settings: {', '.join(sorted(unknown))}")
        return CascadeSettings(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


@dataclass
class CascadeModels:
    """Loaded models of the cascade; stages after the last one requested may be None."""

    t5: TextEncoder | None
    base: Stage
    interpolation: Stage | None = None
    sr1: Stage | None = None
    if_ii: Stage | None = None
    sr2: Stage | None = None
    vae: object | None = None
    clip: TextEncoder | None = None
    extra: dict = field(default_factory=dict)


def run_cascade(models: CascadeModels, prompt: str, negative_prompt: str = "low resolution, blur", seed: int = 345,
                settings: CascadeSettings | None = None, last_stage: str = "sr2",
                t5_embeds: PromptEmbeddings | None = None, placement: Placement | None = None,
                callback: StepCallback | None = None, check_cancel: CancelCheck | None = None,
                record=None) -> torch.Tensor:
    """Run the cascade up to `last_stage` and return its video (1, 3, F, H, W) in about [-1, 1].

    The pixel stages share the T5 embeddings of `prompt` with an empty negative (as published);
    `negative_prompt` is used by sr2's CLIP guidance only. Every stage seeds its own generator with
    `seed`, as the published script does.
    """
    s = settings or CascadeSettings()
    if last_stage not in STAGE_ORDER:
        raise ValueError(f"last_stage: {last_stage!r} is not one of {', '.join(STAGE_ORDER)}")
    upto = STAGE_ORDER.index(last_stage)
    hooks = dict(placement=placement, callback=callback, check_cancel=check_cancel)
    emit = record or (lambda name, tensor: None)

    if t5_embeds is None:
        t5_embeds = encode_prompt(models.t5, prompt, "", clean_caption=s.clean_caption)
    emit("prompt_embeds", t5_embeds.positive)
    emit("negative_prompt_embeds", t5_embeds.negative)
    video = generate_keyframes(models.base, t5_embeds, s.num_frames, s.height, s.width, s.keyframe_steps,
                               s.keyframe_guidance, seed, **hooks)
    emit("base_video", video)
    if upto >= 1:
        video = interpolate_keyframes(models.interpolation, t5_embeds, video, s.interp_steps, s.interp_guidance,
                                      seed, record=record, **hooks)
        emit("interp_video", video)
    if upto >= 2:
        video = super_resolve_pixels(
            models.sr1, t5_embeds, video, s.height * s.sr1_scale, s.width * s.sr1_scale, s.sr1_steps,
            s.sr1_guidance, s.sr1_noise_level, seed, if_ii=models.if_ii, if_ii_steps=s.if_ii_steps,
            if_ii_guidance=s.if_ii_guidance, if_ii_noise_level=s.if_ii_noise_level, window=s.sr1_window,
            stride=s.sr1_stride, record=record, **hooks)
        emit("sr1_video", video)
    if upto >= 3:
        clip = encode_prompt(models.clip, prompt, negative_prompt)
        video = latent_super_resolve(models.sr2, models.vae, clip, video, s.sr2_height, s.sr2_width, s.sr2_strength,
                                     s.sr2_steps, s.sr2_guidance, seed, record=record, **hooks)
        emit("sr2_video", video)
    return video
