"""Pixel-space stage nodes: keyframes, pixel interpolation, pixel super-resolution."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.frames import fit
from ..show1_core.stages import generate_keyframes, interpolate_keyframes, super_resolve_pixels
from . import widgets
from .common import COND, MODEL, Show1Node, image_to_video, stage_hooks, video_to_image

SIZE_TIP = "the published model works at {}; multiples of " + str(rules.PUBLISHED_SIZE_MULTIPLE)


class Show1KeyframeSampler(Show1Node):
    DESCRIPTION = ("Show-1 keyframes: the pixel model (show-1-base) draws a few sharp low-resolution frames from "
                   "the prompt. Published: 8 frames of 64x40, 75 steps, guidance 9, shown at 2 fps.")
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("keyframes", "fps")
    OUTPUT_TOOLTIPS = ("Keyframes as an IMAGE batch (one image per frame).", "Frame rate of the keyframes.")
    RANGES = {"num_frames": rules.NUM_KEYFRAMES, "width": rules.KEYFRAME_SIZE, "height": rules.KEYFRAME_SIZE,
              "steps": rules.STEPS, "guidance": rules.GUIDANCE, "seed": rules.SEED, "fps": rules.FPS}

    @classmethod
    def INPUT_TYPES(cls):
        height, width = rules.PUBLISHED_SIZE["keyframes"]
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-base from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs T5) from Show1TextEncode or Show1LoadEmbeds."}),
            "num_frames": widgets.integer(rules.NUM_KEYFRAMES, "Number of keyframes (published 8)."),
            "width": widgets.size(rules.KEYFRAME_SIZE, width, "Frame width; " + SIZE_TIP.format(f"{width}x{height}")),
            "height": widgets.size(rules.KEYFRAME_SIZE, height, "Frame height; " + SIZE_TIP.format(f"{width}x{height}")),
            "steps": widgets.steps(rules.KEYFRAMES.steps),
            "guidance": widgets.guidance(rules.KEYFRAMES.guidance),
            "seed": widgets.seed(),
            "fps": widgets.fps(rules.KEYFRAMES.fps),
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
    RANGES = {"width": rules.KEYFRAME_SIZE, "height": rules.KEYFRAME_SIZE, "steps": rules.STEPS,
              "guidance": rules.GUIDANCE, "seed": rules.SEED, "fps": rules.FPS, "max_windows": rules.MAX_WINDOWS}

    @classmethod
    def INPUT_TYPES(cls):
        height, width = rules.PUBLISHED_SIZE["keyframes"]
        return {"required": {
            "model": (MODEL, {"tooltip": "show-1-interpolation from Show1ModelLoader."}),
            "cond": (COND, {"tooltip": "Prompt embeddings (needs T5)."}),
            "keyframes": ("IMAGE", {"tooltip": "Two or more keyframes as an IMAGE batch, in time order."}),
            "width": widgets.size(rules.KEYFRAME_SIZE, width, "Working width; " + SIZE_TIP.format(f"{width}x{height}")),
            "height": widgets.size(rules.KEYFRAME_SIZE, height, "Working height."),
            "resize": widgets.resize("How keyframes of another size or aspect ratio are fitted: crop (keep aspect, "
                                     "cut edges), pad (keep all, black borders), stretch (keep all, distort)."),
            "steps": widgets.steps(rules.INTERPOLATION.steps),
            "guidance": widgets.guidance(rules.INTERPOLATION.guidance),
            "seed": widgets.seed(),
            "fps": widgets.fps(rules.INTERPOLATION.fps),
            "max_windows": widgets.integer(rules.MAX_WINDOWS, "Windows (pairs of keyframes) denoised together, at "
                                           "most: more is faster on a GPU, fewer saves memory. The video does not "
                                           "change."),
        }}

    def execute(self, model, cond, keyframes, width, height, resize, steps, guidance, seed, fps, max_windows):
        video = image_to_video(keyframes, "keyframes")
        rules.check_keyframe_count("keyframes", video.shape[2])
        out = interpolate_keyframes(model.stage, cond.require("t5", "pixel interpolation"),
                                    fit(video, height, width, resize), steps, guidance, seed, max_windows=max_windows,
                                    **stage_hooks(model))
        return (video_to_image(out), fps)


class Show1PixelUpscale(Show1Node):
    DESCRIPTION = ("Show-1 pixel super-resolution (show-1-sr1), x4 over windows of 8 frames. The first frame is "
                   "conditioned on DeepFloyd IF-II's upscale when the IF-II model is connected, else on the "
                   "first_frame image, else on a plain bilinear upscale (softer video).")
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    RANGES = {"scale": rules.SR1_SCALE, "steps": rules.STEPS, "guidance": rules.GUIDANCE,
              "noise_level": rules.NOISE_LEVEL, "seed": rules.SEED, "if_ii_steps": rules.STEPS,
              "if_ii_guidance": rules.GUIDANCE, "if_ii_noise_level": rules.NOISE_LEVEL}

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "show-1-sr1 from Show1ModelLoader."}),
                "cond": (COND, {"tooltip": "Prompt embeddings (needs T5)."}),
                "frames": ("IMAGE", {"tooltip": "Low-resolution frames (e.g. from Show1PixelInterpolate)."}),
                "scale": widgets.integer(rules.SR1_SCALE, "Output size = input size x scale (published 4: 64x40 -> "
                                         "256x160)."),
                "steps": widgets.steps(rules.SR1.steps),
                "guidance": widgets.guidance(rules.SR1.guidance),
                "noise_level": widgets.noise_level(rules.SR1.noise_level, "Noise added to the upscaled condition "
                                                   f"(published {rules.SR1.noise_level}): higher lets the model "
                                                   "invent more."),
                "seed": widgets.seed(),
            },
            "optional": {
                "if_ii": (MODEL, {"tooltip": "IF-II-L-v1.0 (gated on the hub) upscales frame 0 for the sharpest "
                                             "start. Without it, a bilinear upscale is used: the video is softer."}),
                "first_frame": ("IMAGE", {"tooltip": "Your own sharp first frame at the output size (overrides "
                                                     "IF-II), e.g. from any image upscaler."}),
                "if_ii_steps": widgets.steps(rules.IF_II.steps, "IF-II steps"),
                "if_ii_guidance": widgets.guidance(rules.IF_II.guidance, "IF-II guidance"),
                "if_ii_noise_level": widgets.noise_level(rules.IF_II.noise_level,
                                                         f"IF-II noise level (published {rules.IF_II.noise_level})."),
            },
        }

    def execute(self, model, cond, frames, scale, steps, guidance, noise_level, seed, if_ii=None, first_frame=None,
                if_ii_steps=rules.IF_II.steps, if_ii_guidance=rules.IF_II.guidance,
                if_ii_noise_level=rules.IF_II.noise_level):
        video = image_to_video(frames, "frames")
        height, width = video.shape[-2] * scale, video.shape[-1] * scale
        first = None
        if first_frame is not None:
            first = fit(image_to_video(first_frame[:1], "first_frame"), height, width, "stretch")[:, :, 0]
        out = super_resolve_pixels(
            model.stage, cond.require("t5", "pixel super-resolution"), video, height, width, steps, guidance,
            noise_level, seed, first_frame=first, if_ii=if_ii.stage if if_ii is not None else None,
            if_ii_steps=if_ii_steps, if_ii_guidance=if_ii_guidance, if_ii_noise_level=if_ii_noise_level,
            **stage_hooks(model, if_ii))
        return (video_to_image(out),)
