"""Latent-space stage nodes: VAE encode / decode, the latent interpolator and latent super-resolution."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.frames import fit, uint8_to_video
from ..show1_core.stages import interpolate_latents, latent_video_to_video, vae_decode, vae_encode
from ..show1_core.stages.latent_sr import published_sr2_input
from . import widgets
from .common import COND, MODEL, VAE, Show1Node, image_to_video, latent_samples, stage_hooks, to_latent, \
    video_to_image

VAE_TIP = "The show-1-sr2 VAE from Show1VAELoader."


class Show1VAEEncode(Show1Node):
    DESCRIPTION = ("Encodes frames (any IMAGE batch: Show-1 frames, renders of other models, photos) into Show-1 "
                   "latents [1, 4, frames, h, w], fitted to width x height.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    RANGES = {"width": rules.VAE_SIZE, "height": rules.VAE_SIZE, "seed": rules.SEED}

    @classmethod
    def INPUT_TYPES(cls):
        height, width = rules.PUBLISHED_SIZE["sr2"]
        return {"required": {
            "vae": (VAE, {"tooltip": VAE_TIP}),
            "images": ("IMAGE", {"tooltip": "Frames in time order."}),
            "width": widgets.size(rules.VAE_SIZE, width, f"Published {width}; multiples of {rules.VAE_SIZE_MULTIPLE}."),
            "height": widgets.size(rules.VAE_SIZE, height, f"Published {height}."),
            "resize": widgets.resize("published: the published sr1 -> sr2 hand-off (8-bit frames, bicubic stretch). "
                                     "crop / pad / stretch: for frames of another aspect ratio (cut edges / black "
                                     "borders / distort).", extra=("published",)),
            "posterior": (["mean", "sample"], {"default": "mean", "tooltip": "mean: deterministic. sample: draw "
                                               "from the VAE posterior with the seed, as the published sr2 does."}),
            "seed": widgets.seed("Seed of the posterior sample."),
            "tile": ("BOOLEAN", {"default": False, "tooltip": "Tiled encoding for very large frames (less memory, "
                                                             "slightly different numbers)."}),
        }}

    def execute(self, vae, images, width, height, resize, posterior, seed, tile):
        video = image_to_video(images)
        if resize == "published":
            video = uint8_to_video(published_sr2_input(video, height, width).numpy())
        else:
            video = fit(video, height, width, resize)
        latents = vae_encode(vae.vae, video, seed if posterior == "sample" else None, tile=tile, **stage_hooks(vae))
        return (to_latent(latents),)


class Show1FrameDecode(Show1Node):
    DESCRIPTION = "Decodes Show-1 latents into frames (an IMAGE batch), a few frames at a time."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    RANGES = {"frames_per_chunk": rules.FRAMES_PER_CHUNK}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": (VAE, {"tooltip": VAE_TIP}),
            "latent": ("LATENT", {"tooltip": "Show-1 latents (or a 4-D SD-style latent batch read as frames)."}),
            "frames_per_chunk": widgets.integer(rules.FRAMES_PER_CHUNK, "Frames decoded at once: fewer saves memory, "
                                                "the frames are the same."),
            "tile": ("BOOLEAN", {"default": False, "tooltip": "Tiled decoding for large frames (less memory)."}),
        }}

    def execute(self, vae, latent, frames_per_chunk, tile):
        video = vae_decode(vae.vae, latent_samples(latent), frames_per_chunk, tile, **stage_hooks(vae))
        return (video_to_image(video),)


class Show1LatentInterpolator(Show1Node):
    DESCRIPTION = ("Show-1's latent interpolator: places the latent keyframes at evenly spaced frames and lets "
                   "the latent video model (show-1-sr2) fill the motion in between. The keyframes come out "
                   "exactly; long videos run in overlapping windows.")
    RETURN_TYPES = ("LATENT", "FLOAT")
    RETURN_NAMES = ("latent", "fps")
    RANGES = {"frames_between": rules.FRAMES_BETWEEN, "strength": rules.STRENGTH, "steps": rules.STEPS,
              "guidance": rules.GUIDANCE, "seed": rules.SEED, "window": rules.WINDOW, "overlap": rules.OVERLAP,
              "fps": rules.FPS}

    @classmethod
    def INPUT_TYPES(cls):
        d = rules.LATENT_INTERPOLATION
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-sr2 from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs CLIP)."}),
            "keyframes": ("LATENT", {"tooltip": "Latent keyframes from Show1VAEEncode, in time order."}),
            "frames_between": widgets.integer(rules.FRAMES_BETWEEN, "New frames in every gap: K keyframes give "
                                              "(K-1) x (frames_between + 1) + 1 frames."),
            "strength": widgets.strength(d.strength, "1: the in-between frames start from noise. Lower: they start "
                                                     "from the cross-fade of the keyframes and keep closer to it."),
            "steps": widgets.steps(d.steps),
            "guidance": widgets.guidance(d.guidance),
            "seed": widgets.seed(),
            "window": widgets.integer(rules.WINDOW, "Frames the UNet sees at once; memory grows with this, not with "
                                      "the video length."),
            "overlap": widgets.integer(rules.OVERLAP, "Frames shared by neighbouring windows, blended smoothly; "
                                       "smaller than window."),
            "fps": widgets.fps(d.fps),
        }}

    @classmethod
    def check(cls, values):
        if values.get("window") is not None and values.get("overlap") is not None:
            rules.check_window_overlap(values["window"], values["overlap"])
        if values.get("strength") is not None and values.get("steps") is not None:
            rules.check_strength_steps(values["strength"], values["steps"])

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
    RANGES = {"strength": rules.STRENGTH, "steps": rules.STEPS, "guidance": rules.GUIDANCE, "seed": rules.SEED}

    @classmethod
    def INPUT_TYPES(cls):
        d = rules.SR2
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-sr2 from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs CLIP)."}),
            "latent": ("LATENT", {"tooltip": "Latents from Show1VAEEncode (published: resize 'published', 576x320)."}),
            "strength": widgets.strength(d.strength, f"How much is redrawn (published {d.strength}); strength x steps "
                                                     "must leave at least one step."),
            "steps": widgets.steps(d.steps),
            "guidance": widgets.guidance(d.guidance),
            "seed": widgets.seed(),
        }}

    @classmethod
    def check(cls, values):
        if values.get("strength") is not None and values.get("steps") is not None:
            rules.check_strength_steps(values["strength"], values["steps"])

    def execute(self, model, cond, latent, strength, steps, guidance, seed):
        out = latent_video_to_video(model.stage, cond.require("clip", "latent super-resolution"),
                                    latent_samples(latent), strength, steps, guidance, seed, **stage_hooks(model))
        return (to_latent(out),)
