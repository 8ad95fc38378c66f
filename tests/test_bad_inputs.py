"""The catalogue of bad inputs, across the CLI, show1_core and the nodes.

Every case asserts the error's type, that its message names the input (argument, flag or node
input), the value and the fix, that no UNet ran (the check comes before any work), and that no
output file appeared. The interrupt cases stop a running stage and check that nothing is
half-written and that the next run succeeds; the memory case repeats the failures and checks that
the process gives its memory back.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from conftest import ROOT, node

from show1_core import cli
from show1_core.errors import InputError, ModelLoadError, Show1Error
from show1_core.loading import load_stage, load_vae
from show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    LatentInterpolationSettings,
    LatentSRSettings,
    SR1Settings,
    SR2Settings,
)
from show1_core.stage import StageKind
from show1_core.stages import (
    Anchors,
    IFIIUpscale,
    generate_keyframes,
    interpolate_keyframes,
    interpolate_latents,
    latent_super_resolve,
    latent_video_to_video,
    super_resolve_pixels,
    upscale_first_frame,
    vae_decode,
    vae_encode,
)
from show1_core.text import PromptEmbeddings, encode_prompt, load_conditioning


@dataclass
class Case:
    id: str
    call: Callable  # call(ctx) -> raises (core, node) or returns (exit status, stderr) (cli)
    names: tuple[str, ...]  # substrings the message must hold: the input, the value, the fix
    error: type = InputError


def t5(width=32, value=0.0):
    return PromptEmbeddings(torch.full((1, 77, width), value), torch.zeros(1, 77, width), "t5")


def clip(value=0.0):
    return PromptEmbeddings(torch.full((1, 77, 32), value), torch.zeros(1, 77, 32), "clip")


def video(frames=2, h=8, w=12, value=None):
    v = torch.rand(1, 3, frames, h, w) * 2 - 1
    if value is not None:
        v[0, 0, 0, 0, 0] = value
    return v


def latents(frames=2, h=8, w=12, value=None):
    x = torch.zeros(1, 4, frames, h, w)
    if value is not None:
        x[0, 0, 0, 0, 0] = value
    return x


NAN, INF = float("nan"), float("inf")

# --- show1_core -----------------------------------------------------------------------------------

def kf_settings(**changes):
    return KeyframeSettings(**{"num_frames": 2, "height": 16, "width": 16, "steps": 2, **changes})


def base(c, **changes):
    return generate_keyframes(c[StageKind.BASE], changes.pop("embeds", t5()), kf_settings(**changes))


CORE = [
    Case("guidance inf", lambda c: base(c, guidance=INF), ("guidance", "inf", "not finite", "[0, 100]")),
    Case("guidance nan", lambda c: base(c, guidance=NAN), ("guidance", "nan", "not finite")),
    Case("guidance negative", lambda c: base(c, guidance=-1.0), ("guidance", "-1.0", "outside [0, 100]")),
    Case("NaN embeddings", lambda c: base(c, embeds=t5(value=NAN)), ("embeds", "NaN or infinite",
                                                                     "encode the prompt again")),
    Case("NaN keyframes", lambda c: interpolate_keyframes(c[StageKind.INTERPOLATION], t5(), video(value=NAN),
                                                          InterpolationSettings(steps=2)),
         ("keyframes", "NaN or infinite", "check the node or file")),
    Case("inf latents", lambda c: latent_video_to_video(c[StageKind.SR2], clip(), latents(value=INF),
                                                        LatentSRSettings(steps=4)),
         ("latents", "NaN or infinite", "encode the frames again")),
    Case("NaN latents to decode", lambda c: vae_decode(c["vae"], latents(value=NAN)),
         ("latents", "NaN or infinite", "encode the frames again")),
    Case("NaN frames to encode", lambda c: vae_encode(c["vae"], video(1, 16, 16, value=NAN)),
         ("video", "NaN or infinite")),
    Case("seed negative", lambda c: base(c, steps=1, seed=-3), ("seed", "-3", "outside [0, 18446744073709551615]")),
    Case("seed float", lambda c: base(c, steps=1, seed=1.5), ("seed", "1.5", "not an integer")),
    Case("seed too large", lambda c: latent_video_to_video(c[StageKind.SR2], clip(), latents(),
                                                           LatentSRSettings(steps=4, seed=2 ** 64)),
         ("seed", str(2 ** 64), "outside")),
    Case("steps 0", lambda c: base(c, steps=0), ("steps", "0", "outside [1, 1000]")),
    Case("steps float", lambda c: base(c, steps=1.5), ("steps", "1.5", "not an integer")),
    Case("num_frames 0", lambda c: base(c, num_frames=0, steps=1), ("num_frames", "0", "outside [1, 64]")),
    Case("height off the multiple", lambda c: base(c, height=15, steps=1),
         ("height", "15", "multiple of 2", "use 14 or 16")),
    Case("noise level 1000", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), video(),
                                                            SR1Settings(noise_level=1000, steps=1)),
         ("noise_level", "1000", "outside [0, 999]")),
    Case("IF-II noise level", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), video(), SR1Settings(steps=1),
                                                             None, IFIIUpscale(c[StageKind.IF_II],
                                                                               IFIISettings(noise_level=-5))),
         ("noise_level", "-5", "outside")),
    Case("strength 0", lambda c: latent_video_to_video(c[StageKind.SR2], clip(), latents(),
                                                       LatentSRSettings(strength=0.0, steps=4)),
         ("strength", "0.0", "outside (0, 1]")),
    Case("strength x steps", lambda c: latent_video_to_video(c[StageKind.SR2], clip(), latents(),
                                                             LatentSRSettings(strength=0.1, steps=5)),
         ("strength", "0.1", "steps 5", "leaves no denoising step", "raise steps to 10")),
    Case("overlap >= window", lambda c: interpolate_latents(c[StageKind.SR2], clip(), latents(),
                                                            LatentInterpolationSettings(steps=2, window=4, overlap=4)),
         ("overlap", "4", "smaller than window", "at most 3")),
    Case("frames_between -1", lambda c: interpolate_latents(c[StageKind.SR2], clip(), latents(),
                                                            LatentInterpolationSettings(steps=2, frames_between=-1)),
         ("frames_between", "-1", "outside [0, 120]")),
    Case("max_windows 0", lambda c: interpolate_keyframes(c[StageKind.INTERPOLATION], t5(), video(),
                                                          InterpolationSettings(steps=1, max_windows=0)),
         ("max_windows", "0", "outside [1, 256]")),
    Case("sr1 stride >= window", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), video(),
                                                                SR1Settings(steps=1, window=4, stride=4)),
         ("stride", "4", "smaller than window (4)", "at most 3")),
    Case("wrong stage", lambda c: generate_keyframes(c[StageKind.INTERPOLATION], t5(), kf_settings(steps=1)),
         ("model", "pixel interpolation", "needs keyframes (show-1-base)", "load that stage folder")),
    Case("embeddings width", lambda c: base(c, embeds=t5(4096), steps=1),
         ("embeds", "width 4096", "takes width 32", "encode the prompt with the T5")),
    Case("anchors out of range", lambda c: interpolate_latents(c[StageKind.SR2], clip(), latents(),
                                                               LatentInterpolationSettings(steps=1),
                                                               anchors=Anchors((0, 9), 5)),
         ("anchors", "[0, 9]", "use indices in 0..4")),
    Case("absurd frame count", lambda c: interpolate_latents(c[StageKind.SR2], clip(), latents(64),
                                                             LatentInterpolationSettings(steps=1, frames_between=120)),
         ("anchors (frames)", "7624", "outside [1, 4096]", "split longer videos")),
    Case("one latent keyframe", lambda c: interpolate_latents(c[StageKind.SR2], clip(), latents(1),
                                                              LatentInterpolationSettings(steps=1)),
         ("keyframes", "1 keyframe", "at least 2")),
    Case("one pixel keyframe", lambda c: interpolate_keyframes(c[StageKind.INTERPOLATION], t5(), video(1),
                                                               InterpolationSettings(steps=1)),
         ("keyframes", "1 frame", "at least 2")),
    Case("IF-II empty image", lambda c: upscale_first_frame(c[StageKind.IF_II], t5(), torch.zeros(1, 3, 0, 8),
                                                            IFIISettings(steps=1)),
         ("image", "(1, 3, 0, 8)", "(B, 3, H, W)")),
    Case("sr1 scale 0", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), video(), SR1Settings(scale=0, steps=1)),
         ("scale", "0", "outside [1, 8]")),
    Case("sr2 hand-off height 0", lambda c: latent_super_resolve(c[StageKind.SR2], c["vae"], clip(), video(),
                                                                 SR2Settings(steps=4, height=0)),
         ("height", "0", "outside [1, 2048]")),
    Case("sr1 output too large", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), video(2, 600, 600),
                                                                SR1Settings(scale=8, steps=1)),
         ("height x scale", "4800", "outside [1, 4096]")),
    Case("video shape", lambda c: super_resolve_pixels(c[StageKind.SR1], t5(), torch.zeros(3, 8, 8),
                                                       SR1Settings(steps=1)),
         ("video", "(B, 3, F, H, W)", "(3, 8, 8)")),
    Case("video with 5000 frames", lambda c: vae_encode(c["vae"], torch.zeros(1, 3, 5000, 8, 8)),
         ("video (frames)", "5000", "outside [1, 4096]")),
    Case("a model where the VAE belongs", lambda c: vae_encode(c[StageKind.SR2], video(1, 16, 16)),
         ("vae", "Stage", "the AutoencoderKL of show-1-sr2", "Show1VAELoader")),
    Case("VAE from the wrong folder", lambda c: load_vae(c["root"] / StageKind.SR1.folder),
         ("show-1-sr1", "no vae", "select the show-1-sr2 folder"), ModelLoadError),
    Case("stage folder missing", lambda c: load_stage(c["root"] / "nowhere"),
         ("nowhere", "is not a folder", "downloaded Show-1 stage folder"), ModelLoadError),
    Case("stage folder with a broken config", lambda c: load_stage(c["broken"]),
         ("unet/config.json is broken", "not valid JSON", "re-download"), ModelLoadError),
    Case("truncated embeddings", lambda c: load_conditioning(c["truncated"]),
         ("truncated", "save the embeddings again with Show1SaveEmbeds"), ModelLoadError),
    Case("not an embeddings file", lambda c: load_conditioning(c["not_embeds"]),
         ("not a Show-1 embeddings file", "Show1SaveEmbeds"), ModelLoadError),
    Case("prompt not text", lambda c: encode_prompt(c["t5"], 42), ("prompt", "int", "a prompt is text")),
]

# --- nodes ------------------------------------------------------------------------------------------


def run_node(c, node_type, **inputs):
    return node(c["nodes"], node_type).run(**inputs)


def sampler(c, **changes):
    inputs = dict(model=c["loaded"]["base"], cond=c["loaded"]["cond"], num_frames=2, width=24, height=16, steps=1,
                  guidance=9.0, seed=0, fps=2.0)
    return run_node(c, "Show1KeyframeSampler", **{**inputs, **changes})


def interp(c, keyframes, **changes):
    inputs = dict(model=c["loaded"]["interp"], cond=c["loaded"]["cond"], keyframes=keyframes, width=24, height=16,
                  resize="crop", steps=1, guidance=4.0, seed=0, fps=7.5, max_windows=8)
    return run_node(c, "Show1PixelInterpolate", **{**inputs, **changes})


def encode(c, **changes):
    inputs = dict(vae=c["loaded"]["vae"], images=torch.rand(2, 64, 96, 3), width=96, height=64, resize="crop",
                  posterior="mean", seed=0, tile=False)
    return run_node(c, "Show1VAEEncode", **{**inputs, **changes})


def latent_interp(c, **changes):
    inputs = dict(model=c["loaded"]["sr2"], cond=c["loaded"]["cond"], keyframes={"samples": latents()},
                  frames_between=2, strength=1.0, steps=2, guidance=9.0, seed=0, window=4, overlap=1, fps=8.0)
    return run_node(c, "Show1LatentInterpolator", **{**inputs, **changes})


def too_little_room(c):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(c["pack"].nodes.comfy, "free_memory", lambda device: 1024)
        return sampler(c)


def frames255(n=2):
    return torch.rand(n, 16, 24, 3) * 255


NODES = [
    Case("offload bogus", lambda c: run_node(c, "Show1ModelLoader", model="show-1-base (base)", dtype="auto",
                                             offload="bogus"),
         ("Show1ModelLoader: offload", "'bogus'", "keep, stage, window")),
    Case("dtype fp8", lambda c: run_node(c, "Show1ModelLoader", model="show-1-base (base)", dtype="fp8",
                                         offload="stage"),
         ("Show1ModelLoader: dtype", "'fp8'", "auto, fp32, fp16, bf16")),
    Case("unknown stage folder", lambda c: run_node(c, "Show1ModelLoader", model="show-1-missing", dtype="auto",
                                                    offload="stage"),
         ("Show1ModelLoader: model", "'show-1-missing'", "download it")),
    Case("VAE loader on sr1", lambda c: run_node(c, "Show1VAELoader", model="show-1-sr1 (sr1)", dtype="fp32"),
         ("Show1VAELoader: model", "show-1-sr1", "latent super-resolution (show-1-sr2)")),
    Case("no text encoder", lambda c: run_node(c, "Show1TextEncoderLoader", t5_model="none", clip_model="none",
                                               device="cpu", dtype="auto", offload_after_encoding=True),
         ("Show1TextEncoderLoader: t5_model / clip_model", "'none'", "choose a T5")),
    Case("text encoder device", lambda c: run_node(c, "Show1TextEncoderLoader", t5_model="show-1-base (base)",
                                                   clip_model="none", device="tpu", dtype="auto",
                                                   offload_after_encoding=True),
         ("Show1TextEncoderLoader: device", "'tpu'", "gpu, cpu")),
    Case("sampler steps 0", lambda c: sampler(c, steps=0), ("Show1KeyframeSampler: steps", "0", "outside [1, 1000]")),
    Case("sampler guidance inf", lambda c: sampler(c, guidance=INF),
         ("Show1KeyframeSampler: guidance", "inf", "not finite")),
    Case("sampler seed negative", lambda c: sampler(c, seed=-1), ("Show1KeyframeSampler: seed", "-1", "outside")),
    Case("sampler frames 65", lambda c: sampler(c, num_frames=65),
         ("Show1KeyframeSampler: num_frames", "65", "outside [1, 64]")),
    Case("sampler fps 0", lambda c: sampler(c, fps=0.0), ("Show1KeyframeSampler: fps", "0.0", "outside [0.1, 120]")),
    Case("sampler width off the model's multiple", lambda c: sampler(c, width=25),
         ("Show1KeyframeSampler: width", "25", "multiple of 2", "use 24 or 26")),
    Case("IMAGE in 0..255", lambda c: interp(c, frames255()),
         ("Show1PixelInterpolate: keyframes", "[0, 1]", "divide by 255")),
    Case("IMAGE in -1..1", lambda c: interp(c, torch.rand(2, 16, 24, 3) * 2 - 1),
         ("Show1PixelInterpolate: keyframes", "[0, 1]", "x * 0.5 + 0.5")),
    Case("IMAGE with NaN", lambda c: interp(c, torch.full((2, 16, 24, 3), NAN)),
         ("Show1PixelInterpolate: keyframes", "NaN or infinite")),
    Case("IMAGE 3-D", lambda c: interp(c, torch.rand(16, 24, 3)),
         ("Show1PixelInterpolate: keyframes", "[frames, height, width, 3]", "(16, 24, 3)")),
    Case("one keyframe", lambda c: interp(c, torch.rand(1, 16, 24, 3)),
         ("Show1PixelInterpolate: keyframes", "1 keyframe", "ImageBatch")),
    Case("resize mode", lambda c: interp(c, torch.rand(2, 16, 24, 3), resize="zoom"),
         ("Show1PixelInterpolate: resize", "'zoom'", "crop, pad, stretch")),
    Case("upscale scale 0", lambda c: run_node(c, "Show1PixelUpscale", model=c["loaded"]["sr1"],
                                               cond=c["loaded"]["cond"], frames=torch.rand(2, 8, 12, 3), scale=0,
                                               steps=1, guidance=7.0, noise_level=250, seed=0),
         ("Show1PixelUpscale: scale", "0", "outside [1, 8]")),
    Case("VAE encode posterior", lambda c: encode(c, posterior="median"),
         ("Show1VAEEncode: posterior", "'median'", "mean, sample")),
    Case("VAE encode width 0", lambda c: encode(c, width=0),
         ("Show1VAEEncode: width", "0", "outside [1, 2048]")),
    Case("a model wired where the VAE belongs", lambda c: encode(c, vae=c["loaded"]["sr2"]),
         ("Show1VAEEncode: vae", "got Show1Model", "connect the show-1-sr2 VAE from Show1VAELoader")),
    Case("a VAE wired where the model belongs", lambda c: sampler(c, model=c["loaded"]["vae"]),
         ("Show1KeyframeSampler: model", "got Show1VAE", "Show1ModelLoader")),
    Case("text wired where the embeddings belong", lambda c: sampler(c, cond="a cat"),
         ("Show1KeyframeSampler: cond", "got str", "Show1TextEncode")),
    Case("a stage beyond the device's memory", lambda c: too_little_room(c),
         ("Show1KeyframeSampler", "needs about", "for its activations", "can be freed", "fewer frames")),
    Case("weight dtype bogus", lambda c: run_node(c, "Show1ModelLoader", model="show-1-base (base)", dtype="auto",
                                                  offload="stage", weight_dtype="fp4"),
         ("Show1ModelLoader: weight_dtype", "'fp4'", "fp8_e4m3fn")),
    Case("no text encoder connected", lambda c: run_node(c, "Show1TextEncode", prompt="x", negative_prompt="",
                                                         pixel_negative_prompt="", clean_caption=False),
         ("Show1TextEncode: text_encoder / t5", "neither is connected", "CLIPLoader")),
    Case("a CLIP without T5", lambda c: run_node(c, "Show1TextEncode", t5=object(), prompt="x", negative_prompt="",
                                                 pixel_negative_prompt="", clean_caption=False),
         ("Show1TextEncode: t5", "holds no T5-XXL", "type pixart")),
    Case("IF-II input of another stage", lambda c: run_node(c, "Show1PixelUpscale", model=c["loaded"]["sr1"],
                                                            cond=c["loaded"]["cond"], frames=torch.rand(2, 8, 12, 3),
                                                            scale=4, steps=1, guidance=7.0, noise_level=250, seed=0,
                                                            if_ii=c["loaded"]["base"]),
         ("Show1PixelUpscale: if_ii", "keyframes (show-1-base)", "IF-II-L-v1.0")),
    Case("latent interpolator overlap", lambda c: latent_interp(c, overlap=4),
         ("Show1LatentInterpolator: overlap", "4", "smaller than window (4)")),
    Case("latent interpolator strength x steps", lambda c: latent_interp(c, strength=0.3, steps=3),
         ("Show1LatentInterpolator: strength", "0.3", "leaves no denoising step", "raise steps to 4")),
    Case("latent upscale strength 0", lambda c: run_node(c, "Show1LatentUpscale", model=c["loaded"]["sr2"],
                                                         cond=c["loaded"]["cond"], latent={"samples": latents()},
                                                         strength=0.0, steps=4, guidance=15.0, seed=0),
         ("Show1LatentUpscale: strength", "0.0", "outside (0, 1]")),
    Case("16-channel latent", lambda c: run_node(c, "Show1FrameDecode", vae=c["loaded"]["vae"],
                                                 latent={"samples": torch.zeros(1, 16, 2, 8, 8)},
                                                 frames_per_chunk=8, tile=False),
         ("Show1FrameDecode: latent", "16-channel", "Show1VAEEncode")),
    Case("frames_per_chunk 0", lambda c: run_node(c, "Show1FrameDecode", vae=c["loaded"]["vae"],
                                                  latent={"samples": latents()}, frames_per_chunk=0, tile=False),
         ("Show1FrameDecode: frames_per_chunk", "0", "outside [1, 256]")),
    Case("save embeds ../..", lambda c: run_node(c, "Show1SaveEmbeds", cond=c["loaded"]["cond"], name="../../x"),
         ("Show1SaveEmbeds: name", "../../x", "not a plain file name", "no folders")),
    Case("save embeds absolute", lambda c: run_node(c, "Show1SaveEmbeds", cond=c["loaded"]["cond"], name="/tmp/x"),
         ("Show1SaveEmbeds: name", "/tmp/x", "not a plain file name")),
    Case("load embeds ../..", lambda c: run_node(c, "Show1LoadEmbeds", name="../../etc/passwd.safetensors"),
         ("Show1LoadEmbeds: name", "../../etc/passwd", "not a plain file name")),
    Case("load embeds through a symlink out", lambda c: run_node(c, "Show1LoadEmbeds", name=c["escape"]),
         ("Show1LoadEmbeds: name", "escape.safetensors", "leads outside")),
    Case("load embeds none saved", lambda c: run_node(c, "Show1LoadEmbeds", name="(none saved yet)"),
         ("Show1LoadEmbeds: name", "no embeddings are saved", "Show1SaveEmbeds")),
    Case("cond without T5", lambda c: sampler(c, cond=c["clip_only"]),
         ("Show1KeyframeSampler", "needs T5 embeddings", "show-1-base (T5) text encoder")),
]

# --- the CLI ---------------------------------------------------------------------------------------


def flags(*extra):
    def call(c):
        out = c["tmp"] / "out" / "video.mp4"
        argv = ["generate", "--prompt", "a cat", "--out", str(out), *[str(e).format(**c) for e in extra]]
        try:
            status = cli.main(argv)
        except SystemExit as e:  # argparse
            status = e.code
        return status, out
    return call


CLI = [
    Case("--seed -1", flags("--seed", -1), ("--seed", "-1", "outside [0, 18446744073709551615]")),
    Case("--seed 2^64", flags("--seed", 2 ** 64), ("--seed", str(2 ** 64), "outside")),
    Case("--frames 0", flags("--frames", 0), ("--frames", "0", "outside [1, 64]")),
    Case("--frames 1000", flags("--frames", 1000), ("--frames", "1000", "outside [1, 64]")),
    Case("--height off the multiple", flags("--height", 15), ("--height", "15", "multiple of 2", "use 14 or 16")),
    Case("--width 0", flags("--width", 0), ("--width", "0", "outside [1, 1024]")),
    Case("--height 4000", flags("--height", 4000), ("--height", "4000", "outside [1, 1024]")),
    Case("--sr1-scale 0", flags("--sr1-scale", 0), ("--sr1-scale", "0", "outside [1, 8]")),
    Case("--sr1-scale 9", flags("--sr1-scale", 9), ("--sr1-scale", "9", "outside [1, 8]")),
    Case("--keyframe-steps 0", flags("--keyframe-steps", 0), ("--keyframe-steps", "0", "outside [1, 1000]")),
    Case("--interp-steps 5000", flags("--interp-steps", 5000), ("--interp-steps", "5000", "outside [1, 1000]")),
    Case("--sr2-steps 0", flags("--sr2-steps", 0), ("--sr2-steps", "0", "outside [1, 1000]")),
    Case("--strength 0", flags("--strength", 0), ("--strength", "0.0", "outside (0, 1]")),
    Case("--strength 1.5", flags("--strength", 1.5), ("--strength", "1.5", "outside (0, 1]")),
    Case("--strength x --sr2-steps", flags("--strength", 0.1, "--sr2-steps", 5),
         ("--strength", "0.1", "--sr2-steps 5", "raise --sr2-steps to 10")),
    Case("--keyframe-guidance inf", flags("--keyframe-guidance", "inf"), ("--keyframe-guidance", "inf", "not finite")),
    Case("--sr2-guidance nan", flags("--sr2-guidance", "nan"), ("--sr2-guidance", "nan", "not finite")),
    Case("--interp-guidance -1", flags("--interp-guidance", -1), ("--interp-guidance", "-1", "outside [0, 100]")),
    Case("--sr2-height 0", flags("--sr2-height", 0), ("--sr2-height", "0", "outside [1, 2048]")),
    Case("--sr2-width off the VAE", flags("--sr2-width", 100), ("--sr2-width", "100", "multiple of 8", "96 or 104")),
    Case("sr1 size off the model", flags("--width", 23, "--height", 16, "--sr1-scale", 1),
         ("--width", "23", "multiple of 2")),
    Case("--device cuda", flags("--device", "cuda"), ("--device", "'cuda'", "no CUDA GPU", "--device cpu")),
    Case("--device foo", flags("--device", "foo"), ("--device", "'foo'", "use auto, cpu, cuda")),
    Case("--device cpu:7", flags("--device", "cpu:7"), ("--device", "'cpu:7'", "one CPU device", "use cpu")),
    Case("--weight-dtype fp4", flags("--weight-dtype", "fp4"), ("--weight-dtype", "'fp4'", "fp8_e4m3fn")),
    Case("--frames 1 with interpolation after it", flags("--frames", 1),
         ("--frames", "1 keyframe", "pixel interpolation needs at least 2", "--last-stage keyframes")),
    Case("--models with a broken stage folder", flags("--models", "{tmp}/broken_models"),
         ("--models", "show-1-base", "is broken", "not valid JSON")),
    Case("--models with more than the device holds", lambda c: too_big(c),
         ("needs about", "GiB", "free", "it fits with --weight-dtype"), ),
    Case("--t5-device foo", flags("--t5-device", "foo"), ("--t5-device", "'foo'", "use auto, cpu, cuda")),
    Case("--dtype fp8", flags("--dtype", "fp8"), ("--dtype", "'fp8'", "bf16", "fp32")),
    Case("--offload bogus", flags("--offload", "bogus"), ("--offload", "'bogus'", "keep", "window")),
    Case("--last-stage foo", flags("--last-stage", "foo"), ("--last-stage", "'foo'", "sr2")),
    Case("--frames abc", flags("--frames", "abc"), ("--frames", "'abc'", "int")),
    Case("--out x.gif", lambda c: _out(c, "video.gif"), ("--out", "video.gif", "name it video.mp4")),
    Case("--out a folder", lambda c: _out(c, ""), ("--out", "is a folder", "give a file name")),
    Case("--out under a file", lambda c: _out(c, "afile/video.mp4"), ("--out", "afile", "is a file", "another path")),
    Case("--out on a read-only file system", lambda c: _out(c, "/proc/show1/video.mp4"),
         ("--out", "cannot write in /proc", "another folder")),
    Case("--save-stages is a file", flags("--save-stages", "{tmp}/afile"), ("--save-stages", "afile", "is a file",
                                                                          "give a folder")),
    Case("--save-stages under a file", flags("--save-stages", "{tmp}/afile/stages"),
         ("--save-stages", "afile", "is a file", "another path")),
    Case("--models missing", flags("--models", "{tmp}/no-such-folder"),
         ("--models", "no-such-folder", "is not a folder", "leave --models out")),
    Case("--models without stages", flags("--models", "{tmp}/empty"),
         ("--models", "empty", "no folder for show-1-base", "python -m show1_core download")),
]


def too_big(c):
    """The demo cascade against a device with room for its fp8 weights but not its fp16 ones."""
    from show1_core import headless, options
    from show1_core.precision import WEIGHT_DTYPES, Precision

    folders = headless.find_folders(None, False, "sr2")
    settings = options.base_settings(True)
    cpu = torch.device("cpu")

    def peak(weights):
        return headless.cascade_plan(folders, settings, Precision(torch.float32, WEIGHT_DTYPES[weights]), cpu,
                                     cpu).peak("keep")

    free = (peak("fp8_e4m3fn") + peak("fp16")) // 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(headless, "free_bytes", lambda device: free)
        return flags()(c)


def _out(c, name):
    path = (c["tmp"] / name) if not name.startswith("/") else Path(name)
    try:
        status = cli.main(["generate", "--prompt", "a cat", "--out", str(path)])
    except SystemExit as e:
        status = e.code
    return status, path


# --- the runner ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ctx(demo, demo_root, nodes, loaded, pack, tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("bad_inputs")
    (tmp / "afile").write_text("not a folder")
    (tmp / "empty").mkdir()
    import shutil

    broken = tmp / "broken_models" / "show-1-base"
    shutil.copytree(demo_root / "show-1-base", broken, ignore=shutil.ignore_patterns("*.bin", "*.safetensors"))
    (broken / "unet" / "config.json").write_text("{broken")
    cache = tmp / "cache"
    (cache / "show1").mkdir(parents=True)
    (cache / "show1" / "demo-weights").symlink_to(demo_root)  # the CLI's demo weights, without writing them again
    monkeypatch_module.setenv("XDG_CACHE_HOME", str(cache))
    truncated = tmp / "truncated.safetensors"
    pack.nodes.text.save_conditioning(loaded["cond"], truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    not_embeds = tmp / "weights.safetensors"
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(not_embeds))
    embeds_dir = pack.nodes.text.embeds_dir()
    embeds_dir.mkdir(parents=True, exist_ok=True)
    outside = tmp / "outside.safetensors"
    pack.nodes.text.save_conditioning(loaded["cond"], outside)
    (embeds_dir / "escape.safetensors").symlink_to(outside)
    clip_only = node(nodes, "Show1TextEncode").run(
        text_encoder=pack.nodes.common.Show1TextEncoders(None, loaded["encoders"].clip), prompt="x",
        negative_prompt="", pixel_negative_prompt="", clean_caption=False)[0]
    unets = [s.unet for s in demo.values() if hasattr(s, "unet")] + [m.stage.unet for m in loaded.values()
                                                                   if hasattr(m, "stage")]
    return {**demo, "root": demo_root, "nodes": nodes, "loaded": loaded, "tmp": tmp, "truncated": truncated,
            "broken": broken, "pack": pack,
            "not_embeds": not_embeds, "escape": "escape.safetensors", "clip_only": clip_only, "unets": unets,
            "t5": demo["t5"], "outputs": pack.nodes.comfy.output_directory(), "node_error": pack.nodes.declare.Show1NodeError}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


class UNetCalls:
    """Counts the calls of every Show-1 UNet in the process (the CLI loads its own)."""

    def __init__(self, unets=()):
        self.count = 0
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self.hit)

    def hit(self, module, args):
        if type(module).__name__ == "Show1UNet":
            self.count += 1

    def close(self):
        self.handle.remove()


def files_under(*folders) -> set[Path]:
    return {p for f in folders if f.exists() for p in f.rglob("*") if p.is_file() or p.is_symlink()}


def assert_names(message: str, names: tuple[str, ...]) -> None:
    for name in names:
        assert name in message, f"{name!r} not in message: {message}"


@pytest.mark.parametrize("case", CORE, ids=lambda c: c.id)
def test_core(ctx, case):
    calls, before = UNetCalls(ctx["unets"]), files_under(ctx["tmp"], ctx["outputs"])
    try:
        with pytest.raises(case.error) as e:
            case.call(ctx)
    finally:
        calls.close()
    assert_names(str(e.value), case.names)
    assert calls.count == 0, "the check must come before any UNet call"
    assert files_under(ctx["tmp"], ctx["outputs"]) == before


@pytest.mark.parametrize("case", NODES, ids=lambda c: c.id)
def test_nodes(ctx, case):
    calls, before = UNetCalls(ctx["unets"]), files_under(ctx["tmp"], ctx["outputs"])
    try:
        with pytest.raises(ctx["node_error"]) as e:
            case.call(ctx)
    finally:
        calls.close()
    assert_names(str(e.value), case.names)
    assert str(e.value).split(":")[0].startswith("Show1"), "node errors start with the node's name"
    assert calls.count == 0, "the check must come before any UNet call"
    assert files_under(ctx["tmp"], ctx["outputs"]) == before, "nothing may be written"


@pytest.mark.parametrize("case", CLI, ids=lambda c: c.id)
def test_cli(ctx, case, capsys):
    calls, before = UNetCalls(), files_under(ctx["tmp"])
    try:
        status, out = case.call(ctx)
    finally:
        calls.close()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status not in (0, None) and len(lines) == 1, err
    assert "Traceback" not in err
    assert_names(lines[0], case.names)
    assert not out.exists() or out.is_dir()
    assert files_under(ctx["tmp"]) == before, "nothing may be written"
    assert calls.count == 0, "the check must come before any UNet call"


def test_widget_values_are_refused_at_queue_time_with_the_same_words(ctx):
    """validate_inputs (what /prompt runs) and run() share their checks."""
    nodes = ctx["nodes"]
    message = nodes["Show1KeyframeSampler"].validate_inputs(model=None, cond=None, num_frames=2, width=24, height=16,
                                                            steps=0, guidance=9.0, seed=0, fps=2.0)
    with pytest.raises(ctx["node_error"]) as e:
        sampler(ctx, steps=0)
    assert message == str(e.value)
    assert "offload: 'bogus'" in nodes["Show1ModelLoader"].validate_inputs(model="show-1-base", dtype="auto",
                                                                          offload="bogus")


def test_a_stage_output_with_nan_stops_the_run(ctx, monkeypatch):
    """A diverging model (float16 overflow) must not give a black video: the stage names it."""
    import show1_core.sampling as sampling

    real = sampling.Denoiser.__call__
    monkeypatch.setattr(sampling.Denoiser, "__call__", lambda self, *a, **k: real(self, *a, **k) * float("nan"))
    with pytest.raises(InputError, match=r"keyframes output: \d+ of \d+ values are NaN or infinite; keyframes "
                                         r"produced them.*load the models in bf16 or fp32"):
        generate_keyframes(ctx[StageKind.BASE], t5(), kf_settings(steps=2))


def test_out_of_memory_names_the_levers(ctx, monkeypatch, capsys):
    import show1_core.cli as cli_module

    def oom(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes.")

    monkeypatch.setattr(cli_module, "run_cascade", oom)
    out = ctx["tmp"] / "oom.mp4"
    assert cli.main(["generate", "--prompt", "a cat", "--out", str(out), "--keyframe-steps", "1"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: out of memory") and "--offload window" in err and "fewer --frames" in err
    assert not out.exists()
    monkeypatch.setattr(ctx["nodes"]["Show1KeyframeSampler"], "execute",
                        lambda **k: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA out of memory.")))
    with pytest.raises(ctx["node_error"], match=r"^Show1KeyframeSampler: out of memory on cpu .*offload to 'window'"):
        sampler(ctx)


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(ctx, monkeypatch, capsys):
    import show1_core.cli as cli_module

    monkeypatch.setattr(cli_module, "run_cascade", lambda *a, **k: 1 / 0)
    out = ctx["tmp"] / "bug.mp4"
    assert cli.main(["generate", "--prompt", "a cat", "--out", str(out), "--keyframe-steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ZeroDivisionError: division by zero") and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["generate", "--prompt", "a cat", "--out", str(out), "--keyframe-steps", "1", "--debug"])


# --- interrupts -------------------------------------------------------------------------------------

def test_sigint_during_a_stage_writes_nothing_and_the_next_run_succeeds(tmp_path, demo_root):
    cache = tmp_path / "cache"
    (cache / "show1").mkdir(parents=True)
    (cache / "show1" / "demo-weights").symlink_to(demo_root)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "video.mp4"
    cmd = [sys.executable, "-m", "show1_core", "generate", "--prompt", "a cat", "--out", str(out),
           "--save-stages", str(tmp_path / "stages"), "--keyframe-steps", "400"]
    # a shell without job control starts background jobs with SIGINT ignored; the child must see
    # the default handler, as it does when started from a terminal
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    deadline = time.time() + 300
    while "keyframes:" not in seen or "/400" not in seen:  # a step of the keyframe stage has run
        chunk = process.stderr.read(1)
        if not chunk or time.time() > deadline:
            break
        seen += chunk
    process.send_signal(signal.SIGINT)
    err = seen + process.communicate(timeout=120)[1]
    assert process.returncode == 130, err[-2000:]
    assert "interrupted: no output written" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".video*"))
    assert not (tmp_path / "stages").exists() or not list((tmp_path / "stages").iterdir())
    again = subprocess.run([*cmd[:-1], "2", "--last-stage", "keyframes"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert out.is_file()


class Cancelled(Exception):
    """Stands in for ComfyUI's InterruptProcessingException outside ComfyUI."""


