"""The nodes in a plain Python process (no ComfyUI): declarations, the node functions on the demo
weights, and error messages that name the node."""

from __future__ import annotations

import pytest
import torch
from conftest import node

EXPECTED_NODES = {
    "Show1ModelLoader", "Show1VAELoader", "Show1TextEncoderLoader", "Show1TextEncode", "Show1SaveEmbeds",
    "Show1LoadEmbeds", "Show1KeyframeSampler", "Show1PixelInterpolate", "Show1PixelUpscale", "Show1VAEEncode",
    "Show1LatentInterpolator", "Show1LatentUpscale", "Show1FrameDecode",
}


def test_every_node_is_declared_once(pack, nodes):
    assert set(nodes) == EXPECTED_NODES and pack.WEB_DIRECTORY == "./web"
    assert callable(pack.comfy_entrypoint) and not hasattr(pack, "NODE_CLASS_MAPPINGS"), "V3 only"
    for name, declaration in nodes.items():
        assert declaration.id == name and declaration.category.startswith("Show-1/")
        assert declaration.description and declaration.display_name
        inputs = declaration.inputs()
        assert len({i.name for i in inputs}) == len(inputs)
        for declared in inputs:
            assert declared.tooltip, f"{name}.{declared.name} has no tooltip"
            if declared.type in ("INT", "FLOAT"):
                assert declared.rule is not None and declared.rule.widget_min <= declared.default <= declared.rule.max


def test_widget_limits_and_defaults_come_from_the_settings(pack, nodes):
    """Nothing is declared twice: a node's numbers are its stage's settings and their rules."""
    settings_module = pack.show1_core.settings  # the pack's own copy of the library
    KeyframeSettings, LatentSRSettings, SR1Settings = (settings_module.KeyframeSettings,
                                                       settings_module.LatentSRSettings, settings_module.SR1Settings)

    for node_id, settings, names in (("Show1KeyframeSampler", KeyframeSettings, ("num_frames", "steps", "guidance")),
                                  ("Show1PixelUpscale", SR1Settings, ("scale", "steps", "noise_level")),
                                  ("Show1LatentUpscale", LatentSRSettings, ("strength", "steps", "guidance"))):
        for name in names:
            declared, field = nodes[node_id].input(name), settings.describe(name)
            assert (declared.default, declared.rule, declared.tooltip) == (
                field.default, field.metadata["rule"], field.metadata["help"]), (node_id, name)


