"""The stages of the pack, each declared once, in cascade order.

A `StageSpec` says everything the rest of the pack needs to know about a stage: which folder holds
it (hub repository, components, how its UNet config is recognised), which settings it takes and how
CLI flags and JOBS fields name them, the sizes its model sees, what it outputs (the name its video
is recorded under, the frame rate, the shape) and where its code lives: its stage module defines
`cascade_step(models, state, settings, ctx)` (the step of the published cascade, where the stage
is one) and its memory estimate (`estimate(unet, settings, shape, device)`: the peak of its largest
UNet call, `shape` the frames, height and width it denoises), and demo.py has the writer of its tiny
random folder. Every table that used to be keyed by stage reads this
registry; adding a stage is one declaration here, a member of `StageKind`, and its stage module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from . import rules
from .models.blocks import DOWN_BLOCKS
from .settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    SR1Settings,
    SR2Settings,
)


class StageKind(str, Enum):
    """The model folders of the cascade (what a loader recognises)."""

    BASE = "base"
    INTERPOLATION = "interpolation"
    SR1 = "sr1"
    IF_II = "if_ii"
    SR2 = "sr2"

    @property
    def spec(self) -> "StageSpec":
        return BY_KIND[self]

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def folder(self) -> str:
        """The folder name the pack expects under models/show1: the hub repository's name."""
        return self.spec.folder


Shape = tuple[int, int, int]  # frames, height, width


def pixel_unet(config: dict, in_channels: Callable[[int], int], class_embed: bool = False) -> bool:
    """A Show-1 pixel UNet3D (IF blocks with temporal layers) whose input channels, given its noise
    channels, are `in_channels(noise)`."""
    down = config.get("down_block_types") or []
    if config.get("_class_name") != "UNet3DConditionModel" or not down or not all(
            t in DOWN_BLOCKS and DOWN_BLOCKS[t].temporal and DOWN_BLOCKS[t].if_family for t in down):
        return False
    noise = (config.get("out_channels") or 6) // 2
    return config.get("in_channels") == in_channels(noise) and (
        not class_embed or config.get("class_embed_type") == "timestep")


def latent_unet(config: dict) -> bool:
    """The ModelScope-layout UNet3D of show-1-sr2 (temporal blocks, none of the IF family)."""
    down = config.get("down_block_types") or []
    return config.get("_class_name") == "UNet3DConditionModel" and bool(down) and all(
        t in DOWN_BLOCKS and DOWN_BLOCKS[t].temporal and not DOWN_BLOCKS[t].if_family for t in down)


def if_ii_unet(config: dict) -> bool:
    down = config.get("down_block_types") or []
    return (config.get("_class_name") == "UNet2DConditionModel" and bool(down) and all(t in DOWN_BLOCKS for t in down)
            and config.get("class_embed_type") == "timestep" and config.get("in_channels") == 6)


def keyframe_sizes(s) -> list[tuple[str, int]]:
    return [(f"keyframes.{axis}", getattr(s.keyframes, axis)) for axis in ("height", "width")]


def sr1_sizes(s) -> list[tuple[str, int]]:
    return [(f"keyframes.{axis} x sr1.scale", getattr(s.keyframes, axis) * s.sr1.scale) for axis in ("height", "width")]


