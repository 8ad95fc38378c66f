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

import torch
import torch.nn.functional as F

from .. import rules
from ..errors import check
from ..loading import Stage, StageKind
from ..memory import Offload, Placement
from ..progress import CancelCheck, Progress, StepCallback
from ..sampling import Chain, Denoiser, randn, sample_pixels
from ..schedulers import timesteps
from ..text import PromptEmbeddings
from .common import check_embeddings, check_finite, check_output, check_size, check_steps, check_video, \
    make_generator, placement_for, require_kind

WINDOW, STRIDE = 8, 7


def window_starts(frames: int, window: int = WINDOW, stride: int = STRIDE) -> list[int]:
    """Published starts range(0, frames - window + 1, stride), plus one aligned to the end if frames
    would be left over; a single window when the video is shorter than one."""
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return starts


def upscale(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-frame bilinear upscale with align_corners=True, (B, C, F, h, w) -> (B, C, F, H, W)."""
    b, c, f, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * f, c, h, w)
    frames = F.interpolate(frames, (height, width), mode="bilinear", align_corners=True)
    return frames.reshape(b, f, c, height, width).transpose(1, 2)


def sr_window(model: Stage, embeds: PromptEmbeddings, video: torch.Tensor, height: int, width: int, steps: int,
              guidance: float, noise_level: int, generator: torch.Generator, progress: Progress,
              first_frame: torch.Tensor | None = None) -> torch.Tensor:
    """One super-resolution call on a low-resolution video (B, 3, F, h, w), on the UNet's device.

    Draws, in order: x_T (B, 3, F, H, W), the condition noise (B, 3, F, H, W), then the scheduler's
    step noise ((B*F, 3, H, W) per DDPM step). With F = 1 this is exactly the IF-II image pipeline.
    """
    b, _, f, _, _ = video.shape
    device = next(model.unet.parameters()).device
    scheduler = model.scheduler()
    schedule = timesteps(scheduler, steps)
    x = randn((b, 3, f, height, width), generator) * scheduler.init_noise_sigma
    condition = upscale(video.float().cpu(), height, width)
    levels = torch.full((b,), noise_level, dtype=torch.long)
    condition = model.noising_scheduler().add_noise(condition, randn(condition.shape, generator), levels)
    if first_frame is not None:
        condition[:, :, :1] = first_frame.float().cpu().reshape(b, 3, 1, height, width)
    denoiser = Denoiser(model.unet, embeds.pair(), guidance, noise_channels=3)
    return sample_pixels(denoiser, [Chain(scheduler, generator, slice(None))], x.to(device), schedule, progress,
                         condition=condition.to(device), class_labels=levels).float().cpu()


@torch.inference_mode()
def upscale_first_frame(model: Stage, embeds: PromptEmbeddings, image: torch.Tensor, height: int | None = None,
                        width: int | None = None, steps: int = 70, guidance: float = 4.0, noise_level: int = 150,
                        seed: int | torch.Generator = 0, placement: Placement | None = None,
                        callback: StepCallback | None = None, check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """DeepFloyd IF-II x4 upscale of images (B, 3, h, w) -> (B, 3, H, W) in [-1, 1], float32 on the CPU."""
    require_kind(model, StageKind.IF_II)
    check_embeddings(model, embeds)
    check(isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[1] == 3,
          f"image: expected (B, 3, H, W) in [-1, 1], got {getattr(image, 'shape', type(image).__name__)}")
    check_finite(image, "image")
    height = image.shape[2] * 4 if height is None else height
    width = image.shape[3] * 4 if width is None else width
    check_size(model, height, width)
    check_steps(steps, guidance)
    rules.NOISE_LEVEL.check("noise_level", noise_level)
    progress = Progress("if_ii", model.schedule_length(steps), callback, check_cancel)
    with placement_for(model.unet, placement).use(model.unet):
        out = sr_window(model, embeds, image.unsqueeze(2), height, width, steps, guidance, noise_level,
                        make_generator(seed), progress)
    return check_output(out[:, :, 0], "IF-II")


@torch.inference_mode()
def super_resolve_pixels(model: Stage, embeds: PromptEmbeddings, video: torch.Tensor, height: int | None = None,
                         width: int | None = None, steps: int = 125, guidance: float = 7.0, noise_level: int = 250,
                         seed: int = 0, first_frame: torch.Tensor | None = None, if_ii: Stage | None = None,
                         if_ii_steps: int = 70, if_ii_guidance: float = 4.0, if_ii_noise_level: int = 150,
                         if_ii_seed: int | None = None,
                         window: int = WINDOW, stride: int = STRIDE, placement: Placement | None = None,
                         callback: StepCallback | None = None, check_cancel: CancelCheck | None = None,
                         record=None) -> torch.Tensor:
    """sr1 over windows: (B, 3, F, h, w) -> (B, 3, F, H, W) in [-1, 1] (default x4), float32 on the CPU.

    The first frame's condition is, in order of preference: `first_frame` (B, 3, H, W) given by the
    caller, IF-II's upscale of frame 0 when `if_ii` is given, else the bilinear upscale of frame 0
    (softer result; see the module docstring). Every sr1 window call re-seeds with `seed`, and so does
    IF-II unless `if_ii_seed` is given, as the published script does.
    """
    require_kind(model, StageKind.SR1)
    check_embeddings(model, embeds)
    check_video(video, "video")
    b, _, frames, h, w = video.shape
    height = h * 4 if height is None else height
    width = w * 4 if width is None else width
    check_size(model, height, width)
    check_steps(steps, guidance)
    rules.NOISE_LEVEL.check("noise_level", noise_level)
    if first_frame is None and if_ii is not None:
        check_steps(if_ii_steps, if_ii_guidance, ("if_ii_steps", "if_ii_guidance"))
        rules.NOISE_LEVEL.check("if_ii_noise_level", if_ii_noise_level)
        if if_ii_seed is not None:
            rules.SEED.check("if_ii_seed", if_ii_seed)
    check(isinstance(window, int) and window >= 2 and isinstance(stride, int) and 1 <= stride < window,
          f"window/stride: {window}/{stride} must satisfy window >= 2 and 1 <= stride < window (published: 8/7)")
    if first_frame is not None:
        check(isinstance(first_frame, torch.Tensor) and first_frame.shape[0] == b and first_frame.shape[1] == 3
              and tuple(first_frame.shape[-2:]) == (height, width),
              f"first_frame: shape {tuple(getattr(first_frame, 'shape', ()))} does not match the output frames "
              f"({b}, 3, {height}, {width}); resize it to the output size")
        check_finite(first_frame, "first_frame")
    elif if_ii is not None:
        require_kind(if_ii, StageKind.IF_II, "if_ii")
    starts = window_starts(frames, window, stride)
    run_if_ii = first_frame is None and if_ii is not None
    progress = Progress("sr1", model.schedule_length(steps) * len(starts)
                        + (if_ii.schedule_length(if_ii_steps) if run_if_ii else 0), callback, check_cancel)
    place = placement_for(model.unet, placement)
    video = video.float().cpu()
    if run_if_ii:
        with placement_for(if_ii.unet, placement).use(if_ii.unet):
            first_frame = sr_window(if_ii, embeds, video[:, :, :1], height, width, if_ii_steps, if_ii_guidance,
                                    if_ii_noise_level, make_generator(seed if if_ii_seed is None else if_ii_seed),
                                    progress)[:, :, 0]
    elif first_frame is None:
        first_frame = upscale(video[:, :, :1], height, width)[:, :, 0]
    out = torch.zeros(b, 3, frames, height, width)
    conds, lasts = [], []
    with place.use(model.unet):
        for start in starts:
            progress.check()
            length = min(window, frames)
            cond = first_frame if start == 0 else out[:, :, start]
            with place.use(model.unet, scope=Offload.WINDOW):
                res = sr_window(model, embeds, video[:, :, start:start + length], height, width, steps, guidance,
                                noise_level, make_generator(seed), progress, first_frame=cond)
            conds.append(cond.reshape(b, 3, 1, height, width).clone())
            lasts.append(res[:, :, -1].clone())
            out[:, :, start:start + length] = res
    if record is not None:
        record("if_ii_first_frame", first_frame)
        record("sr1_window_first_frame_conds", torch.stack(conds))
        record("sr1_window_last_frames", torch.stack(lasts))
    return check_output(out, "sr1")
