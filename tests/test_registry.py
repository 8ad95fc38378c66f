"""The stage registry: every declaration is complete and is what the rest of the pack reads (folders,
settings, options, cascade steps, memory estimates, demo weights); stage functions stay small and
blocks are built by name."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil

import pytest
import torch

import show1_core.stages
from show1_core import options
from show1_core.folders import inspect_stage
from show1_core.loading import build_unet
from show1_core.models import blocks
from show1_core.options import CascadeSettings
from show1_core.registry import CASCADE, STAGES, StageKind, spec
from show1_core.settings import Settings


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.key)
def test_every_declaration_is_complete(stage, demo_root):
    assert stage.kind.spec is stage and spec(stage.key) is stage
    assert stage.label and "/" in stage.repo and stage.folder == stage.repo.split("/")[1]
    assert {"unet", "scheduler"} <= set(stage.components)
    assert issubclass(stage.settings, Settings) and dataclasses.is_dataclass(stage.settings)
    assert CascadeSettings.describe(stage.key).default_factory is stage.settings
    for option, field in stage.options.items():
        assert options.OPTIONS[option] == f"{stage.key}.{field}"
        stage.settings.describe(field)
    assert stage.text in ("t5", "clip")
    # its code: the step of the cascade (or the step it runs in), its memory estimate, its demo writer
    assert stage.step in CASCADE
    if stage.in_cascade:
        assert callable(stage.cascade_step) and stage.output and stage.fps and stage.shape is not None
        assert list(inspect.signature(stage.cascade_step).parameters) == ["models", "state", "settings", "ctx"]
    assert list(inspect.signature(stage.estimate).parameters) == ["unet", "settings", "shape", "device"]
    assert callable(stage.demo_writer)
    # its folder is recognised from its UNet config, and its estimate runs on that UNet
    info = inspect_stage(demo_root / stage.folder)
    assert info.kind is stage.kind
    unet = build_unet(json.loads((demo_root / stage.folder / "unet" / "config.json").read_text()))
    settings = CascadeSettings().stage(stage.key)
    assert stage.estimate(unet, settings, (3, 16, 24), torch.device("cpu")) > 0
    if stage.sizes(CascadeSettings()):
        assert stage.sized_by


def test_every_stage_kind_and_cascade_step_is_declared_once():
    assert {s.kind for s in STAGES} == set(StageKind)
    assert len({s.key for s in STAGES}) == len(STAGES)
    assert CASCADE == ("keyframes", "interpolation", "sr1", "sr2")
    assert CascadeSettings().steps() == ("text", *CASCADE)
    assert CascadeSettings(last_stage="interpolation").runs("interpolation")
    assert not CascadeSettings(last_stage="interpolation").runs("if_ii")


def test_frame_rates_and_shapes_come_from_the_declarations():
    settings = CascadeSettings()
    assert settings.output_shape() == (29, 320, 576) and settings.output_fps == spec("sr2").fps
    keyframes = settings.replace(last_stage="keyframes")
    assert keyframes.output_shape() == (8, 40, 64) and keyframes.output_fps == spec("keyframes").fps


def stage_functions():
    for module_info in pkgutil.iter_modules(show1_core.stages.__path__):
        module = importlib.import_module(f"show1_core.stages.{module_info.name}")
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                yield f"{module_info.name}.{name}", value


def test_no_public_stage_function_takes_more_than_seven_parameters():
    counts = {name: len(inspect.signature(f).parameters) for name, f in stage_functions()}
    assert counts and max(counts.values()) <= 7, {n: c for n, c in counts.items() if c > 7}


@pytest.mark.parametrize("cls", [blocks.ResnetBlock, blocks.UNetBlock, blocks.MidBlock, blocks.BlockSettings])
def test_blocks_are_built_by_name(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert len(positional) <= 2, positional


def test_settings_are_made_by_name_and_checked_when_made():
    from show1_core.errors import InputError
    from show1_core.settings import KeyframeSettings, VAEDecodeSettings, naming

    with pytest.raises(TypeError):
        KeyframeSettings(8, 40, 64)  # positional: a reordered field could swap values
    with pytest.raises(InputError, match=r"^steps: 0 is outside"):
        KeyframeSettings(steps=0)
    with naming(lambda f: f"--keyframe-{f}"), pytest.raises(InputError, match=r"^--keyframe-steps: 'x' is not an"):
        KeyframeSettings(steps="x")
    with pytest.raises(InputError, match=r"^tile: 'no' is not a boolean; give true or false"):
        VAEDecodeSettings(tile="no")
    with pytest.raises(InputError, match=r"^tile: 1 is not a boolean"):
        VAEDecodeSettings(tile=1)
    with pytest.raises(InputError, match=r"^keyframes: int given, not stage settings"):
        CascadeSettings(keyframes=3)


def test_options_are_applied_together_whatever_their_order():
    from show1_core.errors import InputError

    for values in ({"frames": 1, "last_stage": "keyframes"}, {"last_stage": "keyframes", "frames": 1}):
        assert options.apply(CascadeSettings(), values).keyframes.num_frames == 1
    with pytest.raises(InputError, match=r"^--frames: 1 keyframe\(s\); pixel interpolation needs at least 2"):
        options.apply(CascadeSettings(), {"frames": 1}, "flag")
    with pytest.raises(InputError, match=r"^field 'strength': 0.1 x field 'sr2_steps' 5 leaves no denoising step"):
        options.apply(CascadeSettings(), {"sr2_steps": 5, "strength": 0.1})
