"""What the stage functions share: the checks of their tensor inputs against the model, and
generators.

Settings are validated by their own objects (`settings`); these helpers check what only the model
or the tensors can tell (which stage a model is, embedding widths, size multiples, frame counts,
non-finite values). Each raises `InputError` with the argument's name, the value and the fix.
"""

from __future__ import annotations

import torch

from .. import rules
from ..errors import InputError, require
from ..stage import Stage, StageKind
from ..text import PromptEmbeddings


def make_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator: a fresh one seeded with `seed`, or the generator passed in."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator("cpu").manual_seed(seed)


def refuse_non_finite(tensor: torch.Tensor, argument: str, fix: str = "") -> None:
    """NaN or infinite values would silently turn the whole video black."""
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise InputError(f"{argument}: {bad} of {tensor.numel()} values are NaN or infinite; "
                         + (fix or "the stage that made them failed (often float16 overflow: load the models in bf16 "
                                   "or fp32)"))


def finite_output(tensor: torch.Tensor, stage: str) -> torch.Tensor:
    """A stage's result, or a named error if it holds non-finite values (never a black video)."""
    refuse_non_finite(tensor, f"{stage} output", f"{stage} produced them; it usually means float16 overflow: load the "
                                                 "models in bf16 or fp32, or lower the guidance")
    return tensor


def require_kind(stage: Stage, kinds: StageKind | tuple[StageKind, ...], argument: str = "model") -> None:
    kinds = (kinds,) if isinstance(kinds, StageKind) else kinds
    if not isinstance(stage, Stage) or stage.kind not in kinds:
        got = stage.label if isinstance(stage, Stage) else type(stage).__name__
        wanted = " or ".join(k.label for k in kinds)
        raise InputError(f"{argument}: got {got}, but this stage needs {wanted}; load that stage folder instead")


TEXT_ENCODERS = {"t5": "T5 (show-1-base, or ComfyUI's t5xxl)", "clip": "CLIP (show-1-sr2)"}


def validate_embeddings(stage: Stage, embeds: PromptEmbeddings, argument: str = "embeds") -> None:
    expected = stage.kind.spec.text
    wanted = TEXT_ENCODERS[expected]
    require(isinstance(embeds, PromptEmbeddings),
            f"{argument}: expected prompt embeddings, got {type(embeds).__name__}")
    require(embeds.encoder == expected,
            f"{argument}: {str(embeds.encoder).upper()} embeddings, but {stage.kind.label} takes {wanted} embeddings "
            f"(the encoder, not only the width, must match); encode the prompt with that text encoder")
    refuse_non_finite(embeds.positive, argument, "encode the prompt again (the text encoder overflowed: run T5 in "
                                                 "bf16 or fp32)")
    refuse_non_finite(embeds.negative, argument, "encode the negative prompt again (run T5 in bf16 or fp32)")
    width = stage.unet.text_dim
    require(embeds.width == width,
            f"{argument}: {embeds.encoder.upper()} embeddings of width {embeds.width}, but {stage.kind.label} takes "
            f"width {width}; encode the prompt with the {wanted} text encoder that belongs to these weights")


def validate_model_size(stage: Stage, height: int, width: int, names: tuple[str, str] = ("height", "width")) -> None:
    for name, value in zip(names, (height, width)):
        rules.validate_size(name, value, stage.unet.size_multiple, stage.kind.label, "one halving per down block")


def validate_video(video: torch.Tensor, argument: str, channels: int = 3, min_frames: int = 1,
                   what: str = "a video tensor (B, 3, F, H, W) in [-1, 1]",
                   fix: str = "the frames feeding this stage are broken; check the node or file they come from") -> None:
    require(isinstance(video, torch.Tensor) and video.dim() == 5 and video.shape[1] == channels,
            f"{argument}: expected {what}, got "
            f"{tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__}")
    require(video.shape[2] >= min_frames, f"{argument}: {video.shape[2]} frame(s), at least {min_frames} needed")
    rules.VIDEO_FRAMES.validate(f"{argument} (frames)", video.shape[2])
    require(video.shape[0] >= 1 and video.shape[-1] >= 1 and video.shape[-2] >= 1,
            f"{argument}: an empty video {tuple(video.shape)}; connect frames")
    refuse_non_finite(video, argument, fix)
