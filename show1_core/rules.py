"""The input rules of the Show-1 stages, declared once.

Ranges, the published constants, frame-count formulas and the rules that tie inputs together live
here. The stage settings (`settings`) validate themselves with them, the CLI names its flags in
their messages, the ComfyUI nodes take their widget limits from them and the web readout is
computed on the server with them, so no number can differ between core, node and browser. Every
rule raises `InputError` naming the input as the caller calls it (an argument, a CLI flag, a node
input), the value given and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError

SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed takes [0, 2^64); ComfyUI's own seed widgets use the same
PUBLISHED_SEED = 345  # the seed of the published inference script
PUBLISHED_SIZE_MULTIPLE = 8  # the published pixel UNets halve three times (four down blocks): the widgets' step
VAE_SIZE_MULTIPLE = 8  # the show-1-sr2 VAE downsamples x8: the widgets' step
PIXEL_NEW_PER_GAP = 3  # show-1-interpolation puts three new frames between two keyframes
INTERPOLATION_WINDOW = PIXEL_NEW_PER_GAP + 2
MIN_KEYFRAMES = 2
KEYFRAME_FPS, INTERPOLATED_FPS = 2.0, 7.5  # frame rates of the published outputs (keyframes, then every stage)


@dataclass(frozen=True)
class Range:
    """A numeric input: its bounds (inclusive unless `min_exclusive`) and widget step. Defaults live
    with the settings that use the range; size multiples depend on the model (`validate_size`)."""

    min: float
    max: float
    step: float | None = None
    integer: bool = True
    min_exclusive: bool = False
    hint: str = ""

    def validate(self, name: str, value, fix: str = "") -> None:
        kind = "an integer" if self.integer else "a number"
        show = (lambda x: str(int(x))) if self.integer else (lambda x: f"{x:g}")
        bounds = f"{'(' if self.min_exclusive else '['}{show(self.min)}, {show(self.max)}]"
        what = f"{name}: {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.integer and not isinstance(value, int)):
            raise InputError(f"{what} is not {kind}; give {kind} in {bounds}{self._fix(fix)}")
        if not math.isfinite(value):
            raise InputError(f"{what} is not finite; give {kind} in {bounds}{self._fix(fix)}")
        below = value <= self.min if self.min_exclusive else value < self.min
        if below or value > self.max:
            raise InputError(f"{what} is outside {bounds}{self._fix(fix)}")

    def _fix(self, fix: str) -> str:
        text = fix or self.hint
        return f" ({text})" if text else ""

    @property
    def widget_min(self) -> float:
        """The lowest value a widget offers: not an exclusive bound, and for sizes, one step."""
        if self.min_exclusive:
            return self.step or 0.01
        if self.integer and self.step and self.min < self.step:
            return self.step
        return self.min


SEED = Range(0, SEED_MAX, hint="any seed works; the same seed gives the same video")
STEPS = Range(1, 1000, hint="denoising steps")
GUIDANCE = Range(0.0, 100.0, step=0.5, integer=False, hint="values <= 1 switch classifier-free guidance off")
STRENGTH = Range(0.0, 1.0, step=0.01, integer=False, min_exclusive=True,
                 hint="1 redraws everything, small values keep the input")
NOISE_LEVEL = Range(0, 999, hint="noise added to the upscaled condition")
FPS = Range(0.1, 120.0, step=0.5, integer=False)
NUM_KEYFRAMES = Range(1, 64, hint="the keyframe model was trained on 8")
KEYFRAME_SIZE = Range(1, 1024, step=PUBLISHED_SIZE_MULTIPLE, hint="the published model works at 64x40")
SR1_SCALE = Range(1, 8, hint="published 4: 64x40 -> 256x160")
SR1_WINDOW = Range(2, 64, hint="published 8")
SR1_STRIDE = Range(1, 63, hint="published 7")
VAE_SIZE = Range(1, 2048, step=VAE_SIZE_MULTIPLE, hint="published 576x320")
FRAMES_BETWEEN = Range(0, 120)
WINDOW = Range(2, 128, hint="frames the latent UNet sees at once")
OVERLAP = Range(0, 127)
MAX_WINDOWS = Range(1, 256)
FRAMES_PER_CHUNK = Range(1, 256)
VIDEO_FRAMES = Range(1, 4096, hint="split longer videos into parts")
OUTPUT_SIZE = Range(1, 4096, hint="pixels")


def interpolated_frames(keyframes: int, per_gap: int) -> int:
    """Frames of a video with `per_gap` new frames between each pair of `keyframes`."""
    return keyframes + (keyframes - 1) * per_gap


def validate_keyframe_count(name: str, keyframes: int) -> None:
    if keyframes < MIN_KEYFRAMES:
        raise InputError(f"{name}: {keyframes} keyframe(s); interpolation needs at least {MIN_KEYFRAMES} (connect a "
                         "batch of two or more images, e.g. with ImageBatch)")


def validate_window_overlap(window: int, overlap: int, names: tuple[str, str] = ("window", "overlap")) -> None:
    if overlap >= window:
        raise InputError(f"{names[1]}: {overlap} must be smaller than {names[0]} ({window}); use at most {window - 1}")


def validate_strength_steps(strength: float, steps: int, names: tuple[str, str] = ("strength", "steps")) -> None:
    """img2img runs the last int(steps * strength) steps: at least one must be left."""
    if int(steps * strength) < 1:
        need = math.ceil(1 / strength)
        raise InputError(f"{names[0]}: {strength:g} x {names[1]} {steps} leaves no denoising step (int({steps} x "
                         f"{strength:g}) = 0); raise {names[1]} to {need} or more, or raise {names[0]}")


def validate_size(name: str, value: int, multiple: int, what: str, why: str = "", maximum: int | None = None) -> None:
    """A height or width the model can take: a positive multiple of `multiple` (`what` needs it),
    at most `maximum`. The widgets' lower bounds are for people; a model takes any multiple."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name}: {value!r} must be a positive integer (pixels)")
    if maximum is not None and value > maximum:
        raise InputError(f"{name}: {value} is above {maximum}; give at most {maximum} pixels")
    if value % multiple:
        lower = value - value % multiple
        use = f"{lower} or {lower + multiple}" if lower else f"{multiple}"
        raise InputError(f"{name}: {value} is not a multiple of {multiple}, which {what} needs"
                         f"{f' ({why})' if why else ''}; use {use}")


def validate_choice(name: str, value, choices) -> None:
    """One of `choices`, of its type too: "no" or 0 is not a boolean, 1.0 not the integer 1."""
    choices = list(choices)
    if not any(value == c and type(value) is type(c) for c in choices):
        if all(isinstance(c, bool) for c in choices):
            raise InputError(f"{name}: {value!r} is not a boolean; give true or false")
        raise InputError(f"{name}: {value!r} is not one of {', '.join(map(str, choices))}; pick one of those")
