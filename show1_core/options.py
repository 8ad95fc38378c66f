"""The cascade's settings by the names users give them: CLI flags (`--keyframe-steps`) and the
fields of a batch job (`keyframe_steps`). One table maps each name to its place in
`CascadeSettings`, so `generate` and `batch` take the same settings and name them alike in errors.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError
from .settings import CascadeSettings

# option name -> path in CascadeSettings
OPTIONS = {
    "seed": "seed", "last_stage": "last_stage", "clean_caption": "clean_caption",
    "frames": "keyframes.num_frames", "height": "keyframes.height", "width": "keyframes.width",
    "keyframe_steps": "keyframes.steps", "keyframe_guidance": "keyframes.guidance",
    "interp_steps": "interpolation.steps", "interp_guidance": "interpolation.guidance",
    "if_ii_steps": "if_ii.steps", "if_ii_guidance": "if_ii.guidance", "if_ii_noise_level": "if_ii.noise_level",
    "sr1_steps": "sr1.steps", "sr1_guidance": "sr1.guidance", "sr1_scale": "sr1.scale",
    "sr1_noise_level": "sr1.noise_level",
    "sr2_steps": "sr2.steps", "sr2_height": "sr2.height", "sr2_width": "sr2.width", "strength": "sr2.strength",
    "sr2_guidance": "sr2.guidance",
}
NAME_OF = {path: name for name, path in OPTIONS.items()}
# Small sizes and few steps for the random demo weights: a quick run that exercises every stage.
DEMO = {"height": 16, "width": 24, "keyframe_steps": 8, "interp_steps": 6, "if_ii_steps": 6, "sr1_steps": 4,
        "sr2_height": 64, "sr2_width": 96, "sr2_steps": 10}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def describe(name: str):
    """The settings field behind an option (default, rule, help)."""
    owner, field = CascadeSettings, OPTIONS[name]
    *parents, leaf = field.split(".")
    for parent in parents:
        owner = owner.describe(parent).default_factory
    return owner.describe(leaf)


def namer(style: str):
    """Names of settings paths in messages: as CLI flags ("flag") or job fields ("field")."""
    def name(path: str) -> str:
        option = NAME_OF.get(path, path)
        return flag(option) if style == "flag" else option
    return name


def apply(settings: CascadeSettings, values: dict[str, Any], style: str = "field") -> CascadeSettings:
    """`settings` with the given options set (None values are left alone); unknown names are an error."""
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        shown = ", ".join(flag(u) if style == "flag" else u for u in unknown)
        raise InputError(f"{shown}: not a setting of the cascade; known: {', '.join(sorted(OPTIONS))}")
    for name, value in values.items():
        if value is None:
            continue
        *parents, leaf = OPTIONS[name].split(".")
        if parents:
            stage = getattr(settings, parents[0])
            settings = settings.replace(**{parents[0]: stage.replace(**{leaf: value})})
        else:
            settings = settings.replace(**{leaf: value})
    return settings


def base_settings(demo: bool) -> CascadeSettings:
    """The published settings, or the demo's small sizes and step counts."""
    settings = CascadeSettings()
    return apply(settings, DEMO) if demo else settings
