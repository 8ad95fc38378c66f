"""The published Show-1 cascade as one function: text -> keyframes -> pixel interpolation ->
pixel super-resolution (IF-II first frame + sr1 windows) -> latent super-resolution (sr2).

Defaults are those of the published inference script. Every stage can be the last one, and every
stage's output is reported to `record(name, tensor)`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from . import rules
from .errors import InputError
from .loading import Stage, unet_size_multiple
from .memory import Placement
from .progress import CancelCheck, StepCallback
from .stages import generate_keyframes, interpolate_keyframes, latent_super_resolve, super_resolve_pixels
from .text import PromptEmbeddings, TextEncoder, encode_prompt

STAGE_ORDER = ("keyframes", "interpolation", "sr1", "sr2")


@dataclass
class CascadeSettings:
    """Sizes, steps, guidance and noise levels of each stage (published defaults, from `rules`)."""

    num_frames: int = rules.NUM_KEYFRAMES.default
    height: int = rules.PUBLISHED_SIZE["keyframes"][0]
    width: int = rules.PUBLISHED_SIZE["keyframes"][1]
    keyframe_steps: int = rules.KEYFRAMES.steps
    keyframe_guidance: float = rules.KEYFRAMES.guidance
    interp_steps: int = rules.INTERPOLATION.steps
    interp_guidance: float = rules.INTERPOLATION.guidance
    if_ii_steps: int = rules.IF_II.steps
    if_ii_guidance: float = rules.IF_II.guidance
    if_ii_noise_level: int = rules.IF_II.noise_level
    sr1_steps: int = rules.SR1.steps
    sr1_guidance: float = rules.SR1.guidance
    sr1_noise_level: int = rules.SR1.noise_level
    sr1_window: int = 8
    sr1_stride: int = 7
    sr1_scale: int = rules.SR1_SCALE.default
    sr2_height: int = rules.PUBLISHED_SIZE["sr2"][0]
    sr2_width: int = rules.PUBLISHED_SIZE["sr2"][1]
    sr2_strength: float = rules.SR2.strength
    sr2_steps: int = rules.SR2.steps
    sr2_guidance: float = rules.SR2.guidance
    clean_caption: bool = False  # the published script encodes the prompt without caption cleaning

    def replace(self, **changes) -> "CascadeSettings":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown cascade settings: {', '.join(sorted(unknown))}")
        return CascadeSettings(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})

    def check(self, last_stage: str, multiples: dict[str, int], names: dict[str, str] | None = None) -> None:
        """Every setting of every stage up to `last_stage`, before any of them runs.

        `multiples` gives the size multiple of each stage's model ("keyframes", "interpolation",
        "sr1", "if_ii", "vae"), read from their configs; `names` maps a setting to what the caller
        calls it (e.g. a CLI flag) for the messages.
        """
        n = (names or {}).get
        name = lambda field: n(field, field)  # noqa: E731
        upto = check_last_stage(last_stage)
        rules.NUM_KEYFRAMES.check(name("num_frames"), self.num_frames)
        pixel_stages = [("keyframes", "keyframes (show-1-base)"), ("interpolation", "show-1-interpolation")][: upto + 1]
        for stage, label in pixel_stages:
            for axis in ("height", "width"):
                rules.check_size(name(axis), getattr(self, axis), multiples.get(stage, 1), label,
                                 maximum=int(rules.KEYFRAME_SIZE.max))
        checks = [("keyframe_steps", "keyframe_guidance")]
        if upto >= 1:
            checks.append(("interp_steps", "interp_guidance"))
        if upto >= 2:
            checks += [("sr1_steps", "sr1_guidance"), ("if_ii_steps", "if_ii_guidance")]
            rules.SR1_SCALE.check(name("sr1_scale"), self.sr1_scale)
            rules.NOISE_LEVEL.check(name("sr1_noise_level"), self.sr1_noise_level)
            rules.NOISE_LEVEL.check(name("if_ii_noise_level"), self.if_ii_noise_level)
            for axis in ("height", "width"):
                for stage, label in (("sr1", "show-1-sr1"), ("if_ii", "IF-II")):
                    value = getattr(self, axis) * self.sr1_scale
                    rules.check_size(f"{name(axis)} x {name('sr1_scale')} ({value})", value, multiples.get(stage, 1),
                                     label)
        for steps, guidance in checks:
            rules.STEPS.check(name(steps), getattr(self, steps))
            rules.GUIDANCE.check(name(guidance), getattr(self, guidance))
        if upto >= 3:
            for axis in ("sr2_height", "sr2_width"):
                rules.check_size(name(axis), getattr(self, axis), multiples.get("vae", 1), "the show-1-sr2 VAE",
                                 maximum=int(rules.VAE_SIZE.max))
            rules.check_strength_steps(self.sr2_strength, self.sr2_steps, (name("sr2_strength"), name("sr2_steps")))
            rules.GUIDANCE.check(name("sr2_guidance"), self.sr2_guidance)


def check_last_stage(last_stage: str) -> int:
    if last_stage not in STAGE_ORDER:
        raise InputError(f"last_stage: {last_stage!r} is not one of {', '.join(STAGE_ORDER)}")
    return STAGE_ORDER.index(last_stage)


def model_multiples(models: "CascadeModels") -> dict[str, int]:
    """Size multiples of loaded models, for `CascadeSettings.check`."""
    found = {}
    for key, stage in (("keyframes", models.base), ("interpolation", models.interpolation), ("sr1", models.sr1),
                       ("if_ii", models.if_ii)):
        if stage is not None:
            found[key] = unet_size_multiple(stage.unet.config)
    if models.vae is not None:
        found["vae"] = 2 ** (len(models.vae.config.block_out_channels) - 1)
    return found


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
    upto = check_last_stage(last_stage)
    s.check(last_stage, model_multiples(models))
    rules.SEED.check("seed", seed)
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
