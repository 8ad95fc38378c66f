"""The published Show-1 cascade, composed of its stages: text -> keyframes -> pixel interpolation
-> pixel super-resolution (IF-II first frame + sr1 windows) -> latent super-resolution (sr2).

Each step takes the models it needs and a `CascadeState` (the prompt, its embeddings and the video
so far) and returns the next state, so the cascade can run in one process (`run_cascade`) or with
every stage on its own workers (`batch`). Every stage's output is recorded (`base_video`, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from .context import RunContext
from .errors import ModelLoadError
from .models.vae import AutoencoderKL
from .settings import STAGE_ORDER, CascadeSettings
from .stage import Stage
from .stages import (
    IFIIUpscale,
    generate_keyframes,
    interpolate_keyframes,
    latent_super_resolve,
    super_resolve_pixels,
)
from .text import PromptEmbeddings, TextEncoder, encode_prompt

PUBLISHED_NEGATIVE = "low resolution, blur"  # the published script's negative prompt for sr2
STEPS = ("text", *STAGE_ORDER)
OUTPUTS = {"keyframes": "base_video", "interpolation": "interp_video", "sr1": "sr1_video", "sr2": "sr2_video"}


@dataclass(frozen=True)
class Prompt:
    """The prompt, and the negative prompt of sr2's CLIP guidance (the pixel stages take an empty
    negative, as published)."""

    text: str
    negative: str = PUBLISHED_NEGATIVE


@dataclass
class CascadeModels:
    """Loaded models of the cascade; what the steps that run do not need may be None."""

    t5: TextEncoder | None = None
    base: Stage | None = None
    interpolation: Stage | None = None
    sr1: Stage | None = None
    if_ii: Stage | None = None
    sr2: Stage | None = None
    vae: AutoencoderKL | None = None
    clip: TextEncoder | None = None

    def multiples(self) -> dict[str, int]:
        """Size multiples of the loaded models, for `CascadeSettings.validate`."""
        found = {key: stage.unet.size_multiple for key, stage in (
            ("keyframes", self.base), ("interpolation", self.interpolation), ("sr1", self.sr1),
            ("if_ii", self.if_ii)) if stage is not None}
        if self.vae is not None:
            found["vae"] = self.vae.size_multiple
        return found


@dataclass(frozen=True)
class CascadeState:
    """What one video carries from step to step."""

    prompt: Prompt
    t5: PromptEmbeddings | None = None
    video: torch.Tensor | None = None
    done: tuple[str, ...] = ()

    def after(self, step: str, **changes) -> "CascadeState":
        return dataclasses.replace(self, done=(*self.done, step), **changes)


def needed(model, what: str):
    if model is None:
        raise ModelLoadError(f"the cascade needs {what}, but it was not loaded; load it or stop at an earlier stage")
    return model


def text_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    if state.t5 is None:
        state = dataclasses.replace(state, t5=encode_prompt(needed(m.t5, "the T5 text encoder (show-1-base)"),
                                                            state.prompt.text, "", s.clean_caption, ctx))
    ctx.emit("prompt_embeds", state.t5.positive)
    ctx.emit("negative_prompt_embeds", state.t5.negative)
    return state.after("text")


def keyframes_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    video = generate_keyframes(needed(m.base, "show-1-base"), state.t5, s.stage("keyframes"), ctx)
    return state.after("keyframes", video=video)


def interpolation_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    video = interpolate_keyframes(needed(m.interpolation, "show-1-interpolation"), state.t5, state.video,
                                  s.stage("interpolation"), ctx)
    return state.after("interpolation", video=video)


def sr1_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    first = IFIIUpscale(m.if_ii, s.stage("if_ii")) if m.if_ii is not None else None
    video = super_resolve_pixels(needed(m.sr1, "show-1-sr1"), state.t5, state.video, s.stage("sr1"), ctx, first)
    return state.after("sr1", video=video)


def sr2_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    clip = encode_prompt(needed(m.clip, "the CLIP text encoder (show-1-sr2)"), state.prompt.text,
                         state.prompt.negative, ctx=ctx)
    video = latent_super_resolve(needed(m.sr2, "show-1-sr2"), needed(m.vae, "the show-1-sr2 VAE"), clip, state.video,
                                 s.stage("sr2"), ctx)
    return state.after("sr2", video=video)


Step = Callable[[CascadeModels, CascadeState, CascadeSettings, RunContext], CascadeState]
STEP_FUNCTIONS: dict[str, Step] = {"text": text_step, "keyframes": keyframes_step,
                                   "interpolation": interpolation_step, "sr1": sr1_step, "sr2": sr2_step}


def steps_to_run(settings: CascadeSettings) -> tuple[str, ...]:
    return STEPS[: settings.upto + 2]


def run_step(name: str, models: CascadeModels, state: CascadeState, settings: CascadeSettings,
             ctx: RunContext) -> CascadeState:
    """One step of the cascade; the stage's output is recorded under its published name."""
    state = STEP_FUNCTIONS[name](models, state, settings, ctx)
    if name in OUTPUTS:
        ctx.emit(OUTPUTS[name], state.video)
    return state


def run_cascade(models: CascadeModels, prompt: Prompt, settings: CascadeSettings = CascadeSettings(),
                ctx: RunContext | None = None, t5_embeds: PromptEmbeddings | None = None) -> torch.Tensor:
    """Run the cascade up to the last stage of `settings` and return its video (1, 3, F, H, W) in
    about [-1, 1]. `t5_embeds`, when given, stand in for the T5 encoder (encoded earlier)."""
    ctx = ctx or RunContext()
    settings.validate(multiples=models.multiples())
    state = CascadeState(prompt, t5_embeds)
    for name in steps_to_run(settings):
        state = run_step(name, models, state, settings, ctx)
    return state.video
