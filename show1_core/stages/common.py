"""Input checks and small helpers shared by the stage functions.

Each check raises `InputError` with the argument's name, the value given and how to fix it; the
numbers come from `rules`.
"""

from __future__ import annotations

import torch

from .. import rules
from ..errors import InputError, check
from ..loading import Stage, StageKind
from ..memory import DevicePlacement, Offload, Placement, module_device
from ..text import PromptEmbeddings


def make_generator(seed: int | torch.Generator, argument: str = "seed") -> torch.Generator:
    """A CPU generator: a fresh one seeded with `seed`, or the generator passed in."""
    if isinstance(seed, torch.Generator):
        return seed
    rules.SEED.check(argument, seed)
    return torch.Generator("cpu").manual_seed(seed)


def check_finite(tensor: torch.Tensor, argument: str, fix: str = "") -> None:
    """NaN or infinite values would silently turn the whole video black."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise InputError(f"{argument}: {bad} of {tensor.numel()} values are NaN or infinite; "
                         + (fix or "the stage that made them failed (often float16 overflow: load the models in bf16 "
                                   "or fp32)"))


def check_output(tensor: torch.Tensor, stage: str) -> torch.Tensor:
    """A stage's result, or a named error if it holds non-finite values (never a black video)."""
    check_finite(tensor, f"{stage} output", f"{stage} produced them; it usually means float16 overflow: load the "
                                            "models in bf16 or fp32, or lower the guidance")
    return tensor


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
    check_finite(embeds.positive, argument, "encode the prompt again (the text encoder overflowed: run T5 in bf16 "
                                            "or fp32)")
    check_finite(embeds.negative, argument, "encode the negative prompt again (run T5 in bf16 or fp32)")
    width = text_width(stage)
    check(embeds.width == width,
          f"{argument}: {embeds.encoder.upper()} embeddings of width {embeds.width}, but {stage.kind.label} takes "
          f"width {width}; encode the prompt with the {wanted} text encoder that belongs to these weights")


def check_size(stage: Stage, height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        multiple = getattr(stage.unet, "size_multiple", None) or 2 ** (len(stage.unet.config.block_out_channels) - 1)
        rules.check_size(name, value, multiple, stage.kind.label, "one halving per down block")


def check_steps(steps: int, guidance: float, names: tuple[str, str] = ("steps", "guidance")) -> None:
    rules.STEPS.check(names[0], steps)
    rules.GUIDANCE.check(names[1], guidance)


def check_video(video: torch.Tensor, argument: str, min_frames: int = 1) -> None:
    check(isinstance(video, torch.Tensor) and video.dim() == 5 and video.shape[1] == 3,
          f"{argument}: expected a video tensor (B, 3, F, H, W) in [-1, 1], got "
          f"{tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__}")
    check(video.shape[2] >= min_frames, f"{argument}: {video.shape[2]} frame(s), at least {min_frames} needed")
    check_finite(video, argument, "the frames feeding this stage are broken; check the node or file they come from")


def placement_for(stage_module: torch.nn.Module, placement: Placement | None) -> Placement:
    """The caller's placement, or one that runs the model where it already is."""
    if placement is not None:
        return placement
    device = module_device(stage_module)
    return DevicePlacement(device, device, Offload.KEEP)