def test_interrupt_inside_a_node_propagates_writes_nothing_and_the_next_run_succeeds(ctx, pack, monkeypatch):
    steps = []

    def cancel_after_two():
        steps.append(1)
        if len(steps) == 2:
            raise Cancelled

    monkeypatch.setattr(pack.nodes.comfy, "stop_if_interrupted", cancel_after_two)
    before = files_under(ctx["outputs"])
    with pytest.raises(Cancelled):  # not wrapped: ComfyUI must see its own interrupt
        sampler(ctx, steps=10)
    assert files_under(ctx["outputs"]) == before
    monkeypatch.setattr(pack.nodes.comfy, "stop_if_interrupted", lambda: None)
    frames, _ = sampler(ctx, steps=2)
    assert frames.shape == (2, 16, 24, 3) and torch.isfinite(frames).all()


def test_cancel_is_checked_before_every_unet_call(ctx):
    """A latent step covers every window and both halves of the guidance pair; Cancel stops the next
    UNet call, not the next step."""
    from show1_core.context import RunContext

    calls = UNetCalls()

    def cancel():
        if calls.count >= 3:
            raise Cancelled

    settings = LatentInterpolationSettings(frames_between=9, steps=4, window=4, overlap=1)
    try:
        with pytest.raises(Cancelled):
            interpolate_latents(ctx[StageKind.SR2], clip(), latents(3), settings, RunContext(cancel=cancel))
    finally:
        calls.close()
    # 19 frames in windows of 4 -> 6 windows x 2 halves = 12 UNet calls a step; it stopped after 3
    assert calls.count == 3


