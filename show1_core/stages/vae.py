"""VAE encode / decode of frame batches for the latent stages.

Frames are independent, so they go through the VAE in chunks (slicing) to bound memory; large
frames can also be tiled (diffusers' tiled encode/decode with blended seams, slightly different
numbers, so off by default). Latents are `(B, C, F, h, w)` already multiplied by the VAE's
scaling factor, the layout ComfyUI uses for video latents.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import check
from ..memory import Placement
from ..progress import CancelCheck, Progress, StepCallback
from ..sampling import fold, randn, unfold
from .common import check_finite, check_output, make_generator, placement_for

DEFAULT_CHUNK = 8


def _chunks(n: int, size: int) -> list[slice]:
    size = max(1, size)
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _check_vae(vae) -> None:
    check(hasattr(vae, "encode") and hasattr(vae, "decode") and hasattr(vae, "config"),
          f"vae: expected the AutoencoderKL of show-1-sr2, got {type(vae).__name__}")


@contextmanager
def tiling(vae, enabled: bool):
    """Switch diffusers' tiled encode/decode on for the duration of a call."""
    before = getattr(vae, "use_tiling", False)
    vae.use_tiling = enabled
    try:
        yield
    finally:
        vae.use_tiling = before


def encode_posterior(vae, images: torch.Tensor, tile: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of images (N, 3, H, W) in [-1, 1], without the scaling factor."""
    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    with tiling(vae, tile):
        dist = vae.encode(images.to(device, dtype)).latent_dist
    return dist.mean.float(), dist.std.float()


def decode_latents(vae, latents: torch.Tensor, tile: bool = False) -> torch.Tensor:
    """Decode unscaled latents (N, C, h, w) -> images (N, 3, H, W), not clamped."""
    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    with tiling(vae, tile):
        return vae.decode(latents.to(device, dtype)).sample.float()


@torch.inference_mode()
def vae_encode(vae, video: torch.Tensor, seed: int | torch.Generator | None = None, chunk: int = DEFAULT_CHUNK,
               tile: bool = False, placement: Placement | None = None, callback: StepCallback | None = None,
               check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """Encode a video (B, 3, F, H, W) in [-1, 1] to scaled latents (B, C, F, h, w), float32 on the CPU.

    With `seed` (or a generator) the latent is a posterior sample, drawing one (B*F, C, h, w) tensor
    as the published sr2 pipeline does; without it, the posterior mean.
    """
    _check_vae(vae)
    check(isinstance(video, torch.Tensor) and video.dim() == 5 and video.shape[1] == 3,
          f"video: expected (B, 3, F, H, W) in [-1, 1], got {tuple(getattr(video, 'shape', ()))}")
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    h, w = video.shape[-2:]
    check(h % factor == 0 and w % factor == 0,
          f"video: frames of {h}x{w} are not a multiple of {factor}, the VAE's downsampling; resize or crop them")
    check_finite(video, "video")
    frames = fold(video.float())
    parts = _chunks(frames.shape[0], chunk)
    progress = Progress("vae", len(parts), callback, check_cancel)
    means, stds = [], []
    with placement_for(vae, placement).use(vae):
        for part in parts:
            mean, std = encode_posterior(vae, frames[part], tile)
            means.append(mean.cpu())
            stds.append(std.cpu())
            progress.step()
    mean, std = torch.cat(means), torch.cat(stds)
    latents = mean if seed is None else mean + std * randn(mean.shape, make_generator(seed))
    return check_output(unfold(latents * vae.config.scaling_factor, video.shape[0]), "VAE encode")


@torch.inference_mode()
def vae_decode(vae, latents: torch.Tensor, chunk: int = DEFAULT_CHUNK, tile: bool = False,
               placement: Placement | None = None, callback: StepCallback | None = None,
               check_cancel: CancelCheck | None = None) -> torch.Tensor:
    """Decode scaled latents (B, C, F, h, w) to a video (B, 3, F, H, W), not clamped, float32 on the CPU."""
    _check_vae(vae)
    channels = vae.config.latent_channels
    check(isinstance(latents, torch.Tensor) and latents.dim() == 5 and latents.shape[1] == channels,
          f"latents: expected (B, {channels}, F, h, w) Show-1 latents, got {tuple(getattr(latents, 'shape', ()))}; "
          "encode frames with the show-1-sr2 VAE")
    check_finite(latents, "latents", "the latents are broken; encode the frames again")
    frames = fold(latents.float() / vae.config.scaling_factor)
    parts = _chunks(frames.shape[0], chunk)
    progress = Progress("vae", len(parts), callback, check_cancel)
    outs = []
    with placement_for(vae, placement).use(vae):
        for part in parts:
            outs.append(decode_latents(vae, frames[part], tile).cpu())
            progress.step()
    return check_output(unfold(torch.cat(outs), latents.shape[0]), "VAE decode")
