"""Pixel super-resolution: show-1-sr1 over windows of frames, its first frame from DeepFloyd IF-II.

sr1 denoises a window of frames conditioned on the bilinear upscale of the low-resolution frames,
noised to `noise_level`. The condition of the window's first frame is replaced by a clean
high-resolution frame: IF-II's x4 upscale of frame 0 for the first window, and the frame already
produced by the previous window for every later one, which chains the windows together.

Windows hold 8 frames with stride 7 as published. The published loop leaves trailing frames black
unless (frames - 8) is a multiple of 7; here a last window aligned to the end covers them, and the
published window positions are unchanged where they already cover the video (29 frames).

IF-II is gated on the hub. Without it, pass your own first frame (any sharp high-resolution image
of frame 0) or let the stage fall back to the bilinear upscale of frame 0. The fallback costs
detail: the whole chain of windows starts from a soft frame, so the video is less sharp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from .. import rules
from ..context import Progress, RunContext
from ..errors import InputError, require
from ..memory import Offload
from ..sampling import Chain, Denoiser, call_memory, guided_rows, randn, sample_pixels, windows
from ..schedulers import timesteps
from ..settings import IFIISettings, SR1Settings
from ..stage import Stage, StageKind
from ..storyboard import nearest_shots, shot_text
from ..text import PromptEmbeddings
from .common import (
    finite_output,
    make_generator,
    refuse_non_finite,
    require_kind,
    validate_embeddings,
    validate_model_size,
    validate_video,
)

IF_II_SCALE = 4  # IF-II-L is a x4 upscaler


@dataclass
class IFIIUpscale:
    """sr1's first frame from IF-II: the loaded IF-II stage and its settings (the published script
    seeds it with sr1's seed)."""

    stage: Stage
    settings: IFIISettings | None = None


