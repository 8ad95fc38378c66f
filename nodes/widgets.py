"""Widget declarations of the nodes, built from `show1_core.rules` so their limits are the core's."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.frames import RESIZE_MODES
from ..show1_core.memory import Offload
from .comfy import DTYPE_CHOICES


def number(kind: str, rule: rules.Range, tooltip: str, default=None) -> tuple:
    options = rule.widget()
    if default is not None:
        options["default"] = default
    return (kind, {**options, "tooltip": tooltip})


def integer(rule: rules.Range, tooltip: str, default=None) -> tuple:
    return number("INT", rule, tooltip, default)


def real(rule: rules.Range, tooltip: str, default=None) -> tuple:
    return number("FLOAT", rule, tooltip, default)


def seed(tooltip: str = "Random seed; the same seed gives the same video.") -> tuple:
    return integer(rules.SEED, tooltip)


def steps(default: int, what: str = "Denoising steps") -> tuple:
    return integer(rules.STEPS, f"{what} (published: {default}). Time grows with it.", default)


def guidance(default: float, what: str = "Classifier-free guidance") -> tuple:
    return real(rules.GUIDANCE, f"{what} (published: {default}); <= 1 turns it off.", default)


def fps(default: float) -> tuple:
    return real(rules.FPS, "Frame rate reported on the fps output (for CreateVideo).", default)


def size(rule: rules.Range, default: int, tooltip: str) -> tuple:
    return integer(rule, tooltip, default)


def strength(default: float, tooltip: str) -> tuple:
    return real(rules.STRENGTH, tooltip, default)


def noise_level(default: int, tooltip: str) -> tuple:
    return integer(rules.NOISE_LEVEL, tooltip, default)


def resize(tooltip: str, extra: tuple[str, ...] = ()) -> tuple:
    return ([*extra, *RESIZE_MODES], {"default": "crop", "tooltip": tooltip})


def dtype(default: str = "auto", tooltip: str = "") -> tuple:
    return (DTYPE_CHOICES, {"default": default, "tooltip": tooltip or DTYPE_TIP})


DTYPE_TIP = ("Weights' precision. auto: bf16 or fp16 where ComfyUI deems the GPU fit for it, fp32 on the CPU. "
             "fp16 halves the memory of fp32; bf16 too, with fewer overflows.")
OFFLOAD = ([o.value for o in Offload], {
    "default": "stage", "tooltip": "Where the model waits between uses, managed by ComfyUI's model manager (which "
                                   "can always evict it for other models). keep: stays on the GPU (fastest). stage: "
                                   "back to the CPU after each node. window: back after every window (least VRAM, "
                                   "slowest)."})
