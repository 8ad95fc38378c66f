"""Pixel-space stage nodes: keyframes, pixel interpolation, pixel super-resolution."""

from __future__ import annotations

from ..show1_core.frames import RESIZE_MODES, fit
from ..show1_core.stages import INTERPOLATED_FPS, KEYFRAME_FPS, generate_keyframes, interpolate_keyframes, \
    super_resolve_pixels
from .common import COND, MODEL, Show1Node, image_to_video, seed_input, stage_hooks, video_to_image

FPS = ("FLOAT", {"min": 0.1, "max": 120.0, "step": 0.5, "tooltip": "Frame rate reported on the fps output (for "
                                                                   "CreateVideo)."})


def steps_input(default: int) -> tuple:
    return ("INT", {"default": default, "min": 1, "max": 1000, "tooltip": "Denoising steps (published: "
                                                                         f"{default})."})


def guidance_input(default: float) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 50.0, "step": 0.5,
                      "tooltip": f"Classifier-free guidance (published: {default}); <= 1 turns it off."})


class Show1KeyframeSampler(Show1Node):
    DESCRIPTION = ("Show-1 keyframes: the pixel model (show-1-base) draws a few sharp low-resolution frames from "
                   "the prompt. Published: 8 frames of 64x40, 75 steps, guidance 9, shown at 2 fps.")
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("keyframes", "fps")
    OUTPUT_TOOLTIPS = ("Keyframes as an IMAGE batch (one image per frame).", "Frame rate of the keyframes.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-base from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs T5) from Show1TextEncode or Show1LoadEmbeds."}),
            "num_frames": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip": "Number of keyframes."}),
            "width": ("INT", {"default": 64, "min": 8, "max": 512, "step": 8, "tooltip": "Frame width (published 64)."}),
            "height": ("INT", {"default": 40, "min": 8, "max": 512, "step": 8,
                               "tooltip": "Frame height (published 40)."}),
            "steps": steps_input(75),
            "guidance": guidance_input(9.0),
            "seed": seed_input(),
            "fps": (FPS[0], {**FPS[1], "default": KEYFRAME_FPS}),
        }}

    def execute(self, model, cond, num_frames, width, height, steps, guidance, seed, fps):
        embeds = cond.require("t5", "the keyframe sampler")
        video = generate_keyframes(model.stage, embeds, num_frames, height, width, steps, guidance, seed,
                                   **stage_hooks(model))
        return (video_to_image(video), fps)


class Show1PixelInterpolate(Show1Node):
    DESCRIPTION = ("Show-1 pixel interpolation (show-1-interpolation): puts 3 new frames between every two "
                   "keyframes, K -> 4K-3 frames. Keyframes can come from any image model or from photos; they are "
                   "fitted to width x height first.")
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-interpolation from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs T5)."}),
            "keyframes": ("IMAGE", {"tooltip": "Two or more keyframes as an IMAGE batch, in time order."}),
            "width": ("INT", {"default": 64, "min": 8, "max": 512, "step": 8,
                              "tooltip": "Working width; the model was trained at 64x40."}),
            "height": ("INT", {"default": 40, "min": 8, "max": 512, "step": 8, "tooltip": "Working height."}),
            "resize": (list(RESIZE_MODES), {"default": "crop", "tooltip": "How keyframes of another size or aspect "
                                            "ratio are fitted: crop (keep aspect, cut edges), pad (keep all, black "
                                            "borders), stretch (keep all, distort)."}),
            "steps": steps_input(75),
            "guidance": guidance_input(4.0),
            "seed": seed_input(),
            "fps": (FPS[0], {**FPS[1], "default": INTERPOLATED_FPS}),
            "max_windows": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip": "Windows (pairs of keyframes) "
                                    "denoised together, at most: more is faster on a GPU, fewer saves memory. The "
                                    "video does not change."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, width, height):
        return True if width % 8 == 0 and height % 8 == 0 else "Show1PixelInterpolate: width and height must be " \
                                                                "multiples of 8"

    def execute(self, model, cond, keyframes, width, height, resize, steps, guidance, seed, fps, max_windows):
        video = fit(image_to_video(keyframes, "keyframes"), height, width, resize)
        out = interpolate_keyframes(model.stage, cond.require("t5", "pixel interpolation"), video, steps, guidance,
                                    seed, max_windows=max_windows, **stage_hooks(model))
        return (video_to_image(out), fps)


class Show1PixelUpscale(Show1Node):
    DESCRIPTION = ("Show-1 pixel super-resolution (show-1-sr1), x4 over windows of 8 frames. The first frame is "
                   "conditioned on DeepFloyd IF-II's upscale when the IF-II model is connected, else on the "
                   "first_frame image, else on a plain bilinear upscale (softer video).")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "show-1-sr1 from Show1ModelLoader."}),
                "cond": (COND, {"tooltip": "Prompt embeddings (needs T5)."}),
                "frames": ("IMAGE", {"tooltip": "Low-resolution frames (e.g. from Show1PixelInterpolate)."}),
                "scale": ("INT", {"default": 4, "min": 1, "max": 8, "tooltip": "Output size = input size x scale "
                                                                             "(published 4: 64x40 -> 256x160)."}),
                "steps": steps_input(125),
                "guidance": guidance_input(7.0),
                "noise_level": ("INT", {"default": 250, "min": 0, "max": 999, "tooltip": "Noise added to the "
                                        "upscaled condition (published 250): higher lets the model invent more."}),
                "seed": seed_input(),
            },
            "optional": {
                "if_ii": (MODEL, {"tooltip": "IF-II-L-v1.0 (gated on the hub) upscales frame 0 for the sharpest "
                                             "start. Without it, a bilinear upscale is used: the video is softer."}),
                "first_frame": ("IMAGE", {"tooltip": "Your own sharp first frame at the output size (overrides "
                                                     "IF-II), e.g. from any image upscaler."}),
                "if_ii_steps": ("INT", {"default": 70, "min": 1, "max": 1000, "tooltip": "IF-II steps (published 70)."}),
                "if_ii_guidance": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 50.0, "step": 0.5,
                                             "tooltip": "IF-II guidance (published 4)."}),
                "if_ii_noise_level": ("INT", {"default": 150, "min": 0, "max": 999,
                                              "tooltip": "IF-II noise level (published 150)."}),
            },
        }

    def execute(self, model, cond, frames, scale, steps, guidance, noise_level, seed, if_ii=None, first_frame=None,
                if_ii_steps=70, if_ii_guidance=4.0, if_ii_noise_level=150):
        video = image_to_video(frames, "frames")
        height, width = video.shape[-2] * scale, video.shape[-1] * scale
        first = None
        if first_frame is not None:
            first = fit(image_to_video(first_frame[:1], "first_frame"), height, width, "stretch")[:, :, 0]
        out = super_resolve_pixels(
            model.stage, cond.require("t5", "pixel super-resolution"), video, height, width, steps, guidance,
            noise_level, seed, first_frame=first, if_ii=if_ii.stage if if_ii is not None else None,
            if_ii_steps=if_ii_steps, if_ii_guidance=if_ii_guidance, if_ii_noise_level=if_ii_noise_level,
            **stage_hooks(model))
        return (video_to_image(out),)
