"""The two denoising loops every stage shares, over any scheduler the stage folder names.

* `sample_pixels`: the pixel UNets, which predict noise and a learned variance (keyframes, pixel
  interpolation, IF-II, sr1). Classifier-free guidance acts on the noise only; the variance comes
  from the positive branch. Independent windows run as chains of one batch.
* `sample_latents`: the latent video UNet (sr2, latent interpolation), with an optional hook that
  edits the latents after every step (used to re-impose anchor frames).

Both take the UNet through a denoiser that batches the guidance pair into one call (split where
the activation budget says so) and checks for cancellation before every UNet call, and both report
every step to a `Progress`. Videos are `(B, C, F, H, W)`, kept in float32 on the compute device;
only the UNet runs in its compute dtype. Noise is always drawn on the CPU in float32, so a seed
gives the same video on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from einops import rearrange

from .budget import activation_budget, unet_call_bytes
from .context import Progress, RunContext
from .schedulers import learns_variance
from .schedulers import step as scheduler_step


def randn(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def guidance_rows(videos: int, guided: bool) -> torch.Tensor:
    """Text rows of the model batch: [negative x videos, positive x videos] when guided."""
    if guided:
        return torch.cat([torch.zeros(videos, dtype=torch.long), torch.ones(videos, dtype=torch.long)])
    return torch.ones(videos, dtype=torch.long)


def videos_per_call(unet: torch.nn.Module, shape: tuple[int, int, int], rows: int, device: torch.device) -> int:
    """Videos (of `shape`: frames, height, width) of a batch of `rows` that go through the UNet at
    once: all of them, unless the activation budget of the device says fewer."""
    fit = activation_budget(device, unet) // max(1, unet.activation_elements(*shape))
    return max(1, min(rows, fit))


def call_memory(unet: torch.nn.Module, shape: tuple[int, int, int], rows: int, device: torch.device) -> int:
    """Peak activation bytes of the largest UNet call of a stage that denoises `rows` videos of
    `shape` (guidance pair and windows): the calls `videos_per_call` makes."""
    return unet_call_bytes(unet, *shape, videos=videos_per_call(unet, shape, rows, device))


def guided_rows(videos: int, guidance: float) -> int:
    """Rows of the UNet batch of `videos` videos: twice as many with classifier-free guidance."""
    return videos * (2 if guidance > 1.0 else 1)


class Denoiser:
    """A UNet evaluated with batched classifier-free guidance on `device`.

    `text` is the (2, 77, D) [negative, positive] pair shared by every video of a batch. Guidance
    acts on the first `unet.noise_channels` output channels; the rest (the pixel UNets' learned
    variance) are taken from the positive branch. How many videos go through the UNet at once is
    decided at the first call, from the device and the shape alone (`videos_per_call`), and kept for
    the whole stage; the guidance rows and each step's timestep are made on the device once.
    """

    def __init__(self, unet: torch.nn.Module, text: torch.Tensor, guidance: float, ctx: RunContext,
                 device: torch.device, positive: tuple[int, ...] | None = None):
        """`text`: (T, 77, D), or (T, F, 77, D) with a text per frame; row 0 is the negative, and
        `positive` names each video's positive row (default: row 1 for every video)."""
        self.unet, self.ctx, self.device = unet, ctx, device
        self.guided = guidance > 1.0
        self.guidance = guidance
        self.text = unet.prepare_text(text.to(device, unet.compute_dtype))
        self.positive = positive
        self.per_call: int | None = None
        self.rows: dict[int, torch.Tensor] = {}
        self.timestep: tuple[int | float, torch.Tensor] | None = None

    def plan(self, x: torch.Tensor, rows: int) -> int:
        if self.per_call is None:
            self.per_call = videos_per_call(self.unet, tuple(x.shape[2:]), rows, self.device)
        return self.per_call

    def guidance_rows(self, videos: int) -> torch.Tensor:
        if videos not in self.rows:
            rows = guidance_rows(videos, self.guided)
            if self.positive is not None:
                positive = torch.tensor(self.positive, dtype=torch.long)
                rows = torch.cat([torch.zeros(videos, dtype=torch.long), positive]) if self.guided else positive
            self.rows[videos] = rows.to(self.device)
        return self.rows[videos]

    def timestep_tensor(self, t: int | float) -> torch.Tensor:
        if self.timestep is None or self.timestep[0] != t:
            self.timestep = (t, torch.tensor([t], device=self.device))
        return self.timestep[1]

    def __call__(self, x_in: torch.Tensor, t: int, class_labels: torch.Tensor | None = None,
                 frames: slice | None = None) -> torch.Tensor:
        """Guided prediction (B, C_out, F, H, W), float32; `frames`: which frames of the video `x_in`
        is (a window), for a text per frame."""
        x = x_in.to(self.device, self.unet.compute_dtype)
        text = self.text if frames is None else self.text.frames(frames)
        rows = self.guidance_rows(x.shape[0])
        labels = class_labels.to(self.device) if class_labels is not None else None
        if self.guided:
            x = torch.cat([x, x])
            labels = torch.cat([labels, labels]) if labels is not None else None
        outs = []
        step = self.plan(x, len(rows))
        timestep = self.timestep_tensor(t)
        for s in range(0, len(rows), step):
            part = slice(s, s + step)
            self.ctx.stop_if_cancelled()
            outs.append(self.unet(x[part], timestep, class_labels=labels[part] if labels is not None else None,
                                  text=text.select(rows[part])))
        out = torch.cat(outs).float()
        if not self.guided:
            return out
        neg, pos = out.chunk(2)
        c = self.unet.noise_channels
        eps = neg[:, :c] + self.guidance * (pos[:, :c] - neg[:, :c])
        return torch.cat([eps, pos[:, c:]], dim=1)