# --- silent changes are told -----------------------------------------------------------------------

LONG_PROMPT = " ".join(["a panda eating bamboo in a forest"] * 12)


def test_a_prompt_cut_to_77_tokens_and_an_empty_prompt_are_told_once_each(ctx):
    from show1_core.context import RunContext

    heard = []
    encode_prompt(ctx["t5"], LONG_PROMPT, ctx=RunContext(on_warning=heard.append))
    assert len(heard) == 1 and heard[0].startswith("prompt: longer than the 77 tokens T5 reads; dropped: ")
    heard.clear()
    encode_prompt(ctx["clip"], "   ", ctx=RunContext(on_warning=heard.append))
    assert heard == ["prompt: empty, so CLIP encodes no text; the video follows no description"]
    heard.clear()
    encode_prompt(ctx["t5"], "a cat", "", ctx=RunContext(on_warning=heard.append))
    assert heard == [], "an empty negative prompt is the published default, not a change"


def test_the_cli_tells_warnings_on_stderr(ctx, capsys):
    out = ctx["tmp"] / "warned.mp4"
    assert cli.main(["generate", "--prompt", LONG_PROMPT, "--out", str(out), "--last-stage", "keyframes",
                     "--keyframe-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("warning: prompt: longer than")]) == 1
    out.unlink()


def test_a_first_frame_of_another_aspect_is_told_on_the_node(ctx, pack, monkeypatch):
    heard = []
    monkeypatch.setattr(pack.nodes.comfy, "warn", heard.append)
    run_node(ctx, "Show1PixelUpscale", model=ctx["loaded"]["sr1"], cond=ctx["loaded"]["cond"],
             frames=torch.rand(2, 8, 12, 3), scale=2, steps=1, guidance=7.0, noise_level=250, seed=0,
             first_frame=torch.rand(1, 30, 30, 3))
    assert heard == ["first_frame: 30x30 is stretched to 24x16 (another aspect ratio); give a first frame of the "
                     "output's aspect to avoid it"]


# --- memory -----------------------------------------------------------------------------------------

def resident_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the resident memory")
def test_failures_give_their_memory_back(ctx):
    """Failing calls, repeated, leave the resident memory where it was (nothing is held on to)."""
    from show1_core.memory import empty_cache

    def fail_all():
        for case in CORE + NODES:
            try:
                case.call(ctx)
            except (Show1Error, ctx["node_error"]):
                pass
        gc.collect()
        empty_cache(torch.device("cpu"))

    fail_all()
    start = resident_mib()
    for _ in range(3):
        fail_all()
    assert resident_mib() - start < 64, f"resident memory grew from {start:.0f} to {resident_mib():.0f} MiB"


def test_the_catalogue_is_large():
    assert len(CORE) + len(NODES) + len(CLI) >= 60
