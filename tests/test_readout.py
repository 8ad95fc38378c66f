"""The web readout is computed by the pack from the graph, with the nodes' own rules and checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_workflows import BUILTIN, pack_object_info
from workflows import load, to_api, workflow_files


@pytest.fixture(scope="module")
def info(pack):
    return {**json.loads(BUILTIN.read_text()), **pack_object_info(pack)}


def prompt_of(name, info):
    return to_api(load(next(p for p in workflow_files() if p.stem == name)), info)


def by_type(readouts, prompt, kind):
    return next(readouts[k] for k, n in prompt.items() if n["class_type"] == kind)


def test_the_published_cascade_reads_as_published(pack, info):
    prompt = prompt_of("show1_published_cascade", info)
    r = pack.nodes.readout.readouts(prompt, pack.NODES)
    assert by_type(r, prompt, "Show1KeyframeSampler")["text"] == "8 frames · 4.00 s at 2 fps · 64x40"
    assert by_type(r, prompt, "Show1PixelInterpolate")["text"] == "29 frames · 3.87 s at 7.5 fps · 64x40"
    assert by_type(r, prompt, "Show1PixelUpscale")["text"] == "29 frames · 256x160"
    assert by_type(r, prompt, "Show1FrameDecode")["text"] == "29 frames · 576x320"
    assert all(not v["warnings"] for v in r.values())


def test_frame_counts_follow_the_rules_of_the_core(pack, info):
    from show1_core import rules
    from show1_core.stages import interpolated_length

    prompt = prompt_of("show1_hybrid_latent_interpolation", info)
    interp = next(k for k, n in prompt.items() if n["class_type"] == "Show1LatentInterpolator")
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1KeyframeSampler")
    for keyframes, gap in ((2, 0), (3, 5), (8, 7)):
        prompt[sampler]["inputs"]["num_frames"], prompt[interp]["inputs"]["frames_between"] = keyframes, gap
        r = pack.nodes.readout.readouts(prompt, pack.NODES)
        assert r[interp]["frames"] == rules.interpolated_frames(keyframes, gap) == (keyframes - 1) * (gap + 1) + 1
    assert rules.interpolated_frames(8, rules.PIXEL_NEW_PER_GAP) == interpolated_length(8) == 29


def test_warnings_are_the_nodes_own_validation(pack, info):
    prompt = prompt_of("show1_hybrid_latent_interpolation", info)
    interp = next(k for k, n in prompt.items() if n["class_type"] == "Show1LatentInterpolator")
    inputs = prompt[interp]["inputs"]
    inputs["overlap"] = inputs["window"]
    r = pack.nodes.readout.readouts(prompt, pack.NODES)
    message = pack.NODES["Show1LatentInterpolator"].validate_inputs(
        **{k: None if isinstance(v, list) else v for k, v in inputs.items()})
    assert r[interp]["warnings"] == [message.split(": ", 1)[1]]
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1KeyframeSampler")
    # the size rule is the connected model's, read from its config: the demo base UNet halves once
    prompt[sampler]["inputs"]["width"] = 60
    assert pack.nodes.readout.readouts(prompt, pack.NODES)[sampler]["warnings"] == []
    prompt[sampler]["inputs"]["width"] = 61
    r = pack.nodes.readout.readouts(prompt, pack.NODES)
    assert any("width: 61 is not a multiple of 2, which keyframes (show-1-base) needs" in w
               for w in r[sampler]["warnings"])
    assert any("61x40 is odd" in w for w in r[sampler]["warnings"])


def test_the_web_extension_holds_no_rule_of_its_own():
    """The numbers live in show1_core.rules; the extension asks the pack's routes."""
    js = (Path(__file__).parents[1] / "web" / "show1.js").read_text()
    assert "/show1/readout" in js and "/show1/readout_nodes" in js
    for name in ("Show1KeyframeSampler", "Show1FrameDecode"):  # the node list comes from the declarations
        assert name not in js, name
    for formula in ("4 * k - 3", "4K-3", "% 8", "frames_between\") + 1"):
        assert formula not in js, formula


def test_the_storyboard_readout_shows_which_frames_belong_to_which_shot(pack, info):
    prompt = prompt_of("show1_storyboard", info)
    r = pack.nodes.readout.readouts(prompt, pack.NODES)
    assert by_type(r, prompt, "Show1KeyframeSampler")["text"] == "4 frames · 2.00 s at 2 fps · 64x40 · 4 shots: 0 | 1 | 2 | 3"
    assert by_type(r, prompt, "Show1PixelInterpolate")["text"] == ("13 frames · 1.73 s at 7.5 fps · 64x40 · 4 shots: "
                                                                   "0-2 | 3-6 | 7-10 | 11-12")
    assert all(not v["warnings"] for v in r.values())
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1KeyframeSampler")
    prompt[sampler]["inputs"]["num_frames"] = 8
    warnings = pack.nodes.readout.readouts(prompt, pack.NODES)[sampler]["warnings"]
    assert "cond: 4 prompts for 8 keyframes; give one prompt per keyframe (one line each)" in warnings
