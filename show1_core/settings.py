"""The settings of each stage: the published defaults, stated once, and their rules.

Every stage function takes one settings object; the cascade composes them (`options`). A setting is
a dataclass field with its default, its rule (`rules`) and a line of help, which the ComfyUI nodes
show as the input's tooltip and the CLI as the flag's help. A settings object checks every field,
types included, and the rules across its fields when it is made, so nothing downstream can see an
unchecked value. The message names each input as the caller calls it: the caller states the names
(`naming`: a node input, a CLI flag, a JOBS field) around the construction.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Callable, Iterator

from . import rules
from .errors import InputError

Names = Callable[[str], str]


def setting(default, rule: rules.Range | None = None, help: str = "", choices: tuple | None = None):
    return field(default=default, metadata={"rule": rule, "help": help, "choices": choices})


def nested(cls):
    return field(default_factory=cls, metadata={"nested": True})


def same(name: str) -> str:
    return name


NAMES: ContextVar[Names] = ContextVar("settings_names", default=same)


@contextmanager
def naming(names: Names) -> Iterator[None]:
    """Settings made inside the block name their fields with `names` in their errors."""
    token = NAMES.set(names)
    try:
        yield
    finally:
        NAMES.reset(token)


def known(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


class Settings:
    """Base of the settings dataclasses: checked when made (`__post_init__`)."""

    def __post_init__(self):
        self.check(NAMES.get())

    def check(self, name: Names) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("nested"):
                if not isinstance(value, f.type if isinstance(f.type, type) else Settings):
                    raise InputError(f"{name(f.name)}: {type(value).__name__} given, not stage settings")
            elif value is None and f.default is None:
                continue  # an optional setting left to the stage
            elif f.metadata.get("rule") is not None:
                f.metadata["rule"].validate(name(f.name), value)
            elif f.metadata.get("choices") is not None:
                rules.validate_choice(name(f.name), value, f.metadata["choices"])
        self.validate_across(name)

    def validate(self, name: Names = same):
        """Check again, naming the fields with `name` (every field was checked when it was made)."""
        for f in fields(self):
            if f.metadata.get("nested"):
                getattr(self, f.name).validate(lambda n, p=f.name: name(f"{p}.{n}"))
        self.check(name)
        return self

    def validate_across(self, name: Names) -> None:
        """Rules that tie fields together; a field that is None (an optional one left to the
        stage) leaves its rules out."""

    @classmethod
    def check_across(cls, values: dict, name: Names = same) -> None:
        """The rules across fields, on values of which some may be unknown yet (None: a node input
        that arrives through a link); the fields themselves are checked by whoever knows them."""
        draft = object.__new__(cls)
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            object.__setattr__(draft, f.name, values.get(f.name, default))
        draft.validate_across(name)

    def replace(self, **changes):
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls, name: str) -> dataclasses.Field:
        """The field of a setting (its default, rule, help and choices)."""
        for f in fields(cls):
            if f.name == name:
                return f
        raise KeyError(f"{cls.__name__} has no setting {name}")


SEED_HELP = "Random seed; the same seed gives the same video."


def steps_help(default: int) -> str:
    return f"Denoising steps (published: {default}). Time grows with it."


def guidance_help(default: float) -> str:
    return f"Classifier-free guidance (published: {default}); <= 1 turns it off."


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class KeyframeSettings(Settings):
    num_frames: int = setting(8, rules.NUM_KEYFRAMES, "Number of keyframes (published 8).")
    height: int = setting(40, rules.KEYFRAME_SIZE, "Frame height; the published model works at 64x40.")
    width: int = setting(64, rules.KEYFRAME_SIZE, "Frame width; the published model works at 64x40.")
    steps: int = setting(75, rules.STEPS, steps_help(75))
    guidance: float = setting(9.0, rules.GUIDANCE, guidance_help(9.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class InterpolationSettings(Settings):
    steps: int = setting(75, rules.STEPS, steps_help(75))
    guidance: float = setting(4.0, rules.GUIDANCE, guidance_help(4.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)
    max_windows: int | None = setting(None, rules.MAX_WINDOWS, "Windows (pairs of keyframes) denoised together, at "
                                      "most: more is faster on a GPU, fewer saves memory. The video does not change.")


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class IFIISettings(Settings):
    """DeepFloyd IF-II's x4 upscale of sr1's first frame."""

    steps: int = setting(70, rules.STEPS, "IF-II denoising steps (published: 70).")
    guidance: float = setting(4.0, rules.GUIDANCE, "IF-II classifier-free guidance (published: 4.0).")
    noise_level: int = setting(150, rules.NOISE_LEVEL, "IF-II noise level (published 150).")
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class SR1Settings(Settings):
    scale: int = setting(4, rules.SR1_SCALE, "Output size = input size x scale (published 4: 64x40 -> 256x160).")
    steps: int = setting(125, rules.STEPS, steps_help(125))
    guidance: float = setting(7.0, rules.GUIDANCE, guidance_help(7.0))
    noise_level: int = setting(250, rules.NOISE_LEVEL, "Noise added to the upscaled condition (published 250): "
                               "higher lets the model invent more.")
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)
    window: int = setting(8, rules.SR1_WINDOW, "Frames of one sr1 call (published 8).")
    stride: int = setting(7, rules.SR1_STRIDE, "Frames between the starts of two windows (published 7).")

    def validate_across(self, name: Names) -> None:
        if known(self.stride, self.window) and self.stride >= self.window:
            raise InputError(f"{name('stride')}: {self.stride} must be smaller than {name('window')} ({self.window}) "
                             f"so that windows overlap; use at most {self.window - 1} (published: 8 / 7)")


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class LatentSRSettings(Settings):
    strength: float = setting(0.8, rules.STRENGTH, "How much is redrawn (published 0.8); strength x steps must leave "
                              "at least one step.")
    steps: int = setting(50, rules.STEPS, steps_help(50))
    guidance: float = setting(15.0, rules.GUIDANCE, guidance_help(15.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)

    def validate_across(self, name: Names) -> None:
        if known(self.strength, self.steps):
            rules.validate_strength_steps(self.strength, self.steps, (name("strength"), name("steps")))


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class SR2Settings(LatentSRSettings):
    """sr2 on pixel frames: the published hand-off resizes them to height x width first."""

    height: int = setting(320, rules.VAE_SIZE, "Height sr2 works at (published 320).")
    width: int = setting(576, rules.VAE_SIZE, "Width sr2 works at (published 576).")


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class LatentInterpolationSettings(Settings):
    frames_between: int = setting(7, rules.FRAMES_BETWEEN, "New frames in every gap: K keyframes give (K-1) x "
                                  "(frames_between + 1) + 1 frames.")
    steps: int = setting(50, rules.STEPS, steps_help(50))
    guidance: float = setting(9.0, rules.GUIDANCE, guidance_help(9.0))
    strength: float = setting(1.0, rules.STRENGTH, "1: the in-between frames start from noise. Lower: they start from "
                              "the cross-fade of the keyframes and keep closer to it.")
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)
    window: int = setting(16, rules.WINDOW, "Frames the UNet sees at once; memory grows with this, not with the "
                          "video length.")
    overlap: int = setting(4, rules.OVERLAP, "Frames shared by neighbouring windows, blended smoothly; smaller than "
                           "window.")

    def validate_across(self, name: Names) -> None:
        if known(self.window, self.overlap):
            rules.validate_window_overlap(self.window, self.overlap, (name("window"), name("overlap")))
        if known(self.strength, self.steps):
            rules.validate_strength_steps(self.strength, self.steps, (name("strength"), name("steps")))


POSTERIORS = ("mean", "sample")


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class VAEDecodeSettings(Settings):
    frames_per_chunk: int = setting(8, rules.FRAMES_PER_CHUNK, "Frames through the VAE at once: fewer saves memory, "
                                    "the frames are the same.")
    tile: bool = setting(False, None, "Tiled VAE for large frames (less memory, slightly different numbers).",
                         (False, True))


@dataclass(frozen=True, kw_only=True)  # made by name only: a reordered field cannot swap values
class VAEEncodeSettings(VAEDecodeSettings):
    posterior: str = setting("mean", None, "mean: deterministic. sample: draw from the VAE posterior with the seed, "
                             "as the published sr2 does.", POSTERIORS)
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, "Seed of the posterior sample.")