def upscale(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-frame bilinear upscale with align_corners=True, (B, C, F, h, w) -> (B, C, F, H, W)."""
    b = video.shape[0]
    frames = F.interpolate(rearrange(video, "b c f h w -> (b f) c h w"), (height, width), mode="bilinear",
                           align_corners=True)
    return rearrange(frames, "(b f) c h w -> b c f h w", b=b)


@dataclass(frozen=True)
class WindowCall:
    """What one super-resolution call needs besides its model and frames: the output size, the
    sampling settings (steps, guidance, noise level), the generator drawing its noise, its guidance
    text, and the clean first frame that replaces the condition of frame 0, if any."""

    size: tuple[int, int]
    settings: SR1Settings | IFIISettings
    generator: torch.Generator
    text: torch.Tensor  # the guidance text: (2, 77, D), or (2, F, 77, D) with a text per frame
    first_frame: torch.Tensor | None = None


def sr_window(model: Stage, video: torch.Tensor, call: WindowCall, progress: Progress, ctx: RunContext,
              device: torch.device) -> torch.Tensor:
    """One super-resolution call on a low-resolution video (B, 3, F, h, w), on `device`.

    Draws, in order: x_T (B, 3, F, H, W), the condition noise (B, 3, F, H, W), then the scheduler's
    step noise ((B*F, 3, H, W) per DDPM step). With F = 1 this is exactly the IF-II image pipeline.
    """
    b, _, f, _, _ = video.shape
    height, width = call.size
    s, generator = call.settings, call.generator
    scheduler = model.scheduler()
    schedule = timesteps(scheduler, s.steps)
    x = randn((b, 3, f, height, width), generator) * scheduler.init_noise_sigma
    condition = upscale(video.float().cpu(), height, width)
    levels = torch.full((b,), s.noise_level, dtype=torch.long)
    condition = model.noising_scheduler().add_noise(condition, randn(condition.shape, generator), levels)
    if call.first_frame is not None:
        condition[:, :, :1] = call.first_frame.float().cpu().reshape(b, 3, 1, height, width)
    denoiser = Denoiser(model.unet, call.text, s.guidance, ctx, device)
    return sample_pixels(denoiser, [Chain(scheduler, generator, slice(None))], x.to(device), schedule, progress,
                         condition=condition.to(device), class_labels=levels).float().cpu()


def run_if_ii(up: IFIIUpscale, embeds: PromptEmbeddings, image: torch.Tensor, size: tuple[int, int], seed: int,
              progress: Progress, ctx: RunContext) -> torch.Tensor:
    with ctx.use(up.stage.unet) as device:
        call = WindowCall(size, up.settings, make_generator(seed), embeds.shot(0).pair())
        return sr_window(up.stage, image.unsqueeze(2), call, progress, ctx, device)[:, :, 0]


def validate_if_ii(up: IFIIUpscale, embeds: PromptEmbeddings, height: int, width: int) -> IFIISettings:
    require(isinstance(up, IFIIUpscale), f"first_frame: expected an image tensor or an IF-II upscale, got "
                                         f"{type(up).__name__}")
    settings = (up.settings or IFIISettings()).validate(lambda n: f"if_ii_{n}")
    require_kind(up.stage, StageKind.IF_II, "if_ii")
    validate_embeddings(up.stage, embeds)
    validate_model_size(up.stage, height, width)
    return settings


@torch.inference_mode()
def upscale_first_frame(model: Stage, embeds: PromptEmbeddings, image: torch.Tensor,
                        settings: IFIISettings = IFIISettings(), ctx: RunContext | None = None) -> torch.Tensor:
    """DeepFloyd IF-II x4 upscale of images (B, 3, h, w) -> (B, 3, 4h, 4w) in [-1, 1], float32 on the CPU."""
    ctx = ctx or RunContext()
    require(isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[1] == 3 and image.numel() > 0,
            f"image: expected (B, 3, H, W) in [-1, 1], got {tuple(getattr(image, 'shape', ())) or type(image).__name__}")
    refuse_non_finite(image, "image")
    height, width = image.shape[2] * IF_II_SCALE, image.shape[3] * IF_II_SCALE
    s = validate_if_ii(IFIIUpscale(model, settings), embeds, height, width)
    up = IFIIUpscale(model, s)
    progress = ctx.progress("if_ii", model.schedule_length(s.steps))
    return finite_output(run_if_ii(up, embeds, image, (height, width), s.seed, progress, ctx), "IF-II")


def require_scaled_size(model: Stage, h: int, w: int, scale: int) -> None:
    """The output frames (the input's x `scale`) are a size the model takes; the fix is to resize the
    input frames, since that is what the caller controls."""
    multiple = model.unet.size_multiple
    if (h * scale) % multiple or (w * scale) % multiple:
        step = multiple // math.gcd(multiple, scale)
        fit_h, fit_w = (max(step, round(n / step) * step) for n in (h, w))
        raise InputError(f"frames: {w}x{h} frames x scale {scale} give {w * scale}x{h * scale}, but {model.kind.label} "
                         f"takes multiples of {multiple}; resize the frames to multiples of {step} (e.g. "
                         f"{fit_w}x{fit_h}, with an image resize node) or change the scale")


@torch.inference_mode()
def super_resolve_pixels(model: Stage, embeds: PromptEmbeddings, video: torch.Tensor,
                         settings: SR1Settings = SR1Settings(), ctx: RunContext | None = None,
                         first_frame: torch.Tensor | IFIIUpscale | None = None) -> torch.Tensor:
    """sr1 over windows: (B, 3, F, h, w) -> (B, 3, F, h x scale, w x scale) in [-1, 1], float32 on the CPU.

    The first frame's condition is `first_frame`: an image (B, 3, H, W) at the output size, IF-II's
    upscale of frame 0 (an `IFIIUpscale`), or, when None, the bilinear upscale of frame 0 (softer
    result; see the module docstring). Every sr1 window call re-seeds with the seed, as the
    published script does. The first-frame conditions and window ends are recorded (`sr1_*`).
    """
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.SR1)
    validate_embeddings(model, embeds)
    validate_video(video, "video")
    b, _, frames, h, w = video.shape
    height, width = h * s.scale, w * s.scale
    require_scaled_size(model, h, w, s.scale)
    for name, value in (("height x scale", height), ("width x scale", width)):
        rules.OUTPUT_SIZE.validate(name, value)
    if_ii = first_frame if isinstance(first_frame, IFIIUpscale) else None
    if if_ii is not None:
        if_ii = IFIIUpscale(if_ii.stage, validate_if_ii(if_ii, embeds, height, width))
    elif first_frame is not None:
        require(isinstance(first_frame, torch.Tensor) and first_frame.dim() == 4 and first_frame.shape[0] == b
                and first_frame.shape[1] == 3 and tuple(first_frame.shape[-2:]) == (height, width),
                f"first_frame: shape {tuple(getattr(first_frame, 'shape', ()))} does not match the output frames "
                f"({b}, 3, {height}, {width}); resize it to the output size")
        refuse_non_finite(first_frame, "first_frame")
    parts = windows(frames, s.window, s.stride)
    shots = nearest_shots(frames, embeds.shots)  # each frame's shot, across window boundaries too
    progress = ctx.progress("sr1", model.schedule_length(s.steps) * len(parts)
                            + (if_ii.stage.schedule_length(if_ii.settings.steps) if if_ii else 0))
    video = video.float().cpu()
    if if_ii is not None:
        first_frame = run_if_ii(if_ii, embeds, video[:, :, 0], (height, width), if_ii.settings.seed, progress, ctx)
    elif first_frame is None:
        first_frame = upscale(video[:, :, :1], height, width)[:, :, 0]
    out = torch.zeros(b, 3, frames, height, width)
    conds, lasts = [], []
    with ctx.use(model.unet):
        for part in parts:
            cond = first_frame if part.start == 0 else out[:, :, part.start]
            text = embeds.pair() if embeds.shots == 1 else embeds.frame_texts(shot_text(embeds.positive, shots[part]))
            call = WindowCall((height, width), s, make_generator(s.seed), text, cond)
            with ctx.use(model.unet, scope=Offload.WINDOW) as device:
                res = sr_window(model, video[:, :, part], call, progress, ctx, device)
            conds.append(cond.reshape(b, 3, 1, height, width).clone())
            lasts.append(res[:, :, -1].clone())
            out[:, :, part] = res
    ctx.emit("if_ii_first_frame", first_frame)
    ctx.emit("sr1_window_first_frame_conds", torch.stack(conds))
    ctx.emit("sr1_window_last_frames", torch.stack(lasts))
    return finite_output(out, "sr1")


def sr1_memory(unet: torch.nn.Module, settings: SR1Settings, shape: tuple[int, int, int],
               device: torch.device) -> int:
    """Peak activation bytes of its largest UNet call for an output of `shape`: one guided window of
    at most `window` frames, as the device allows."""
    frames, height, width = shape
    return call_memory(unet, (min(frames, settings.window), height, width), guided_rows(1, settings.guidance), device)


def if_ii_memory(unet: torch.nn.Module, settings: IFIISettings, shape: tuple[int, int, int],
                 device: torch.device) -> int:
    """Peak activation bytes of IF-II's call: the guided pair of the first frame at sr1's output size."""
    return call_memory(unet, (1, *shape[1:]), guided_rows(1, settings.guidance), device)


def cascade_step(models, state, settings, ctx: RunContext):
    """The cascade's sr1 step (`cascade.Step`): IF-II upscales the first frame when it is loaded."""
    if_ii = models.stages.get("if_ii")
    first = IFIIUpscale(if_ii, settings.stage("if_ii")) if if_ii is not None else None
    video = super_resolve_pixels(models.stage("sr1"), state.t5, state.video, settings.stage("sr1"), ctx, first)
    return state.after("sr1", video=video)