def fold(video: torch.Tensor) -> torch.Tensor:
    """Frames folded into the batch as b * F + f."""
    return rearrange(video, "b c f h w -> (b f) c h w")


def unfold(frames: torch.Tensor, b: int) -> torch.Tensor:
    return rearrange(frames, "(b f) c h w -> b c f h w", b=b)


@dataclass
class Chain:
    """One independent sampling chain of a batch: its scheduler, its generator (the step noise of
    stochastic schedulers) and the videos of the batch it owns. Windows that the published script
    runs as separate pipeline calls, each re-seeded, are separate chains of one batch."""

    scheduler: object
    generator: torch.Generator | None
    rows: slice


def sample_pixels(denoiser: Denoiser, chains: list[Chain], x: torch.Tensor, schedule: list[int],
                  progress: Progress, condition: torch.Tensor | None = None,
                  class_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Run the chains from `x` (x_T, already scaled) over `schedule` and return the final sample.

    As in the published pixel pipelines: `condition` (B, c, F, H, W) is concatenated after x_t on
    the channel axis and the whole input goes through `scale_model_input`; the learned-variance
    channels reach the scheduler only when its variance_type is learned; each scheduler steps on
    frames folded into the batch (so dynamic thresholding acts per frame).
    """
    channels = x.shape[1]
    learned = learns_variance(chains[0].scheduler)
    for t in schedule:
        x_in = x if condition is None else torch.cat([x, condition], dim=1)
        x_in = torch.cat([c.scheduler.scale_model_input(x_in[c.rows], t) for c in chains])
        out = denoiser(x_in, t, class_labels)
        if not learned:
            out = out[:, :channels]
        samples, previews = [], []
        for c in chains:
            videos = len(range(*c.rows.indices(x.shape[0])))
            prev, x0 = scheduler_step(c.scheduler, fold(out[c.rows]), t, fold(x[c.rows]), c.generator)
            samples.append(unfold(prev, videos))
            previews.append(unfold(prev if x0 is None else x0, videos))
        x = torch.cat(samples)
        progress.step(torch.cat(previews))
    return x


def windows(frames: int, window: int, step: int) -> list[slice]:
    """Windows of `window` frames starting every `step` frames, the last one aligned to the end so
    that every frame is covered; one window when the video is shorter."""
    if frames <= window:
        return [slice(0, frames)]
    starts = list(range(0, frames - window + 1, step))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return [slice(s, s + window) for s in starts]


def blend_weights(length: int, ramp_in: int, ramp_out: int) -> torch.Tensor:
    """Per-frame weights of one window: linear ramps over its overlaps, 1 elsewhere (never 0)."""
    w = torch.ones(length)
    if ramp_in:
        w[:ramp_in] = torch.arange(1, ramp_in + 1, dtype=torch.float32) / (ramp_in + 1)
    if ramp_out:
        w[length - ramp_out:] = torch.minimum(
            w[length - ramp_out:], torch.arange(ramp_out, 0, -1, dtype=torch.float32) / (ramp_out + 1))
    return w


class WindowedDenoiser:
    """Evaluates a latent denoiser over overlapping frame windows and blends the predictions.

    Each window sees only its frames, so the UNet's memory is set by the window, not by the video;
    in overlaps the predictions are mixed with linear ramps, so there is no seam between windows.
    """

    def __init__(self, denoiser: "Denoiser", window: int, overlap: int):
        self.denoiser, self.window, self.overlap = denoiser, window, overlap

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        frames = x.shape[2]
        parts = windows(frames, self.window, self.window - self.overlap)
        if len(parts) == 1:
            return self.denoiser(x, t, frames=slice(0, frames))
        total = torch.zeros_like(x)
        weight = torch.zeros(frames, dtype=x.dtype, device=x.device)
        for i, win in enumerate(parts):
            ramp_in = parts[i - 1].stop - win.start if i > 0 else 0
            ramp_out = win.stop - parts[i + 1].start if i + 1 < len(parts) else 0
            w = blend_weights(win.stop - win.start, ramp_in, ramp_out).to(x.device, x.dtype)
            total[:, :, win] += self.denoiser(x[:, :, win], t, frames=win).to(x.dtype) * w[:, None, None]
            weight[win] += w
        return total / weight[:, None, None]


def sample_latents(denoiser: Callable[[torch.Tensor, int], torch.Tensor], scheduler, x: torch.Tensor,
                   schedule: list[int], progress: Progress, generator: torch.Generator | None = None,
                   after_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Run the scheduler over `schedule` from latents `x` (B, C, F, h, w), stepping on frames folded
    into the batch as the published sr2 pipeline does. `after_step(x, i)` may edit the latents
    after step i (e.g. re-impose anchors at the next noise level)."""
    b = x.shape[0]
    for i, t in enumerate(schedule):
        eps = denoiser(scheduler.scale_model_input(x, t), t)
        prev, x0 = scheduler_step(scheduler, fold(eps), t, fold(x), generator)
        x = unfold(prev, b)
        if after_step is not None:
            x = after_step(x, i)
        progress.step(x if x0 is None else unfold(x0, b))
    return x
