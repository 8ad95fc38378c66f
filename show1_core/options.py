"""The cascade's settings, and the names users give them: CLI flags (`--keyframe-steps`) and the
fields of a batch job (`keyframe_steps`).

`CascadeSettings` holds the settings of every stage the registry declares, under the stage's key,
plus what the whole cascade shares (the seed, the last stage, caption cleaning). Each stage
declares how its settings are named as options (`StageSpec.options`), so `generate` and `batch`
take the same settings and name them alike in errors, and a new stage brings its own options.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import rules
from .errors import InputError
from .registry import BY_KEY, CASCADE, STAGES, StageSpec
from .settings import SEED_HELP, Names, Settings, nested, same, setting
from .settings import naming as named_fields


class Cascade(Settings):
    """What `CascadeSettings` does with its stages' settings (the fields come from the registry)."""

    def runs(self, key: str) -> bool:
        """Whether the stage `key` runs up to the last stage."""
        return CASCADE.index(BY_KEY[key].step) <= CASCADE.index(self.last_stage)

    def specs(self) -> list[StageSpec]:
        """The stages that run, in cascade order."""
        return [s for s in STAGES if self.runs(s.key)]

    def steps(self) -> tuple[str, ...]:
        """The cascade steps that run: the text encoder's, then each stage's."""
        return ("text", *(key for key in CASCADE if self.runs(key)))

    def stage(self, key: str):
        """One stage's settings, seeded with the cascade's seed."""
        return getattr(self, key).replace(seed=self.seed)

    def validate_across(self, name: Names) -> None:
        if self.runs("interpolation") and self.keyframes.num_frames < rules.MIN_KEYFRAMES:
            raise InputError(f"{name('keyframes.num_frames')}: {self.keyframes.num_frames} keyframe(s); pixel "
                             f"interpolation needs at least {rules.MIN_KEYFRAMES}; give {rules.MIN_KEYFRAMES} or more, "
                             f"or stop after keyframes ({name('last_stage')} keyframes)")

    def validate(self, name: Names = same, multiples: dict[str, int] | None = None):
        """Every setting of the stages that run, the sizes each model sees (`multiples`: the size
        multiple of each stage's model by stage key), and the rules across stages, before any of
        them runs."""
        super().validate(name)
        multiples = multiples or {}
        for spec in self.specs():
            for path, value in spec.sizes(self):
                shown = " x ".join(name(part) for part in path.split(" x "))
                shown = shown if " x " not in path else f"{shown} ({value})"
                rules.validate_size(shown, value, multiples.get(spec.key, 1), spec.sized_by, maximum=spec.size_limit)
        return self

    def output_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of the last stage's video."""
        shape = (0, 0, 0)
        for spec in self.specs():
            if spec.in_cascade:
                shape = spec.shape(self, shape)
        return shape

    @property
    def output_fps(self) -> float:
        return BY_KEY[self.last_stage].fps


CascadeSettings = dataclasses.make_dataclass(
    "CascadeSettings",
    [("seed", int, setting(rules.PUBLISHED_SEED, rules.SEED, SEED_HELP)),
     ("last_stage", str, setting(CASCADE[-1], None, "Stop after this stage.", CASCADE)),
     ("clean_caption", bool, setting(False, None, "DeepFloyd IF's caption cleaning before T5 (off in the published "
                                     "cascade).", (False, True))),
     *((spec.key, spec.settings, nested(spec.settings)) for spec in STAGES)],
    bases=(Cascade,), frozen=True, kw_only=True)
CascadeSettings.__module__ = __name__
CascadeSettings.__doc__ = ("The published cascade: every stage's settings, one seed for all of them (each stage seeds "
                           "its own generator with it, as the published script does) and the last stage to run.")

# option name -> path in CascadeSettings
OPTIONS = {"seed": "seed", "last_stage": "last_stage", "clean_caption": "clean_caption",
           **{option: f"{spec.key}.{field}" for spec in STAGES for option, field in spec.options.items()}}
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
        return flag(option) if style == "flag" else f"field {option!r}" if style == "field" else option
    return name


def apply(settings, values: dict[str, Any], style: str = "field"):
    """`settings` with the given options set by name (None values are left alone), all at once: the
    rules across fields and stages see the whole result, whatever order the options came in. Unknown
    names are an error; every value is checked, named as the caller names it."""
    unknown = sorted(set(values) - set(OPTIONS))
    name = namer(style)
    if unknown:
        shown = ", ".join(flag(u) if style == "flag" else u for u in unknown)
        raise InputError(f"{shown}: not a setting of the cascade; known: {', '.join(sorted(OPTIONS))}")
    top, stages = {}, {}
    for option, value in values.items():
        if value is not None:
            *parents, leaf = OPTIONS[option].split(".")
            (stages.setdefault(parents[0], {}) if parents else top)[leaf] = value
    for parent, fields in stages.items():
        with named_fields(lambda n, p=parent: name(f"{p}.{n}")):
            top[parent] = getattr(settings, parent).replace(**fields)
    with named_fields(name):
        return settings.replace(**top)


def base_settings(demo: bool):
    """The published settings, or the demo's small sizes and step counts."""
    settings = CascadeSettings()
    return apply(settings, DEMO) if demo else settings
