"""Input checks and small helpers shared by the stage functions.

Each check raises `InputError` with the argument's name, the value given and how to fix it.
"""

from __future__ import annotations

import torch

from ..errors import InputError, check
from ..loading import Stage, StageKind
from ..memory import DevicePlacement, Offload, Placement, module_device
from ..text import PromptEmbeddings


def make_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator: a fresh one seeded with `seed`, or the generator passed in."""
    if isinstance(seed, torch.Generator):
        return seed
    check(isinstance(seed, int) and 0 <= seed < 2 ** 64, f"seed: {seed!r} is not an integer in [0, 2^64); pass a "
          "non-negative integer")
    return torch.Generator("cpu").manual_seed(seed)


def require_kind(stage: Stage, kinds: StageKind | tuple[StageKind, ...], argument: str = "model") -> None:
    kinds = (kinds,) if isinstance(kinds, StageKind) else kinds
    if not isinstance(stage, Stage) or stage.kind not in kinds:
        got = stage.label if isinstance(stage, Stage) else type(stage).__name__
        wanted = " or ".join(k.label for k in kinds)
        raise InputError(f"{argument}: got {got}, but this stage needs {wanted}; load that stage folder instead")


def text_width(stage: Stage) -> int:
    cfg = stage.unet.config
    if stage.kind is StageKind.SR2:
        return cfg.cross_attention_dim
    return cfg.encoder_hid_dim or cfg.cross_attention_dim


def check_embeddings(stage: Stage, embeds: PromptEmbeddings, argument: str = "embeds") -> None:
    wanted = "CLIP (show-1-sr2)" if stage.kind is StageKind.SR2 else "T5 (show-1-base)"
    check(isinstance(embeds, PromptEmbeddings), f"{argument}: expected prompt embeddings, got {type(embeds).__name__}")
    width = text_width(stage)
    check(embeds.width == width,
          f"{argument}: {embeds.encoder.upper()} embeddings of width {embeds.width}, but {stage.kind.label} takes "
          f"width {width}; encode the prompt with the {wanted} text encoder that belongs to these weights")


def check_size(stage: Stage, height: int, width: int, what: str = "height/width") -> None:
    multiple = 2 ** (len(stage.unet.config.block_out_channels) - 1)
    for name, value in (("height", height), ("width", width)):
        check(isinstance(value, int) and value > 0, f"{name}: {value!r} must be a positive integer")
        check(value % multiple == 0,
              f"{name}: {value} is not a multiple of {multiple}, which {stage.kind.label} needs (one halving per "
              f"down block); use {max(multiple, value - value % multiple)} or {value - value % multiple + multiple}")


def check_steps(steps: int, guidance: float) -> None:
    check(isinstance(steps, int) and 1 <= steps <= 1000, f"steps: {steps!r} must be an integer in 1..1000")
    check(guidance >= 0, f"guidance: {guidance} must be >= 0 (values <= 1 switch classifier-free guidance off)")


def check_video(video: torch.Tensor, argument: str, min_frames: int = 1) -> None:
    check(isinstance(video, torch.Tensor) and video.dim() == 5 and video.shape[1] == 3,
          f"{argument}: expected a video tensor (B, 3, F, H, W) in [-1, 1], got "
          f"{tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__}")
    check(video.shape[2] >= min_frames, f"{argument}: {video.shape[2]} frame(s), at least {min_frames} needed")


def placement_for(stage_module: torch.nn.Module, placement: Placement | None) -> Placement:
    """The caller's placement, or one that runs the model where it already is."""
    if placement is not None:
        return placement
    device = module_device(stage_module)
    return DevicePlacement(device, device, Offload.KEEP)
