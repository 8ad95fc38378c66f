"""The two denoising loops every stage shares.

* `sample_pixels`: DDPM with a learned variance range and dynamic thresholding (keyframes, pixel
  interpolation, IF-II, sr1). Classifier-free guidance acts on epsilon only; the variance comes
  from the positive branch.
* `sample_latents`: DDIM with epsilon prediction (sr2, latent interpolation), with an optional
  hook that edits the latents after every step (used to re-impose anchor frames).

Both take the UNet through a denoiser object that batches the guidance pair into one call, and
both report every step to a `Progress` (which also checks for cancellation).
Videos are `(B, C, F, H, W)`, kept in float32 on the compute device; only the UNet runs in the
model's dtype. Noise is always drawn on the CPU in float32, so a seed gives the same video on any
device.
"""

from __future__ import annotations

from typing import Callable

import torch

from .memory import activation_budget, module_device, module_dtype
from .models.pixel_unet import PixelUNet
from .progress import Progress
from .scheduling import ddpm_step, timesteps


def randn(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def guidance_rows(videos: int, guided: bool) -> torch.Tensor:
    """Text rows of the model batch: [negative x videos, positive x videos] when guided."""
    if guided:
        return torch.cat([torch.zeros(videos, dtype=torch.long), torch.ones(videos, dtype=torch.long)])
    return torch.ones(videos, dtype=torch.long)


def videos_per_call(unet: torch.nn.Module, x: torch.Tensor, rows: int, weight: int = 1) -> int:
    """Videos of a guided batch of `rows` videos that go through the UNet at once: all of them,
    unless the activation budget says fewer. `weight` scales a video's cost (the
    latent UNet has wide transformer feed-forwards at every level)."""
    b, _, f, h, w = x.shape
    width = unet.config.block_out_channels[0]
    fit = activation_budget(module_device(unet), module_dtype(unet)) // max(1, f * h * w * width * weight)
    return max(1, min(rows, fit))


class PixelDenoiser:
    """A pixel UNet (Show-1 3D or IF-II 2D) evaluated on a guided batch.

    `text` is the (2, 77, D) [negative, positive] pair shared by all `videos` of the batch.
    Calls larger than the activation budget are split (same arithmetic, less memory).
    """

    def __init__(self, unet: torch.nn.Module, text: torch.Tensor, videos: int, guidance: float):
        self.unet = unet
        self.device, self.dtype = module_device(unet), module_dtype(unet)
        self.guided = guidance > 1.0
        self.guidance = guidance
        self.rows = guidance_rows(videos, self.guided).to(self.device)
        text = text.to(self.device, self.dtype)
        self.is_2d = not isinstance(unet, PixelUNet)
        self.text = text if self.is_2d else unet.prepare_text(text)

    def unet_call(self, x: torch.Tensor, t: int, rows: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        timestep = torch.tensor([t], dtype=torch.long, device=self.device)
        if self.is_2d:
            out = self.unet(x[:, :, 0], timestep, encoder_hidden_states=self.text[rows], class_labels=labels).sample
            return out.unsqueeze(2)
        return self.unet(x, timestep, class_labels=labels, text=self.text.select(rows))

    def __call__(self, x_in: torch.Tensor, t: int, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Guided prediction (B, 2C, F, H, W): epsilon with guidance applied, then the positive variance."""
        x = x_in.to(self.device, self.dtype)
        labels = class_labels.to(self.device) if class_labels is not None else None
        if self.guided:
            x = torch.cat([x, x])
            labels = torch.cat([labels, labels]) if labels is not None else None
        outs = []
        step = videos_per_call(self.unet, x, len(self.rows))
        for s in range(0, len(self.rows), step):
            part = slice(s, s + step)
            outs.append(self.unet_call(x[part], t, self.rows[part], labels[part] if labels is not None else None))
        out = torch.cat(outs).float()
        if not self.guided:
            return out
        neg, pos = out.chunk(2)
        c = out.shape[1] // 2
        eps = neg[:, :c] + self.guidance * (pos[:, :c] - neg[:, :c])
        return torch.cat([eps, pos[:, c:]], dim=1)


def fold(video: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B*F, C, H, W), frames folded into the batch as b * F + f."""
    b, c, f, h, w = video.shape
    return video.transpose(1, 2).reshape(b * f, c, h, w)


def unfold(frames: torch.Tensor, b: int) -> torch.Tensor:
    bf, c, h, w = frames.shape
    return frames.reshape(b, bf // b, c, h, w).transpose(1, 2)


def sample_pixels(denoiser: PixelDenoiser, scheduler, x: torch.Tensor, steps: int,
                  step_noise: Callable[[], torch.Tensor], progress: Progress,
                  condition: torch.Tensor | None = None, class_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Run the DDPM chain from `x` (x_T, already scaled) and return the final sample.

    `condition` (B, c, F, H, W) is concatenated after x_t on the channel axis at every step;
    `step_noise()` returns the variance noise of one step, (B*F, C, H, W), and is called only for
    t > 0, in step order.
    """
    b = x.shape[0]
    for t in timesteps(scheduler, steps):
        x_in = x if condition is None else torch.cat([x, condition], dim=1)
        out = denoiser(x_in, t, class_labels)
        noise = step_noise().to(x.device) if t > 0 else None
        folded, x0 = ddpm_step(scheduler, fold(out), t, fold(x), noise)
        x = unfold(folded, b)
        progress.step(unfold(x0, b))
    return x


LATENT_UNET_WEIGHT = 4


class LatentDenoiser:
    """The latent video UNet (diffusers UNet3DConditionModel) with batched classifier-free guidance."""

    def __init__(self, unet: torch.nn.Module, text: torch.Tensor, guidance: float):
        self.unet = unet
        self.device, self.dtype = module_device(unet), module_dtype(unet)
        self.guided = guidance > 1.0
        self.guidance = guidance
        self.text = text.to(self.device, self.dtype)

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        b = x.shape[0]
        rows = guidance_rows(b, self.guided).to(self.device)
        x_in = x.to(self.device, self.dtype)
        if self.guided:
            x_in = torch.cat([x_in, x_in])
        step = videos_per_call(self.unet, x_in, len(rows), weight=LATENT_UNET_WEIGHT)
        out = torch.cat([self.unet(x_in[s:s + step], t, encoder_hidden_states=self.text[rows[s:s + step]]).sample
                         for s in range(0, len(rows), step)]).float()
        if not self.guided:
            return out
        neg, pos = out.chunk(2)
        return neg + self.guidance * (pos - neg)


def frame_windows(frames: int, window: int, overlap: int) -> list[slice]:
    """Windows of `window` frames overlapping by `overlap`, the last one aligned to the end."""
    if frames <= window:
        return [slice(0, frames)]
    stride = window - overlap
    starts = list(range(0, frames - window + 1, stride))
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

    def __init__(self, denoiser: Callable[[torch.Tensor, int], torch.Tensor], window: int, overlap: int):
        self.denoiser, self.window, self.overlap = denoiser, window, overlap

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        frames = x.shape[2]
        windows = frame_windows(frames, self.window, self.overlap)
        if len(windows) == 1:
            return self.denoiser(x, t)
        total = torch.zeros_like(x)
        weight = torch.zeros(frames, dtype=x.dtype, device=x.device)
        for i, win in enumerate(windows):
            ramp_in = windows[i - 1].stop - win.start if i > 0 else 0
            ramp_out = win.stop - windows[i + 1].start if i + 1 < len(windows) else 0
            w = blend_weights(win.stop - win.start, ramp_in, ramp_out).to(x.device, x.dtype)
            total[:, :, win] += self.denoiser(x[:, :, win], t).to(x.dtype) * w[:, None, None]
            weight[win] += w
        return total / weight[:, None, None]


def sample_latents(denoiser: Callable[[torch.Tensor, int], torch.Tensor], scheduler, x: torch.Tensor,
                   schedule: list[int], progress: Progress,
                   after_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Run DDIM (eta 0) over `schedule` from `x`. `after_step(x, i)` may edit the latents after
    step i (e.g. re-impose anchors at the next noise level)."""
    for i, t in enumerate(schedule):
        eps = denoiser(x, t)
        x = scheduler.step(eps, t, x).prev_sample
        if after_step is not None:
            x = after_step(x, i)
        progress.step(x)
    return x