def sr2_sizes(s) -> list[tuple[str, int]]:
    return [(f"sr2.{axis}", getattr(s.sr2, axis)) for axis in ("height", "width")]


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pack, declared once (see the module docstring)."""

    kind: StageKind
    key: str  # its settings field in CascadeSettings, its step in the cascade, its progress bar
    label: str
    repo: str  # hub repository; the folder under models/show1 has its name
    components: tuple[str, ...]  # the sub-folders it loads (and the downloader fetches)
    settings: type
    code: str  # its stage module: `cascade_step` runs it in the cascade, `<key>_memory` estimates a call
    demo: str  # demo.py's writer of its random folder
    recognise: Callable[[dict], bool]  # its UNet config, recognised
    options: dict[str, str] = field(default_factory=dict)  # CLI flag / JOBS field -> settings field
    sizes: Callable[[object], list[tuple[str, int]]] = lambda s: []  # (setting path, value) its model sees
    sized_by: str = ""  # what takes those sizes, in messages ("which show-1-sr1 needs")
    size_limit: int | None = None  # largest height/width its settings take
    shape: Callable[[object, Shape], Shape] | None = None  # its output shape, from the input shape
    output: str | None = None  # the name its video is recorded under (`--save-stages`, parity)
    fps: float | None = None  # frame rate of its output video
    part_of: str | None = None  # the cascade step it runs inside (IF-II: sr1's first frame)
    optional: bool = False  # the cascade runs without its folder
    latent: bool = False  # its UNet denoises VAE latents (its sizes are the VAE's input)
    text: str = "t5"  # the text encoder whose embeddings it takes ("t5" or "clip")
    short: str = ""  # its name in tables and memory plans (default: its key)

    @property
    def name(self) -> str:
        return self.short or self.key

    @property
    def folder(self) -> str:
        return self.repo.split("/")[1]

    @property
    def in_cascade(self) -> bool:
        return self.part_of is None

    @property
    def step(self) -> str:
        """The cascade step it runs in."""
        return self.part_of or self.key

    @property
    def module(self):
        return importlib.import_module(self.code)

    @property
    def cascade_step(self) -> Callable | None:
        """Its step of the cascade (None for a stage that runs inside another's step)."""
        return self.module.cascade_step if self.in_cascade else None

    @property
    def estimate(self) -> Callable[..., int]:
        return getattr(self.module, f"{self.key}_memory")

    @property
    def demo_writer(self) -> Callable:
        return getattr(importlib.import_module(f"{__package__}.demo"), self.demo)


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        StageKind.BASE, "keyframes", "keyframes (show-1-base)", "showlab/show-1-base",
        ("unet", "scheduler", "text_encoder", "tokenizer"), KeyframeSettings, f"{__package__}.stages.keyframes",
        "write_base", lambda c: pixel_unet(c, lambda noise: noise),
        options={"frames": "num_frames", "height": "height", "width": "width", "keyframe_steps": "steps",
                 "keyframe_guidance": "guidance"},
        sizes=keyframe_sizes, sized_by="keyframes (show-1-base)", size_limit=int(rules.KEYFRAME_SIZE.max),
        shape=lambda s, _: (s.keyframes.num_frames, s.keyframes.height, s.keyframes.width),
        output="base_video", fps=rules.KEYFRAME_FPS),
    StageSpec(
        StageKind.INTERPOLATION, "interpolation", "pixel interpolation (show-1-interpolation)",
        "showlab/show-1-interpolation", ("unet", "scheduler"), InterpolationSettings,
        f"{__package__}.stages.pixel_interpolation", "write_interpolation",
        lambda c: pixel_unet(c, lambda noise: 2 * noise + 1),
        options={"interp_steps": "steps", "interp_guidance": "guidance"},
        sizes=keyframe_sizes, sized_by="show-1-interpolation", size_limit=int(rules.KEYFRAME_SIZE.max),
        shape=lambda s, shape: (rules.interpolated_frames(shape[0], rules.PIXEL_NEW_PER_GAP), *shape[1:]),
        output="interp_video", fps=rules.INTERPOLATED_FPS),
    StageSpec(
        StageKind.IF_II, "if_ii", "first-frame super-resolution (DeepFloyd IF-II)", "DeepFloyd/IF-II-L-v1.0",
        ("unet", "scheduler", "image_noising_scheduler"), IFIISettings, f"{__package__}.stages.pixel_sr",
        "write_if_ii", if_ii_unet,
        options={"if_ii_steps": "steps", "if_ii_guidance": "guidance", "if_ii_noise_level": "noise_level"},
        sizes=sr1_sizes, sized_by="IF-II", part_of="sr1", optional=True, short="IF-II",
        shape=lambda s, shape: (1, shape[1] * s.sr1.scale, shape[2] * s.sr1.scale)),
    StageSpec(
        StageKind.SR1, "sr1", "pixel super-resolution (show-1-sr1)", "showlab/show-1-sr1",
        ("unet", "scheduler", "image_noising_scheduler"), SR1Settings, f"{__package__}.stages.pixel_sr", "write_sr1",
        lambda c: pixel_unet(c, lambda noise: 2 * noise, class_embed=True),
        options={"sr1_steps": "steps", "sr1_guidance": "guidance", "sr1_scale": "scale",
                 "sr1_noise_level": "noise_level"},
        sizes=sr1_sizes, sized_by="show-1-sr1",
        shape=lambda s, shape: (shape[0], shape[1] * s.sr1.scale, shape[2] * s.sr1.scale),
        output="sr1_video", fps=rules.INTERPOLATED_FPS),
    StageSpec(
        StageKind.SR2, "sr2", "latent super-resolution (show-1-sr2)", "showlab/show-1-sr2",
        ("unet", "scheduler", "text_encoder", "tokenizer", "vae"), SR2Settings, f"{__package__}.stages.latent_sr",
        "write_sr2", latent_unet,
        options={"sr2_steps": "steps", "sr2_height": "height", "sr2_width": "width", "strength": "strength",
                 "sr2_guidance": "guidance"},
        sizes=sr2_sizes, sized_by="the show-1-sr2 VAE", size_limit=int(rules.VAE_SIZE.max),
        shape=lambda s, shape: (shape[0], s.sr2.height, s.sr2.width), output="sr2_video", fps=rules.INTERPOLATED_FPS,
        latent=True, text="clip"),
)

BY_KIND = {s.kind: s for s in STAGES}
BY_KEY = {s.key: s for s in STAGES}
CASCADE = tuple(s.key for s in STAGES if s.in_cascade)  # the steps of the published cascade, in order


def spec(key: str | StageKind) -> StageSpec:
    return BY_KIND[key] if isinstance(key, StageKind) else BY_KEY[key]


def recognise(config: dict) -> StageKind | None:
    """The stage whose UNet `config` describes, or None."""
    return next((s.kind for s in STAGES if s.recognise(config)), None)
