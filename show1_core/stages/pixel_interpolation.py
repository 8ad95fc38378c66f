"""Pixel-space frame interpolation with show-1-interpolation: K keyframes -> 3(K-1)+K frames.

Each pair of neighbouring keyframes forms a 5-frame window [k_i, ?, ?, ?, k_i+1] that the model
fills in, conditioned on the linear blend between the pair and a mask marking the two known
frames. The windows depend only on the keyframes, so they run as one batch per denoising step
(in chunks of windows where memory says so). The published script re-seeds the same generator
for every window and reuses one initial noise tensor, so every window sees the same noise: one
draw per step serves all windows of a batch.
Keyframes may come from Show-1 or from anywhere else (an image model, a photo), in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .. import rules
from ..context import RunContext
from ..errors import InputError
from ..sampling import Chain, Denoiser, call_memory, guided_rows, randn, sample_pixels, videos_per_call
from ..schedulers import timesteps
from ..settings import InterpolationSettings
from ..stage import Stage, StageKind
from ..storyboard import blended_text, transition_weights
from ..text import PromptEmbeddings
from .common import (
    finite_output,
    make_generator,
    require_kind,
    validate_embeddings,
    validate_model_size,
    validate_video,
)

WINDOW = rules.INTERPOLATION_WINDOW  # keyframe, three new frames, keyframe


def interpolated_length(keyframes: int) -> int:
    return rules.interpolated_frames(keyframes, rules.PIXEL_NEW_PER_GAP)


def window_conditions(keyframes: torch.Tensor) -> torch.Tensor:
    """Condition of every window, (W*B, 4, 5, H, W) window-major: the time blend of its two
    keyframes (trilinear, align_corners) and a mask that is 1 on the first and last frame."""
    b, c, k, h, w = keyframes.shape
    pairs = torch.stack([keyframes[:, :, :-1], keyframes[:, :, 1:]], dim=3)  # (B, C, W, 2, H, W)
    pairs = rearrange(pairs, "b c n two h w -> (n b) c two h w")
    blend = F.interpolate(pairs, (WINDOW, h, w), mode="trilinear", align_corners=True)
    mask = torch.zeros((k - 1) * b, 1, WINDOW, h, w, dtype=blend.dtype)
    mask[:, :, [0, -1]] = 1
    return torch.cat([blend, mask], dim=1)


def stitch(window_outputs: torch.Tensor, b: int) -> torch.Tensor:
    """Write window i to frames 4i..4i+4, later windows overwriting the shared frame, as published."""
    wb, c, f, h, w = window_outputs.shape
    windows = wb // b
    video = torch.zeros(b, c, interpolated_length(windows + 1), h, w, dtype=window_outputs.dtype)
    for i in range(windows):
        video[:, :, (WINDOW - 1) * i:(WINDOW - 1) * i + WINDOW] = window_outputs[i * b:(i + 1) * b]
    return video


def window_texts(embeds: PromptEmbeddings) -> torch.Tensor:
    """The guidance text of a storyboard's windows, (1 + windows, 5, 77, D): the negative, then per
    window the blend from its first keyframe's prompt to its last's (`storyboard`)."""
    blends = []
    for i in range(embeds.shots - 1):
        pair = embeds.positive[i:i + 2]
        blends.append(blended_text(pair, transition_weights(WINDOW, [0.0, WINDOW - 1.0])))
    return embeds.frame_texts(*blends)


@torch.inference_mode()
def interpolate_keyframes(model: Stage, embeds: PromptEmbeddings, keyframes: torch.Tensor,
                          settings: InterpolationSettings = InterpolationSettings(),
                          ctx: RunContext | None = None) -> torch.Tensor:
    """Interpolate keyframes (B, 3, K, H, W) in [-1, 1] to (B, 3, 4K-3, H, W), float32 on the CPU.

    Windows run as one batch, or in chunks of `max_windows` (default: as many as the activation
    budget allows), each chunk through all steps, so memory does not grow with the keyframe count;
    the result does not depend on the chunking. The window inputs and the raw window outputs are
    recorded (`interp_*`).
    """
    ctx = ctx or RunContext()
    s = settings.validate()
    require_kind(model, StageKind.INTERPOLATION)
    validate_embeddings(model, embeds)
    validate_video(keyframes, "keyframes", min_frames=rules.MIN_KEYFRAMES)
    b, _, k, h, w = keyframes.shape
    validate_model_size(model, h, w)
    if embeds.shots > 1 and embeds.shots != k:
        raise InputError(f"prompt: {embeds.shots} prompts for {k} keyframes; give one prompt per keyframe (one per "
                         "line), or a single prompt")
    windows = k - 1
    keyframes = keyframes.float().cpu()
    init_noise = randn((b, 3, WINDOW, h, w), make_generator(s.seed))
    if ctx.record is not None:
        inputs = torch.zeros(windows, b, 3, WINDOW, h, w)
        inputs[:, :, :, 0] = rearrange(keyframes[:, :, :-1], "b c n h w -> n b c h w")
        inputs[:, :, :, -1] = rearrange(keyframes[:, :, 1:], "b c n h w -> n b c h w")
        ctx.emit("interp_init_noise", init_noise)
        ctx.emit("interp_window_inputs", inputs)

    schedule = timesteps(model.scheduler(), s.steps)

    def sample(device: torch.device) -> list[torch.Tensor]:  # its device tensors die before the scope ends
        pair = 2 if s.guidance > 1 else 1
        chunk = max(1, videos_per_call(model.unet, (WINDOW, h, w), windows * b * pair, device) // (b * pair))
        starts = range(0, windows, min(chunk, s.max_windows or chunk))
        progress = ctx.progress("interpolation", len(schedule) * len(starts))
        denoiser = Denoiser(model.unet, embeds.pair(), s.guidance, ctx, device) if embeds.shots == 1 else None
        outs = []
        for start in starts:
            n = min(starts.step, windows - start)
            if embeds.shots > 1:  # each window's frames move from its first keyframe's prompt to its last's
                positive = tuple(1 + start + i for i in range(n) for _ in range(b))
                denoiser = Denoiser(model.unet, window_texts(embeds), s.guidance, ctx, device, positive)
            # every window is its own chain, its generator re-seeded as the published script re-seeds
            # every window's pipeline call
            chains = [Chain(model.scheduler(), make_generator(s.seed), slice(i * b, (i + 1) * b)) for i in range(n)]
            for chain in chains:
                chain.scheduler.set_timesteps(s.steps)
            x = init_noise.repeat(n, 1, 1, 1, 1).to(device)
            condition = window_conditions(keyframes[:, :, start:start + n + 1]).to(device)
            outs.append(sample_pixels(denoiser, chains, x, schedule, progress, condition=condition).float().cpu())
        return outs

    with ctx.use(model.unet) as device:
        out = torch.cat(sample(device))
    ctx.emit("interp_window_outputs", out.view(windows, b, *out.shape[1:]))
    return finite_output(stitch(out, b), "interpolation")


def interpolation_memory(unet: torch.nn.Module, settings: InterpolationSettings, shape: tuple[int, int, int],
                         device: torch.device) -> int:
    """Peak activation bytes of its largest UNet call for an output of `shape` (4K-3 frames): the
    guided windows batched together, at most `max_windows` of them, as the device allows."""
    frames, h, w = shape
    windows = (frames - 1) // rules.PIXEL_NEW_PER_GAP
    return call_memory(unet, (WINDOW, h, w), guided_rows(min(windows, settings.max_windows or windows), settings.guidance),
                       device)


def cascade_step(models, state, settings, ctx: RunContext):
    """The cascade's interpolation step (`cascade.Step`)."""
    video = interpolate_keyframes(models.stage("interpolation"), state.t5, state.video,
                                  settings.stage("interpolation"), ctx)
    return state.after("interpolation", video=video)
