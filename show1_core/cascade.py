"""The published Show-1 cascade, composed of the stages the registry declares: text -> keyframes ->
pixel interpolation -> pixel super-resolution (IF-II first frame + sr1 windows) -> latent
super-resolution (sr2).

Each step takes the models it needs and a `CascadeState` (the prompt, its embeddings and the video
so far) and returns the next state, so the cascade can run in one process (`run_cascade`) or with
every stage on its own workers (`batch`). The steps of the stages live in their stage modules
(`StageSpec.cascade_step`); every stage's output is recorded under its declared name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from .context import RunContext
from .errors import ModelLoadError
from .models.vae import AutoencoderKL
from .options import CascadeSettings
from .registry import BY_KEY, spec
from .stage import Stage
from .text import PromptEmbeddings, TextEncoder, encode_prompt

PUBLISHED_NEGATIVE = "low resolution, blur"  # the published script's negative prompt for sr2's CLIP guidance


@dataclass(frozen=True)
class Prompt:
    """The prompt (or a storyboard's prompts, one per keyframe), and the negative prompt of sr2's
    CLIP guidance (the pixel stages take an empty negative, as published)."""

    text: str | tuple[str, ...]
    negative: str = PUBLISHED_NEGATIVE

    @property
    def shots(self) -> str | list[str]:
        """What the text encoders take: the prompt, or the list of a storyboard's prompts."""
        return list(self.text) if isinstance(self.text, tuple) else self.text


@dataclass
class CascadeModels:
    """Loaded models of the cascade: each stage's by its key, and the text encoders and the VAE;
    what the steps that run do not need may be missing."""

    stages: dict[str, Stage] = field(default_factory=dict)
    t5: TextEncoder | None = None
    vae: AutoencoderKL | None = None
    clip: TextEncoder | None = None

    def stage(self, key: str) -> Stage:
        if key not in self.stages:
            raise ModelLoadError(f"the cascade needs {spec(key).label}, but it was not loaded; load it or stop at an "
                                 "earlier stage")
        return self.stages[key]

    def needed(self, name: str, what: str):
        model = getattr(self, name)
        if model is None:
            raise ModelLoadError(f"the cascade needs {what}, but it was not loaded; load it or stop at an earlier "
                                 "stage")
        return model

    def multiples(self) -> dict[str, int]:
        """Size multiples of the loaded models by stage key, for `CascadeSettings.validate` (sr2's
        sizes are its VAE's)."""
        found = {key: stage.unet.size_multiple for key, stage in self.stages.items() if key != "sr2"}
        if self.vae is not None:
            found["sr2"] = self.vae.size_multiple
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


def text_step(m: CascadeModels, state: CascadeState, s: CascadeSettings, ctx: RunContext) -> CascadeState:
    if state.t5 is None:
        t5 = m.needed("t5", "the T5 text encoder (show-1-base)")
        state = dataclasses.replace(state, t5=encode_prompt(t5, state.prompt.shots, "", s.clean_caption, ctx))
    ctx.emit("prompt_embeds", state.t5.positive)
    ctx.emit("negative_prompt_embeds", state.t5.negative)
    return state.after("text")


Step = Callable[[CascadeModels, CascadeState, CascadeSettings, RunContext], CascadeState]


def step_function(name: str) -> Step:
    return text_step if name == "text" else BY_KEY[name].cascade_step


def run_step(name: str, models: CascadeModels, state: CascadeState, settings: CascadeSettings,
             ctx: RunContext) -> CascadeState:
    """One step of the cascade; the stage's output is recorded under its declared name."""
    state = step_function(name)(models, state, settings, ctx)
    if name in BY_KEY and BY_KEY[name].output:
        ctx.emit(BY_KEY[name].output, state.video)
    return state


def run_cascade(models: CascadeModels, prompt: Prompt, settings: CascadeSettings = CascadeSettings(),
                ctx: RunContext | None = None, t5_embeds: PromptEmbeddings | None = None) -> torch.Tensor:
    """Run the cascade up to the last stage of `settings` and return its video (1, 3, F, H, W) in
    about [-1, 1]. `t5_embeds`, when given, stand in for the T5 encoder (encoded earlier)."""
    ctx = ctx or RunContext()
    settings.validate(multiples=models.multiples())
    state = CascadeState(prompt, t5_embeds)
    for name in settings.steps():
        state = run_step(name, models, state, settings, ctx)
    return state.video
