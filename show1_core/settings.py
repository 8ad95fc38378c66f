"""The settings of each stage: the published defaults, stated once, and their rules.

Every stage function takes one settings object; the cascade composes them. A setting is a dataclass
field with its default, its rule (`rules`) and a line of help, which the ComfyUI nodes show as the
input's tooltip and the CLI as the flag's help. `validate(name)` checks every field and the rules
across fields, naming each input as the caller calls it (`name` maps a field to a node input or a
CLI flag), before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Callable

from . import rules
from .errors import InputError

Names = Callable[[str], str]


def setting(default, rule: rules.Range | None = None, help: str = "", choices: tuple | None = None):
    return field(default=default, metadata={"rule": rule, "help": help, "choices": choices})


def nested(cls):
    return field(default_factory=cls, metadata={"nested": True})


def same(name: str) -> str:
    return name


def known(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


class Settings:
    """Base of the settings dataclasses."""

    def validate(self, name: Names = same):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("nested"):
                value.validate(lambda n, p=f.name: name(f"{p}.{n}"))
            elif value is None and f.default is None:
                continue  # an optional setting left to the stage
            elif f.metadata.get("rule") is not None:
                f.metadata["rule"].validate(name(f.name), value)
            elif f.metadata.get("choices") is not None:
                rules.validate_choice(name(f.name), value, f.metadata["choices"])
        self.validate_across(name)
        return self

    def validate_across(self, name: Names) -> None:
        """Rules that tie fields together; a field that is None (not known yet: a node input that
        arrives through a link) leaves its rules out."""

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


@dataclass(frozen=True)
class KeyframeSettings(Settings):
    num_frames: int = setting(8, rules.NUM_KEYFRAMES, "Number of keyframes (published 8).")
    height: int = setting(40, rules.KEYFRAME_SIZE, "Frame height; the published model works at 64x40.")
    width: int = setting(64, rules.KEYFRAME_SIZE, "Frame width; the published model works at 64x40.")
    steps: int = setting(75, rules.STEPS, steps_help(75))
    guidance: float = setting(9.0, rules.GUIDANCE, guidance_help(9.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)


@dataclass(frozen=True)
class InterpolationSettings(Settings):
    steps: int = setting(75, rules.STEPS, steps_help(75))
    guidance: float = setting(4.0, rules.GUIDANCE, guidance_help(4.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)
    max_windows: int | None = setting(None, rules.MAX_WINDOWS, "Windows (pairs of keyframes) denoised together, at "
                                      "most: more is faster on a GPU, fewer saves memory. The video does not change.")


@dataclass(frozen=True)
class IFIISettings(Settings):
    """DeepFloyd IF-II's x4 upscale of sr1's first frame."""

    steps: int = setting(70, rules.STEPS, "IF-II denoising steps (published: 70).")
    guidance: float = setting(4.0, rules.GUIDANCE, "IF-II classifier-free guidance (published: 4.0).")
    noise_level: int = setting(150, rules.NOISE_LEVEL, "IF-II noise level (published 150).")
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class LatentSRSettings(Settings):
    strength: float = setting(0.8, rules.STRENGTH, "How much is redrawn (published 0.8); strength x steps must leave "
                              "at least one step.")
    steps: int = setting(50, rules.STEPS, steps_help(50))
    guidance: float = setting(15.0, rules.GUIDANCE, guidance_help(15.0))
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)

    def validate_across(self, name: Names) -> None:
        if known(self.strength, self.steps):
            rules.validate_strength_steps(self.strength, self.steps, (name("strength"), name("steps")))


@dataclass(frozen=True)
class SR2Settings(LatentSRSettings):
    """sr2 on pixel frames: the published hand-off resizes them to height x width first."""

    height: int = setting(320, rules.VAE_SIZE, "Height sr2 works at (published 320).")
    width: int = setting(576, rules.VAE_SIZE, "Width sr2 works at (published 576).")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class VAEDecodeSettings(Settings):
    frames_per_chunk: int = setting(8, rules.FRAMES_PER_CHUNK, "Frames through the VAE at once: fewer saves memory, "
                                    "the frames are the same.")
    tile: bool = setting(False, None, "Tiled VAE for large frames (less memory, slightly different numbers).",
                         (False, True))


@dataclass(frozen=True)
class VAEEncodeSettings(VAEDecodeSettings):
    posterior: str = setting("mean", None, "mean: deterministic. sample: draw from the VAE posterior with the seed, "
                             "as the published sr2 does.", POSTERIORS)
    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, "Seed of the posterior sample.")


STAGE_ORDER = ("keyframes", "interpolation", "sr1", "sr2")


@dataclass(frozen=True)
class CascadeSettings(Settings):
    """The published cascade: every stage's settings, one seed for all of them (each stage seeds
    its own generator with it, as the published script does) and the last stage to run."""

    seed: int = setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)
    last_stage: str = setting("sr2", None, "Stop after this stage.", STAGE_ORDER)
    clean_caption: bool = setting(False, None, "DeepFloyd IF's caption cleaning before T5 (off in the published "
                                  "cascade).", (False, True))
    keyframes: KeyframeSettings = nested(KeyframeSettings)
    interpolation: InterpolationSettings = nested(InterpolationSettings)
    if_ii: IFIISettings = nested(IFIISettings)
    sr1: SR1Settings = nested(SR1Settings)
    sr2: SR2Settings = nested(SR2Settings)

    @property
    def upto(self) -> int:
        return STAGE_ORDER.index(self.last_stage)

    def runs(self, stage: str) -> bool:
        """Whether `stage` ("keyframes", "interpolation", "if_ii", "sr1", "sr2") runs up to the last stage."""
        return STAGE_ORDER.index("sr1" if stage == "if_ii" else stage) <= self.upto

    def stage(self, name: str):
        """One stage's settings, seeded with the cascade's seed."""
        return getattr(self, name).replace(seed=self.seed)

    def validate(self, name: Names = same, multiples: dict[str, int] | None = None):
        """Every setting of the stages that run, the sizes each model will see (`multiples`: the size
        multiple of each stage's model, "keyframes", "interpolation", "sr1", "if_ii", "vae"), and the
        rules across stages, before any of them runs."""
        rules.SEED.validate(name("seed"), self.seed)
        rules.validate_choice(name("last_stage"), self.last_stage, STAGE_ORDER)
        for stage in ("keyframes", "interpolation", "if_ii", "sr1", "sr2"):
            if self.runs(stage):
                getattr(self, stage).replace(seed=self.seed).validate(lambda n, s=stage: name(f"{s}.{n}"))
        multiples = multiples or {}
        kf = self.keyframes
        if self.runs("interpolation") and kf.num_frames < rules.MIN_KEYFRAMES:
            raise InputError(f"{name('keyframes.num_frames')}: {kf.num_frames} keyframe(s); pixel interpolation needs "
                             f"at least {rules.MIN_KEYFRAMES}; give {rules.MIN_KEYFRAMES} or more, or stop after "
                             f"keyframes ({name('last_stage')} keyframes)")
        pixel = [("keyframes", "keyframes (show-1-base)"), ("interpolation", "show-1-interpolation")]
        for stage, label in pixel[: self.upto + 1]:
            for axis in ("height", "width"):
                rules.validate_size(name(f"keyframes.{axis}"), getattr(kf, axis), multiples.get(stage, 1), label,
                                    maximum=int(rules.KEYFRAME_SIZE.max))
        if self.runs("sr1"):
            for axis in ("height", "width"):
                for stage, label in (("sr1", "show-1-sr1"), ("if_ii", "IF-II")):
                    value = getattr(kf, axis) * self.sr1.scale
                    rules.validate_size(f"{name(f'keyframes.{axis}')} x {name('sr1.scale')} ({value})", value,
                                        multiples.get(stage, 1), label)
        if self.runs("sr2"):
            for axis in ("height", "width"):
                rules.validate_size(name(f"sr2.{axis}"), getattr(self.sr2, axis), multiples.get("vae", 1),
                                    "the show-1-sr2 VAE", maximum=int(rules.VAE_SIZE.max))
        return self

    def output_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of the last stage's video."""
        kf = self.keyframes
        frames = kf.num_frames if self.upto == 0 else rules.interpolated_frames(kf.num_frames, rules.PIXEL_NEW_PER_GAP)
        if self.upto == 3:
            return frames, self.sr2.height, self.sr2.width
        scale = self.sr1.scale if self.upto == 2 else 1
        return frames, kf.height * scale, kf.width * scale