def test_root_module_imports_outside_a_package():
    """pytest imports the root __init__.py as a lone module when the checkout's folder name is no Python
    identifier (e.g. `ci-check`); that must not fail."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("__init__", Path(__file__).parents[1] / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NODES == {} and module.WEB_DIRECTORY == "./web"


def test_model_combo_shows_the_stage_recognised_from_configs(nodes):
    choices = nodes["Show1ModelLoader"].input("model").options()
    assert choices == sorted(["IF-II-L-v1.0 (if_ii)", "show-1-base (base)", "show-1-interpolation (interpolation)",
                              "show-1-sr1 (sr1)", "show-1-sr2 (sr2)"])
    assert nodes["Show1VAELoader"].input("model").options() == ["show-1-sr2 (sr2)"]
    assert nodes["Show1ModelLoader"].validate_inputs(model="show-1-base") is True  # bare folder names, for API users
    message = nodes["Show1ModelLoader"].validate_inputs(model="show-1-missing")
    assert "'show-1-missing' is not a folder holding a Show-1 stage" in message and "download" in message


def test_published_cascade_through_the_nodes(nodes, loaded):
    cond = loaded["cond"]
    keyframes, fps = node(nodes, "Show1KeyframeSampler").run(
        model=loaded["base"], cond=cond, num_frames=3, width=24, height=16, steps=2, guidance=9.0, seed=1, fps=2.0)
    assert keyframes.shape == (3, 16, 24, 3) and fps == 2.0
    assert keyframes.dtype == torch.float32 and 0 <= keyframes.min() and keyframes.max() <= 1
    frames, fps = node(nodes, "Show1PixelInterpolate").run(
        model=loaded["interp"], cond=cond, keyframes=keyframes, width=24, height=16, resize="crop", steps=2,
        guidance=4.0, seed=1, fps=7.5, max_windows=8)
    assert frames.shape == (9, 16, 24, 3) and fps == 7.5
    big = node(nodes, "Show1PixelUpscale").run(model=loaded["sr1"], cond=cond, frames=frames, scale=4, steps=2,
                                               guidance=7.0, noise_level=250, seed=1, if_ii=loaded["if_ii"],
                                               if_ii_steps=2)[0]
    assert big.shape == (9, 64, 96, 3)
    latent = node(nodes, "Show1VAEEncode").run(vae=loaded["vae"], images=big, width=96, height=64,
                                               resize="published", posterior="sample", seed=1, tile=False)[0]
    assert latent["samples"].shape == (1, 4, 9, 8, 12)
    latent = node(nodes, "Show1LatentUpscale").run(model=loaded["sr2"], cond=cond, latent=latent, strength=0.8,
                                                   steps=3, guidance=15.0, seed=1)[0]
    video = node(nodes, "Show1FrameDecode").run(vae=loaded["vae"], latent=latent, frames_per_chunk=4, tile=False)[0]
    assert video.shape == (9, 64, 96, 3) and 0 <= video.min() and video.max() <= 1


def test_hybrid_route_keeps_the_keyframes(nodes, loaded):
    photos = torch.rand(3, 50, 70, 3, generator=torch.Generator().manual_seed(0))  # another size and aspect
    latent = node(nodes, "Show1VAEEncode").run(vae=loaded["vae"], images=photos, width=96, height=64, resize="pad",
                                               posterior="mean", seed=0, tile=False)[0]
    out, fps = node(nodes, "Show1LatentInterpolator").run(
        model=loaded["sr2"], cond=loaded["cond"], keyframes=latent, frames_between=2, strength=1.0, steps=3,
        guidance=9.0, seed=2, window=4, overlap=1, fps=8.0)
    assert out["samples"].shape == (1, 4, 7, 8, 12) and fps == 8.0
    assert torch.equal(out["samples"][:, :, [0, 3, 6]], latent["samples"])
    native = {"samples": latent["samples"][0].transpose(0, 1)}  # a 4-D batch from ComfyUI's own VAEEncode
    again = node(nodes, "Show1LatentInterpolator").run(
        model=loaded["sr2"], cond=loaded["cond"], keyframes=native, frames_between=2, strength=1.0, steps=3,
        guidance=9.0, seed=2, window=4, overlap=1, fps=8.0)[0]
    assert torch.equal(again["samples"], out["samples"])


def test_embeddings_round_trip_without_t5(nodes, loaded):
    node(nodes, "Show1SaveEmbeds").run(cond=loaded["cond"], name="lighthouse")
    assert "lighthouse.safetensors" in nodes["Show1LoadEmbeds"].input("name").options()
    cond = node(nodes, "Show1LoadEmbeds").run(name="lighthouse.safetensors")[0]
    assert torch.equal(cond.t5.positive, loaded["cond"].t5.positive)
    assert torch.equal(cond.clip.negative, loaded["cond"].clip.negative)
    assert cond.prompt == "a lighthouse in a storm" and cond.negative_prompt == "low resolution, blur"
    assert "not a plain file name" in nodes["Show1SaveEmbeds"].validate_inputs(name="../escape")


def test_errors_name_the_node_the_input_and_the_fix(pack, nodes, loaded):
    error = pack.nodes.declare.Show1NodeError
    with pytest.raises(error, match=r"^Show1KeyframeSampler: model: got pixel interpolation .*needs keyframes "
                                    r"\(show-1-base\); load that stage folder instead"):
        node(nodes, "Show1KeyframeSampler").run(model=loaded["interp"], cond=loaded["cond"], num_frames=2, width=24,
                                                height=16, steps=1, guidance=9.0, seed=0, fps=2.0)
    clip_only = node(nodes, "Show1TextEncode").run(
        text_encoder=pack.nodes.common.Show1TextEncoders(None, loaded["encoders"].clip), prompt="x",
        negative_prompt="", pixel_negative_prompt="", clean_caption=False)[0]
    with pytest.raises(error, match=r"^Show1PixelInterpolate: pixel interpolation needs T5 embeddings.*load the "
                                    r"show-1-base \(T5\) text encoder"):
        node(nodes, "Show1PixelInterpolate").run(model=loaded["interp"], cond=clip_only,
                                                 keyframes=torch.rand(2, 16, 24, 3), width=24, height=16,
                                                 resize="crop", steps=1, guidance=4.0, seed=0, fps=7.5, max_windows=8)
    with pytest.raises(error, match=r"^Show1FrameDecode: latent: 16-channel latents; .*Show1VAEEncode"):
        node(nodes, "Show1FrameDecode").run(vae=loaded["vae"], latent={"samples": torch.zeros(1, 16, 2, 8, 8)},
                                            frames_per_chunk=8, tile=False)
    message = nodes["Show1LatentInterpolator"].validate_inputs(window=4, overlap=4)
    assert message.startswith("Show1LatentInterpolator: overlap: 4 must be smaller than window (4)")
    assert "choose a T5" in nodes["Show1TextEncoderLoader"].validate_inputs(t5_model="none", clip_model="none")


@pytest.mark.parametrize("dtype, stored", [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16),
                                           ("auto", torch.float16)])
def test_the_text_encoder_loader_stores_the_weights_in_the_dtype_chosen(nodes, dtype, stored):
    encoders = nodes["Show1TextEncoderLoader"].run(t5_model="show-1-base (base)", clip_model="show-1-sr2 (sr2)",
                                                  device="cpu", dtype=dtype)[0]
    for encoder in (encoders.t5, encoders.clip):
        assert {p.dtype for p in encoder.model.parameters() if p.is_floating_point()} == {stored}, dtype
