"""Every stage checks its inputs at entry, with a message naming the argument, the value and the fix."""

from __future__ import annotations

import pytest
import torch

from show1_core.errors import InputError
from show1_core.loading import StageKind
from show1_core.stages import generate_keyframes, interpolate_keyframes, interpolate_latents, \
    latent_video_to_video, super_resolve_pixels, upscale_first_frame, vae_decode, vae_encode
from show1_core.text import PromptEmbeddings


@pytest.fixture(scope="module")
def t5(demo):
    return PromptEmbeddings(torch.zeros(1, 77, 32), torch.zeros(1, 77, 32), "t5")


@pytest.fixture(scope="module")
def clip(demo):
    return PromptEmbeddings(torch.zeros(1, 77, 32), torch.zeros(1, 77, 32), "clip")


def latents(frames=2, h=8, w=12):
    return torch.zeros(1, 4, frames, h, w)


def test_size_the_unet_cannot_take(demo, t5):
    with pytest.raises(InputError, match=r"height: 15 is not a multiple of 2, which keyframes \(show-1-base\) needs .* "
                                         r"use 14 or 16"):
        generate_keyframes(demo[StageKind.BASE], t5, 2, 15, 24, steps=1)


def test_fewer_than_two_keyframes(demo, t5, clip):
    with pytest.raises(InputError, match=r"keyframes: 1 frame\(s\), at least 2 needed"):
        interpolate_keyframes(demo[StageKind.INTERPOLATION], t5, torch.zeros(1, 3, 1, 8, 8), steps=1)
    with pytest.raises(InputError, match=r"keyframes: 1 keyframe\(s\) given; interpolation needs at least 2"):
        interpolate_latents(demo[StageKind.SR2], clip, latents(1), steps=1)


def test_anchor_indices_out_of_range_or_unsorted(demo, clip):
    sr2 = demo[StageKind.SR2]
    with pytest.raises(InputError, match=r"anchors: \[0, 9\] out of range for 5 frames; use indices in 0\.\.4"):
        interpolate_latents(sr2, clip, latents(2), anchors=[0, 9], num_frames=5, steps=1)
    with pytest.raises(InputError, match=r"anchors: \[3, 1\] must be strictly increasing"):
        interpolate_latents(sr2, clip, latents(2), anchors=[3, 1], num_frames=5, steps=1)
    with pytest.raises(InputError, match=r"anchors: 3 indices for 2 keyframes"):
        interpolate_latents(sr2, clip, latents(2), anchors=[0, 1, 2], num_frames=5, steps=1)


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5])
def test_strength_outside_zero_one(demo, clip, strength):
    with pytest.raises(InputError, match=rf"strength: {strength} must be in \(0, 1\]"):
        latent_video_to_video(demo[StageKind.SR2], clip, latents(), strength=strength, steps=4)
    with pytest.raises(InputError, match=rf"strength: {strength} must be in \(0, 1\]"):
        interpolate_latents(demo[StageKind.SR2], clip, latents(), strength=strength, steps=4)


def test_strength_that_leaves_no_step(demo, clip):
    with pytest.raises(InputError, match=r"strength: 0.1 x steps 5 leaves no denoising step"):
        latent_video_to_video(demo[StageKind.SR2], clip, latents(), strength=0.1, steps=5)


@pytest.mark.parametrize("level", [-1, 1000, 2.5])
def test_noise_level_outside_range(demo, t5, level):
    with pytest.raises(InputError, match=rf"noise_level: {level} must be an integer in \[0, 1000\)"):
        super_resolve_pixels(demo[StageKind.SR1], t5, torch.zeros(1, 3, 2, 8, 8), noise_level=level, steps=1)
    with pytest.raises(InputError, match=rf"noise_level: {level} must be an integer in \[0, 1000\)"):
        upscale_first_frame(demo[StageKind.IF_II], t5, torch.zeros(1, 3, 8, 8), noise_level=level, steps=1)


def test_embeddings_whose_width_does_not_match(demo):
    wide = PromptEmbeddings(torch.zeros(1, 77, 4096), torch.zeros(1, 77, 4096), "t5")
    with pytest.raises(InputError, match=r"embeds: T5 embeddings of width 4096, but keyframes \(show-1-base\) takes "
                                         r"width 32; encode the prompt with the T5 \(show-1-base\) text encoder"):
        generate_keyframes(demo[StageKind.BASE], wide, 2, 16, 16, steps=1)
    wide_clip = PromptEmbeddings(torch.zeros(1, 77, 1024), torch.zeros(1, 77, 1024), "clip")
    with pytest.raises(InputError, match=r"embeds: CLIP embeddings of width 1024.*CLIP \(show-1-sr2\)"):
        latent_video_to_video(demo[StageKind.SR2], wide_clip, latents(), steps=2)


def test_stage_folder_passed_to_the_wrong_stage(demo, t5):
    with pytest.raises(InputError, match=r"model: got pixel interpolation \(show-1-interpolation\) from .*, but this "
                                         r"stage needs keyframes \(show-1-base\); load that stage folder instead"):
        generate_keyframes(demo[StageKind.INTERPOLATION], t5, 2, 16, 16, steps=1)
    with pytest.raises(InputError, match=r"if_ii: got pixel super-resolution \(show-1-sr1\).*needs first-frame "
                                         r"super-resolution \(DeepFloyd IF-II\)"):
        super_resolve_pixels(demo[StageKind.SR1], t5, torch.zeros(1, 3, 2, 8, 8), if_ii=demo[StageKind.SR1], steps=1)


def test_video_and_latent_shapes(demo, t5):
    with pytest.raises(InputError, match=r"video: expected a video tensor \(B, 3, F, H, W\) in \[-1, 1\], got \(3, 8, 8\)"):
        super_resolve_pixels(demo[StageKind.SR1], t5, torch.zeros(3, 8, 8), steps=1)
    with pytest.raises(InputError, match=r"latents: expected \(B, 4, F, h, w\) Show-1 latents, got \(1, 16, 2, 8, 8\)"):
        vae_decode(demo["vae"], torch.zeros(1, 16, 2, 8, 8))
    with pytest.raises(InputError, match=r"video: frames of 20x24 are not a multiple of 8, the VAE's downsampling"):
        vae_encode(demo["vae"], torch.zeros(1, 3, 1, 20, 24))


def test_steps_and_seed(demo, t5):
    with pytest.raises(InputError, match=r"steps: 0 must be an integer in 1\.\.1000"):
        generate_keyframes(demo[StageKind.BASE], t5, 2, 16, 16, steps=0)
    with pytest.raises(InputError, match=r"seed: -3 is not an integer"):
        generate_keyframes(demo[StageKind.BASE], t5, 2, 16, 16, steps=1, seed=-3)
