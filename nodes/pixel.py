"""Pixel-space stage nodes: keyframes, pixel interpolation, pixel super-resolution."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.errors import InputError
from ..show1_core.frames import RESIZE_MODES, fit
from ..show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    SR1Settings,
)
from ..show1_core.stage import StageKind
from ..show1_core.stages import (
    IFIIUpscale,
    generate_keyframes,
    if_ii_memory,
    interpolate_keyframes,
    interpolation_memory,
    keyframes_memory,
    sr1_memory,
    super_resolve_pixels,
)
from . import comfy
from .common import (
    COND,
    MODEL,
    Show1Model,
    image_to_video,
    require_stage_inputs,
    run_context,
    video_to_image,
)
from .declare import Node, Output, combo, number, require_input, setting, socket
from .readout import both, size_problems

CATEGORY = "Show-1/pixel"
RESIZE_TIP = ("How keyframes of another size or aspect ratio are fitted: crop (keep aspect, cut edges), pad (keep "
              "all, black borders), stretch (keep all, distort).")


def fps_input(default: float):
    return number("fps", rules.FPS, default, "Frame rate reported on the fps output (for CreateVideo).")


def model_input(what: str):
    return socket("model", MODEL, f"{what} from Show1ModelLoader.")


def cond_input():
    return socket("cond", COND, "Prompt embeddings (needs T5) from Show1TextEncode or Show1LoadEmbeds.")




class Show1KeyframeSampler(Node):
    id, display_name, category = "Show1KeyframeSampler", "Show-1 Keyframe Sampler", CATEGORY
    description = ("Show-1 keyframes: the pixel model (show-1-base) draws a few sharp low-resolution frames from "
                   "the prompt. Published: 8 frames of 64x40, 75 steps, guidance 9, shown at 2 fps.")
    outputs = (Output("IMAGE", "keyframes", "Keyframes as an IMAGE batch (one image per frame)."),
               Output("FLOAT", "fps", "Frame rate of the keyframes."))
    readout = True

    @classmethod
    def inputs(cls):
        return [model_input("show-1-base"), cond_input(),
                *(setting(KeyframeSettings, name) for name in ("num_frames", "width", "height", "steps", "guidance",
                                                                "seed")),
                fps_input(rules.KEYFRAME_FPS)]

    @classmethod
    def frames_out(cls, view):
        return view.value("num_frames")

    @classmethod
    def size_out(cls, view):
        return both(view.value("width"), view.value("height"), lambda w, h: (w, h))

    @classmethod
    def graph_problems(cls, view):
        shots, frames = view.graph.shots(view.id), view.value("num_frames")
        storyboard = [f"cond: {shots} prompts for {frames} keyframes; give one prompt per keyframe (one line each)"] \
            if shots and shots > 1 and frames is not None and shots != frames else []
        return storyboard + size_problems(view)

    @classmethod
    def execute(cls, model, cond, fps, **values):
        require_stage_inputs(model, cond, "show-1-base")
        settings = cls.settings(KeyframeSettings, values)
        shape = (settings.num_frames, settings.height, settings.width)
        memory = {id(model.stage.unet): keyframes_memory(model.stage.unet, settings, shape, comfy.compute_device())}
        video = generate_keyframes(model.stage, cond.require("t5", "the keyframe sampler"), settings,
                                   run_context(model, memory=memory))
        return video_to_image(video), fps


class Show1PixelInterpolate(Node):
    id, display_name, category = "Show1PixelInterpolate", "Show-1 Pixel Interpolate", CATEGORY
    description = ("Show-1 pixel interpolation (show-1-interpolation): puts 3 new frames between every two "
                   "keyframes, K -> 4K-3 frames. Keyframes can come from any image model or from photos; they are "
                   "fitted to width x height first.")
    outputs = (Output("IMAGE", "frames", "The interpolated frames."), Output("FLOAT", "fps", "Their frame rate."))
    readout = True

    @classmethod
    def inputs(cls):
        return [model_input("show-1-interpolation"), cond_input(),
                socket("keyframes", "IMAGE", "Two or more keyframes as an IMAGE batch, in time order."),
                setting(KeyframeSettings, "width", tooltip="Working width; the published model works at 64x40."),
                setting(KeyframeSettings, "height", tooltip="Working height."),
                combo("resize", RESIZE_MODES, "crop", RESIZE_TIP),
                *(setting(InterpolationSettings, name) for name in ("steps", "guidance", "seed")),
                fps_input(rules.INTERPOLATED_FPS),
                setting(InterpolationSettings, "max_windows", default=8)]

    @classmethod
    def frames_out(cls, view):
        k = view.frames_of("keyframes")
        return None if k is None else rules.interpolated_frames(k, rules.PIXEL_NEW_PER_GAP)

    size_out = Show1KeyframeSampler.size_out

    @classmethod
    def graph_problems(cls, view):
        k = view.frames_of("keyframes")
        few = [f"keyframes: {k} keyframe(s); interpolation needs at least {rules.MIN_KEYFRAMES}"] \
            if k is not None and k < rules.MIN_KEYFRAMES else []
        return few + size_problems(view)

    @classmethod
    def execute(cls, model, cond, keyframes, width, height, resize, fps, **values):
        require_stage_inputs(model, cond, "show-1-interpolation")
        video = image_to_video(keyframes, "keyframes")
        rules.validate_keyframe_count("keyframes", video.shape[2])
        settings = cls.settings(InterpolationSettings, values)
        shape = (rules.interpolated_frames(video.shape[2], rules.PIXEL_NEW_PER_GAP), height, width)
        memory = {id(model.stage.unet): interpolation_memory(model.stage.unet, settings, shape, comfy.compute_device())}
        out = interpolate_keyframes(model.stage, cond.require("t5", "pixel interpolation"),
                                    fit(video, height, width, resize), settings, run_context(model, memory=memory))
        return video_to_image(out), fps


class Show1PixelUpscale(Node):
    id, display_name, category = "Show1PixelUpscale", "Show-1 Pixel Upscale (sr1)", CATEGORY
    description = ("Show-1 pixel super-resolution (show-1-sr1), x4 over windows of 8 frames. The first frame is "
                   "conditioned on DeepFloyd IF-II's upscale when the IF-II model is connected, else on the "
                   "first_frame image, else on a plain bilinear upscale (softer video).")
    outputs = (Output("IMAGE", "frames", "The super-resolved frames."),)
    readout = True

    @classmethod
    def inputs(cls):
        return [model_input("show-1-sr1"), cond_input(),
                socket("frames", "IMAGE", "Low-resolution frames (e.g. from Show1PixelInterpolate)."),
                *(setting(SR1Settings, name) for name in ("scale", "steps", "guidance", "noise_level", "seed")),
                socket("if_ii", MODEL, "IF-II-L-v1.0 (gated on the hub) upscales frame 0 for the sharpest start. "
                       "Without it, a bilinear upscale is used: the video is softer.", optional=True),
                socket("first_frame", "IMAGE", "Your own sharp first frame at the output size (overrides IF-II), e.g. "
                       "from any image upscaler.", optional=True),
                *(setting(IFIISettings, name, f"if_ii_{name}", optional=True) for name in ("steps", "guidance",
                                                                                          "noise_level"))]

    @classmethod
    def size_out(cls, view):
        return both(view.size_of("frames"), view.value("scale"), lambda size, s: (size[0] * s, size[1] * s))

    @classmethod
    def execute(cls, model, cond, frames, if_ii=None, first_frame=None, **values):
        require_stage_inputs(model, cond, "show-1-sr1")
        video = image_to_video(frames, "frames")
        settings = cls.settings(SR1Settings, values)
        height, width = video.shape[-2] * settings.scale, video.shape[-1] * settings.scale
        device = comfy.compute_device()
        memory = {id(model.stage.unet): sr1_memory(model.stage.unet, settings, (video.shape[2], height, width), device)}
        ctx_models = [model]
        first = None
        if first_frame is not None:
            image = image_to_video(first_frame[:1], "first_frame")
            if image.shape[-2] * width != image.shape[-1] * height:
                comfy.warn(f"first_frame: {image.shape[-1]}x{image.shape[-2]} is stretched to {width}x{height} (another "
                           "aspect ratio); give a first frame of the output's aspect to avoid it")
            first = fit(image, height, width, "stretch")[:, :, 0]
        elif if_ii is not None:
            require_input(if_ii, Show1Model, "if_ii", "IF-II-L-v1.0 from Show1ModelLoader")
            if if_ii.kind is not StageKind.IF_II:
                raise InputError(f"if_ii: got {if_ii.stage.label}, but this input takes IF-II-L-v1.0; load that stage "
                                 "folder")
            if_ii_settings = cls.settings(IFIISettings, values, seed=settings.seed)
            first = IFIIUpscale(if_ii.stage, if_ii_settings)
            memory[id(if_ii.stage.unet)] = if_ii_memory(if_ii.stage.unet, if_ii_settings, (1, height, width), device)
            ctx_models.append(if_ii)
        out = super_resolve_pixels(model.stage, cond.require("t5", "pixel super-resolution"), video, settings,
                                   run_context(*ctx_models, memory=memory), first)
        return (video_to_image(out),)
