"""Latent-space stage nodes: VAE encode / decode, the latent interpolator and latent super-resolution."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.budget import vae_call_bytes
from ..show1_core.frames import RESIZE_MODES, fit, uint8_to_video
from ..show1_core.settings import (
    LatentInterpolationSettings,
    LatentSRSettings,
    SR2Settings,
    VAEDecodeSettings,
    VAEEncodeSettings,
)
from ..show1_core.stages import (
    interpolate_latents,
    latent_interpolation_memory,
    latent_video_to_video,
    sr2_memory,
    vae_decode,
    vae_encode,
)
from ..show1_core.stages.latent_sr import published_sr2_input
from . import comfy
from .common import (
    COND,
    MODEL,
    VAE,
    Show1VAE,
    image_to_video,
    latent_samples,
    require_stage_inputs,
    run_context,
    to_latent,
    video_to_image,
)
from .declare import Node, Output, combo, number, require_input, setting, socket
from .readout import both

CATEGORY = "Show-1/latent"
VAE_TIP = "The show-1-sr2 VAE from Show1VAELoader."


def vae_input(vae) -> Show1VAE:
    require_input(vae, Show1VAE, "vae", "the show-1-sr2 VAE from Show1VAELoader")
    return vae




class Show1VAEEncode(Node):
    id, display_name, category = "Show1VAEEncode", "Show-1 VAE Encode", CATEGORY
    description = ("Encodes frames (any IMAGE batch: Show-1 frames, renders of other models, photos) into Show-1 "
                   "latents [1, 4, frames, h, w], fitted to width x height.")
    outputs = (Output("LATENT", "latent", "Show-1 latents [1, 4, frames, height/8, width/8]."),)
    readout = True

    @classmethod
    def inputs(cls):
        return [socket("vae", VAE, VAE_TIP), socket("images", "IMAGE", "Frames in time order."),
                setting(SR2Settings, "width", tooltip="Published 576; multiples of 8."),
                setting(SR2Settings, "height", tooltip="Published 320."),
                combo("resize", ("published", *RESIZE_MODES), "crop", "published: the published sr1 -> sr2 hand-off "
                      "(8-bit frames, bicubic stretch). crop / pad / stretch: for frames of another aspect ratio (cut "
                      "edges / black borders / distort)."),
                *(setting(VAEEncodeSettings, name) for name in ("posterior", "seed", "tile"))]

    @classmethod
    def size_out(cls, view):
        return both(view.value("width"), view.value("height"), lambda w, h: (w, h))

    @classmethod
    def execute(cls, vae, images, width, height, resize, **values):
        vae = vae_input(vae)
        for name, value in (("width", width), ("height", height)):  # the widgets check bounds, not steps
            rules.validate_size(name, value, vae.vae.size_multiple, "the show-1-sr2 VAE")
        video = image_to_video(images)
        if resize == "published":
            video = uint8_to_video(published_sr2_input(video, height, width).numpy())
        else:
            video = fit(video, height, width, resize)
        settings = cls.settings(VAEEncodeSettings, values)
        memory = {id(vae.vae): vae_call_bytes(vae.vae, settings.frames_per_chunk, height, width, "encode")}
        return (to_latent(vae_encode(vae.vae, video, settings, run_context(vae, memory=memory))),)


class Show1FrameDecode(Node):
    id, display_name, category = "Show1FrameDecode", "Show-1 Frame Decode", CATEGORY
    description = "Decodes Show-1 latents into frames (an IMAGE batch), a few frames at a time."
    outputs = (Output("IMAGE", "frames", "The decoded frames."),)
    readout = True

    @classmethod
    def inputs(cls):
        return [socket("vae", VAE, VAE_TIP),
                socket("latent", "LATENT", "Show-1 latents (or a 4-D SD-style latent batch read as frames)."),
                *(setting(VAEDecodeSettings, name) for name in ("frames_per_chunk", "tile"))]

    @classmethod
    def execute(cls, vae, latent, **values):
        vae = vae_input(vae)
        samples = latent_samples(latent)
        settings = cls.settings(VAEDecodeSettings, values)
        h, w = samples.shape[-2] * vae.vae.size_multiple, samples.shape[-1] * vae.vae.size_multiple
        memory = {id(vae.vae): vae_call_bytes(vae.vae, settings.frames_per_chunk, h, w, "decode")}
        video = vae_decode(vae.vae, samples, settings, run_context(vae, memory=memory))
        return (video_to_image(video),)


class Show1LatentInterpolator(Node):
    id, display_name, category = "Show1LatentInterpolator", "Show-1 Latent Interpolator", CATEGORY
    description = ("Show-1's latent interpolator: places the latent keyframes at evenly spaced frames and lets "
                   "the latent video model (show-1-sr2) fill the motion in between. The keyframes come out "
                   "exactly; long videos run in overlapping windows.")
    outputs = (Output("LATENT", "latent", "The latent video."), Output("FLOAT", "fps", "Its frame rate."))
    readout = True

    @classmethod
    def inputs(cls):
        return [socket("model", MODEL, "show-1-sr2 from Show1ModelLoader."),
                socket("cond", COND, "Prompt embeddings (needs CLIP)."),
                socket("keyframes", "LATENT", "Latent keyframes from Show1VAEEncode, in time order."),
                *(setting(LatentInterpolationSettings, name) for name in ("frames_between", "strength", "steps",
                                                                          "guidance", "seed", "window", "overlap")),
                number("fps", rules.FPS, rules.INTERPOLATED_FPS, "Frame rate reported on the fps output (for CreateVideo).")]

    @classmethod
    def frames_out(cls, view):
        return both(view.frames_of("keyframes"), view.value("frames_between"), rules.interpolated_frames)

    @classmethod
    def graph_problems(cls, view):
        k = view.frames_of("keyframes")
        if k is not None and k < rules.MIN_KEYFRAMES:
            return [f"keyframes: {k} keyframe(s); interpolation needs at least {rules.MIN_KEYFRAMES}"]
        return []

    @classmethod
    def validate_across(cls, values):
        cls.check_across(LatentInterpolationSettings, values)

    @classmethod
    def execute(cls, model, cond, keyframes, fps, **values):
        require_stage_inputs(model, cond, "show-1-sr2")
        samples = latent_samples(keyframes, "keyframes")
        settings = cls.settings(LatentInterpolationSettings, values)
        shape = (rules.interpolated_frames(samples.shape[2], settings.frames_between), *samples.shape[-2:])
        memory = {id(model.stage.unet): latent_interpolation_memory(model.stage.unet, settings, shape,
                                                                    comfy.compute_device())}
        out = interpolate_latents(model.stage, cond.require("clip", "the latent interpolator"), samples, settings,
                                  run_context(model, memory=memory))
        return to_latent(out), fps


class Show1LatentUpscale(Node):
    id, display_name, category = "Show1LatentUpscale", "Show-1 Latent Upscale (sr2)", CATEGORY
    description = ("Show-1 latent super-resolution (show-1-sr2): re-noises the latent video to `strength` and "
                   "denoises it at the latent size. Published: 576x320, strength 0.8, 50 steps, guidance 15.")
    outputs = (Output("LATENT", "latent", "The refined latent video."),)
    readout = True

    @classmethod
    def inputs(cls):
        return [socket("model", MODEL, "show-1-sr2 from Show1ModelLoader."),
                socket("cond", COND, "Prompt embeddings (needs CLIP)."),
                socket("latent", "LATENT", "Latents from Show1VAEEncode (published: resize 'published', 576x320)."),
                *(setting(LatentSRSettings, name) for name in ("strength", "steps", "guidance", "seed"))]

    @classmethod
    def validate_across(cls, values):
        cls.check_across(LatentSRSettings, values)

    @classmethod
    def execute(cls, model, cond, latent, **values):
        require_stage_inputs(model, cond, "show-1-sr2")
        samples = latent_samples(latent)
        settings = cls.settings(LatentSRSettings, values)
        memory = {id(model.stage.unet): sr2_memory(model.stage.unet, settings, tuple(samples.shape[2:]),
                                                   comfy.compute_device())}
        out = latent_video_to_video(model.stage, cond.require("clip", "latent super-resolution"), samples, settings,
                                    run_context(model, memory=memory))
        return (to_latent(out),)
