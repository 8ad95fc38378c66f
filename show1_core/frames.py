"""Conversions between frame layouts, and fitting frames to a size.

* video tensors: (B, 3, F, H, W) float in [-1, 1] (what the stages take and return);
* images: (F, H, W, 3) float in [0, 1] (ComfyUI's IMAGE; also what the CLI writes);
* uint8 frames: (F, H, W, 3), the published sr1 -> sr2 hand-off.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from .errors import require

RESIZE_MODES = ("crop", "pad", "stretch")


def video_to_images(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> (B*F, H, W, 3) in [0, 1], clamped."""
    return rearrange((video.float() * 0.5 + 0.5).clamp(0, 1), "b c f h w -> (b f) h w c").contiguous()


def images_to_video(images: torch.Tensor) -> torch.Tensor:
    """(F, H, W, 3) in [0, 1] -> (1, 3, F, H, W) in [-1, 1]."""
    require(images.dim() == 4 and images.shape[-1] in (3, 4),
          f"images: expected (frames, H, W, 3) in [0, 1], got {tuple(images.shape)}")
    return rearrange(images[..., :3].float() * 2 - 1, "f h w c -> 1 c f h w").contiguous()


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Published `tensor2vid` for one video: x*0.5+0.5, clamp, *255, truncating cast -> (F, H, W, 3)."""
    require(video.shape[0] == 1, f"video: the uint8 hand-off takes one video at a time, got a batch of {video.shape[0]}")
    frames = rearrange((video[0].float() * 0.5 + 0.5).clamp(0, 1), "c f h w -> f h w c")
    return (frames.cpu().numpy() * 255).astype(np.uint8)


def resize_uint8(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's bicubic resize of every frame, as the published script does before sr2."""
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
                     for f in frames])


def uint8_to_video(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (1, 3, F, H, W) in [-1, 1], as the sr2 pipeline reads PIL frames."""
    x = torch.from_numpy(frames.astype(np.float32) / 255.0)
    return rearrange(x * 2.0 - 1.0, "f h w c -> 1 c f h w").contiguous()


def fit(video: torch.Tensor, height: int, width: int, mode: str = "crop") -> torch.Tensor:
    """Bring frames (B, 3, F, h, w) to (height, width).

    crop: scale to cover, then centre-crop (keeps the aspect ratio, loses the edges);
    pad: scale to fit, then pad with black (keeps everything, adds borders);
    stretch: scale each axis independently (keeps everything, distorts).
    """
    require(mode in RESIZE_MODES, f"resize: {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    b, c, f, h, w = video.shape
    if (h, w) == (height, width):
        return video
    frames = rearrange(video.float(), "b c f h w -> (b f) c h w")
    if mode == "stretch":
        out = F.interpolate(frames, (height, width), mode="bicubic", align_corners=False, antialias=True)
    else:
        scale = max(height / h, width / w) if mode == "crop" else min(height / h, width / w)
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        scaled = F.interpolate(frames, (sh, sw), mode="bicubic", align_corners=False, antialias=True)
        if mode == "crop":
            top, left = (sh - height) // 2, (sw - width) // 2
            out = scaled[:, :, top:top + height, left:left + width]
        else:
            out = torch.full((b * f, c, height, width), -1.0)
            top, left = (height - sh) // 2, (width - sw) // 2
            out[:, :, top:top + sh, left:left + sw] = scaled
    return rearrange(out.clamp(-1, 1), "(b f) c h w -> b c f h w", b=b).contiguous()
