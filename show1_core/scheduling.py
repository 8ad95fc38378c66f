"""Scheduler arithmetic the stages share.

The schedules (timesteps, alphas) come from diffusers' schedulers built from each stage's
`scheduler_config.json`. The DDPM step of the pixel stages is written out here because its noise
is an explicit input: independent windows then share one draw, as the published cascade does
(every window re-seeds the same generator).
"""

from __future__ import annotations

import torch


def timesteps(scheduler, steps: int) -> list[int]:
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def previous_timestep(scheduler, t: int) -> int:
    """The schedule's previous timestep (t - 1000 // steps for 'leading' spacing), not t - 1."""
    return t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Imagen's dynamic thresholding per sample, over all of its C*H*W values."""
    n = x0.shape[0]
    flat = x0.reshape(n, -1)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape)


def ddpm_step(scheduler, model_output: torch.Tensor, t: int, sample: torch.Tensor,
              noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDPM step on frames folded into the batch: (N, C, H, W) samples.

    `model_output` holds epsilon and, for learned variances, the interpolation value v (2C channels).
    Returns (x_{t-1}, predicted x_0). `noise` is used only when t > 0.
    """
    cfg = scheduler.config
    c = sample.shape[1]
    learned = cfg.variance_type in ("learned", "learned_range") and model_output.shape[1] == 2 * c
    eps, v = (model_output[:, :c], model_output[:, c:]) if learned else (model_output, None)

    ac = scheduler.alphas_cumprod
    prev_t = previous_timestep(scheduler, t)
    a_t = ac[t]
    a_prev = ac[prev_t] if prev_t >= 0 else scheduler.one
    beta_t, beta_prev = 1 - a_t, 1 - a_prev
    alpha_cur = a_t / a_prev
    beta_cur = 1 - alpha_cur

    if cfg.prediction_type == "epsilon":
        x0 = (sample - beta_t ** 0.5 * eps) / a_t ** 0.5
    elif cfg.prediction_type == "sample":
        x0 = eps
    else:  # v_prediction
        x0 = a_t ** 0.5 * sample - beta_t ** 0.5 * eps
    if cfg.thresholding:
        x0 = dynamic_threshold(x0, cfg.dynamic_thresholding_ratio, cfg.sample_max_value)
    elif cfg.clip_sample:
        x0 = x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)

    mean = (a_prev ** 0.5 * beta_cur / beta_t) * x0 + (alpha_cur ** 0.5 * beta_prev / beta_t) * sample
    if t <= 0:
        return mean, x0
    variance = torch.clamp(beta_prev / beta_t * beta_cur, min=1e-20)
    if cfg.variance_type == "learned_range":
        frac = (v + 1) / 2
        log_var = frac * torch.log(beta_cur) + (1 - frac) * torch.log(variance)
        std = torch.exp(0.5 * log_var)
    elif cfg.variance_type == "learned":
        std = v ** 0.5  # diffusers reads v as the variance itself here
    elif cfg.variance_type == "fixed_large":
        std = beta_cur ** 0.5
    else:  # fixed_small, fixed_small_log
        std = variance ** 0.5
    return mean + std * noise, x0

