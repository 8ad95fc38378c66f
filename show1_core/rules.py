"""The input rules of the Show-1 stages, declared once.

Ranges, published defaults, size multiples, frame-count formulas and the rules that tie inputs
together live here. The stage functions check their arguments with them, the CLI checks its flags
with them, the ComfyUI nodes take their widget limits and validation from them, and the web
readout reads them through the pack's `/show1/rules` route, so no number can differ between core,
node and browser. Every check raises `InputError` naming the input as the caller calls it (an
argument, a CLI flag, a node input), the value given and the fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError

SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed takes [0, 2^64); ComfyUI's own seed widgets use the same
PUBLISHED_SIZE_MULTIPLE = 8  # the published pixel UNets halve three times (four down blocks)
VAE_SIZE_MULTIPLE = 8  # the show-1-sr2 VAE downsamples x8
PIXEL_NEW_PER_GAP = 3  # show-1-interpolation puts three new frames between two keyframes
INTERPOLATION_WINDOW = PIXEL_NEW_PER_GAP + 2
MIN_KEYFRAMES = 2


@dataclass(frozen=True)
class Range:
    """A numeric input: its bounds (inclusive unless `min_exclusive`), default and widget step. Size
    multiples are not checked here: they depend on the model (`check_size`)."""

    min: float
    max: float
    default: float
    step: float | None = None
    integer: bool = True
    min_exclusive: bool = False
    hint: str = ""

    def check(self, name: str, value, fix: str = "") -> None:
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

    def widget(self) -> dict:
        """ComfyUI widget options."""
        options = {"default": self.default, "min": self.min, "max": self.max}
        if self.step is not None:
            options["step"] = self.step
        if self.min_exclusive:
            options["min"] = self.step or 0.01
        return options


SEED = Range(0, SEED_MAX, 0, hint="any seed works; the same seed gives the same video")
STEPS = Range(1, 1000, 50, hint="denoising steps")
GUIDANCE = Range(0.0, 100.0, 7.0, step=0.5, integer=False, hint="values <= 1 switch classifier-free guidance off")
STRENGTH = Range(0.0, 1.0, 0.8, step=0.01, integer=False, min_exclusive=True,
                 hint="1 redraws everything, small values keep the input")
NOISE_LEVEL = Range(0, 999, 250, hint="noise added to the upscaled condition")
FPS = Range(0.1, 120.0, 8.0, step=0.5, integer=False)
NUM_KEYFRAMES = Range(1, 64, 8, hint="the keyframe model was trained on 8")
KEYFRAME_SIZE = Range(8, 1024, 64, step=PUBLISHED_SIZE_MULTIPLE, hint="the published model works at 64x40")
SR1_SCALE = Range(1, 8, 4, hint="published 4: 64x40 -> 256x160")
VAE_SIZE = Range(64, 2048, 576, step=VAE_SIZE_MULTIPLE, hint="published 576x320")
FRAMES_BETWEEN = Range(0, 120, 7)
WINDOW = Range(2, 128, 16, hint="frames the latent UNet sees at once")
OVERLAP = Range(0, 127, 4)
MAX_WINDOWS = Range(1, 256, 8)
FRAMES_PER_CHUNK = Range(1, 256, 8)


@dataclass(frozen=True)
class StageDefaults:
    """The published settings of one stage."""

    steps: int
    guidance: float
    fps: float | None = None
    noise_level: int | None = None
    strength: float | None = None


KEYFRAMES = StageDefaults(steps=75, guidance=9.0, fps=2.0)
INTERPOLATION = StageDefaults(steps=75, guidance=4.0, fps=7.5)
IF_II = StageDefaults(steps=70, guidance=4.0, noise_level=150)
SR1 = StageDefaults(steps=125, guidance=7.0, noise_level=250)
SR2 = StageDefaults(steps=50, guidance=15.0, strength=0.8)
LATENT_INTERPOLATION = StageDefaults(steps=50, guidance=9.0, fps=8.0, strength=1.0)
PUBLISHED_SIZE = {"keyframes": (40, 64), "sr2": (320, 576)}  # (height, width)


def interpolated_frames(keyframes: int, per_gap: int) -> int:
    """Frames of a video with `per_gap` new frames between each pair of `keyframes`."""
    return keyframes + (keyframes - 1) * per_gap


def check_keyframe_count(name: str, keyframes: int) -> None:
    if keyframes < MIN_KEYFRAMES:
        raise InputError(f"{name}: {keyframes} keyframe(s); interpolation needs at least {MIN_KEYFRAMES} (connect a "
                         "batch of two or more images, e.g. with ImageBatch)")


def check_window_overlap(window: int, overlap: int, names: tuple[str, str] = ("window", "overlap")) -> None:
    WINDOW.check(names[0], window)
    OVERLAP.check(names[1], overlap)
    if overlap >= window:
        raise InputError(f"{names[1]}: {overlap} must be smaller than {names[0]} ({window}); use at most {window - 1}")


def check_strength_steps(strength: float, steps: int, names: tuple[str, str] = ("strength", "steps")) -> None:
    """img2img runs the last int(steps * strength) steps: at least one must be left."""
    STRENGTH.check(names[0], strength)
    STEPS.check(names[1], steps)
    if int(steps * strength) < 1:
        need = math.ceil(1 / strength)
        raise InputError(f"{names[0]}: {strength:g} x {names[1]} {steps} leaves no denoising step (int({steps} x "
                         f"{strength:g}) = 0); raise {names[1]} to {need} or more, or raise {names[0]}")


def check_size(name: str, value: int, multiple: int, what: str, why: str = "", maximum: int | None = None) -> None:
    """A height or width the model can take: a positive multiple of `multiple` (`what` needs it),
    at most `maximum`. The widgets' lower bounds are for people; a model takes any multiple."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{name}: {value!r} must be a positive integer (pixels)")
    if maximum is not None and value > maximum:
        raise InputError(f"{name}: {value} is above {maximum}; give at most {maximum} pixels")
    if value % multiple:
        lower = value - value % multiple
        raise InputError(f"{name}: {value} is not a multiple of {multiple}, which {what} needs"
                         f"{f' ({why})' if why else ''}; use {max(multiple, lower)} or {lower + multiple}")


def check_choice(name: str, value, choices) -> None:
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name}: {value!r} is not one of {', '.join(map(str, choices))}; pick one of those")


RANGES = {name: value for name, value in globals().items() if isinstance(value, Range)}
DEFAULTS = {name: value for name, value in globals().items() if isinstance(value, StageDefaults)}


def as_json() -> dict:
    """The rules the web readout needs, for the pack's route."""
    return {
        "ranges": {name: asdict(r) for name, r in RANGES.items()},
        "defaults": {name: asdict(d) for name, d in DEFAULTS.items()},
        "pixel_new_per_gap": PIXEL_NEW_PER_GAP,
        "min_keyframes": MIN_KEYFRAMES,
        "published_size_multiple": PUBLISHED_SIZE_MULTIPLE,
        "vae_size_multiple": VAE_SIZE_MULTIPLE,
    }
