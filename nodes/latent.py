"""Latent-space stage nodes: VAE encode / decode, the latent interpolator and latent super-resolution."""

from __future__ import annotations

from ..show1_core.frames import RESIZE_MODES, fit, uint8_to_video
from ..show1_core.stages import LATENT_FPS, interpolate_latents, latent_video_to_video, vae_decode, vae_encode
from ..show1_core.stages.latent_sr import published_sr2_input
from .common import COND, MODEL, VAE, Show1Node, image_to_video, latent_samples, seed_input, stage_hooks, \
    to_latent, video_to_image
from .pixel import FPS, guidance_input, steps_input

RESIZE = ["published", *RESIZE_MODES]


class Show1VAEEncode(Show1Node):
    DESCRIPTION = ("Encodes frames (any IMAGE batch: Show-1 frames, renders of other models, photos) into Show-1 "
                   "latents [1, 4, frames, h, w], fitted to width x height.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": "The show-1-sr2 VAE from Show1VAELoader."}),
            "images": ("IMAGE", {"tooltip": "Frames in time order."}),
            "width": ("INT", {"default": 576, "min": 64, "max": 2048, "step": 8, "tooltip": "Published 576."}),
            "height": ("INT", {"default": 320, "min": 64, "max": 2048, "step": 8, "tooltip": "Published 320."}),
            "resize": (RESIZE, {"default": "crop", "tooltip": "published: the published sr1 -> sr2 hand-off (8-bit "
                                "frames, bicubic stretch). crop / pad / stretch: for frames of another aspect "
                                "ratio (cut edges / black borders / distort)."}),
            "posterior": (["mean", "sample"], {"default": "mean", "tooltip": "mean: deterministic. sample: draw "
                                               "from the VAE posterior with the seed, as the published sr2 does."}),
            "seed": seed_input("Seed of the posterior sample."),
            "tile": ("BOOLEAN", {"default": False, "tooltip": "Tiled encoding for very large frames (less memory, "
                                                             "slightly different numbers)."}),
        }}

    def execute(self, vae, images, width, height, resize, posterior, seed, tile):
        video = image_to_video(images)
        if resize == "published":
            video = uint8_to_video(published_sr2_input(video, height, width).numpy())
        else:
            video = fit(video, height, width, resize)
        latents = vae_encode(vae, video, seed if posterior == "sample" else None, tile=tile, **stage_hooks())
        return (to_latent(latents),)


class Show1FrameDecode(Show1Node):
    DESCRIPTION = "Decodes Show-1 latents into frames (an IMAGE batch), a few frames at a time."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": "The show-1-sr2 VAE from Show1VAELoader."}),
            "latent": ("LATENT", {"tooltip": "Show-1 latents (or a 4-D SD-style latent batch read as frames)."}),
            "frames_per_chunk": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": "Frames decoded at once: "
                                         "fewer saves memory, the frames are the same."}),
            "tile": ("BOOLEAN", {"default": False, "tooltip": "Tiled decoding for large frames (less memory)."}),
        }}

    def execute(self, vae, latent, frames_per_chunk, tile):
        video = vae_decode(vae, latent_samples(latent), frames_per_chunk, tile, **stage_hooks())
        return (video_to_image(video),)


class Show1LatentInterpolator(Show1Node):
    DESCRIPTION = ("Show-1's latent interpolator: places the latent keyframes at evenly spaced frames and lets "
                   "the latent video model (show-1-sr2) fill the motion in between. The keyframes come out "
                   "exactly; long videos run in overlapping windows.")
    RETURN_TYPES = ("LATENT", "FLOAT")
    RETURN_NAMES = ("latent", "fps")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-sr2 from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs CLIP)."}),
            "keyframes": ("LATENT", {"tooltip": "Latent keyframes from Show1VAEEncode, in time order."}),
            "frames_between": ("INT", {"default": 7, "min": 0, "max": 120, "tooltip": "New frames in every gap: "
                                       "K keyframes give (K-1) x (frames_between + 1) + 1 frames."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "1: the "
                                   "in-between frames start from noise. Lower: they start from the cross-fade of the "
                                   "keyframes and keep closer to it."}),
            "steps": steps_input(50),
            "guidance": guidance_input(9.0),
            "seed": seed_input(),
            "window": ("INT", {"default": 16, "min": 2, "max": 128, "tooltip": "Frames the UNet sees at once; "
                               "memory grows with this, not with the video length."}),
            "overlap": ("INT", {"default": 4, "min": 0, "max": 127, "tooltip": "Frames shared by neighbouring "
                                "windows, blended smoothly."}),
            "fps": (FPS[0], {**FPS[1], "default": LATENT_FPS}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, window, overlap):
        if overlap >= window:
            return f"Show1LatentInterpolator: overlap ({overlap}) must be smaller than window ({window})"
        return True

    def execute(self, model, cond, keyframes, frames_between, strength, steps, guidance, seed, window, overlap, fps):
        out = interpolate_latents(model.stage, cond.require("clip", "the latent interpolator"),
                                  latent_samples(keyframes, "keyframes"), frames_between=frames_between, steps=steps,
                                  guidance=guidance, strength=strength, seed=seed, window=window, overlap=overlap,
                                  **stage_hooks(model))
        return (to_latent(out), fps)


class Show1LatentUpscale(Show1Node):
    DESCRIPTION = ("Show-1 latent super-resolution (show-1-sr2): re-noises the latent video to `strength` and "
                   "denoises it at the latent size. Published: 576x320, strength 0.8, 50 steps, guidance 15.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-sr2 from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs CLIP)."}),
            "latent": ("LATENT", {"tooltip": "Latents from Show1VAEEncode (published: resize 'published', 576x320)."}),
            "strength": ("FLOAT", {"default": 0.8, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "How much is "
                                   "redrawn (published 0.8)."}),
            "steps": steps_input(50),
            "guidance": guidance_input(15.0),
            "seed": seed_input(),
        }}

    def execute(self, model, cond, latent, strength, steps, guidance, seed):
        out = latent_video_to_video(model.stage, cond.require("clip", "latent super-resolution"),
                                    latent_samples(latent), strength, steps, guidance, seed, **stage_hooks(model))
        return (to_latent(out),)
