"""What every Show-1 node shares: the custom types, ComfyUI <-> show1_core conversions, the hooks
each stage call gets, and errors that name the node."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..show1_core.errors import Show1Error
from ..show1_core.frames import images_to_video, video_to_images
from ..show1_core.loading import Stage, StageKind, StageInfo, find_stages
from ..show1_core.memory import Offload
from . import comfy

MODEL = "SHOW1_MODEL"
VAE = "SHOW1_VAE"
TEXT_ENCODER = "SHOW1_TEXT_ENCODER"
COND = "SHOW1_COND"
MAX_SEED = 2 ** 63 - 1
NO_MODELS = "(no Show-1 stage folders in models/show1)"


class Show1NodeError(RuntimeError):
    """A Show-1 error, prefixed with the node that raised it."""


@dataclass
class Show1Model:
    """A loaded stage and how it shares the GPU."""

    stage: Stage
    offload: Offload

    @property
    def kind(self) -> StageKind:
        return self.stage.kind


@dataclass
class Show1TextEncoders:
    t5: object | None
    clip: object | None


class Show1Node:
    """Base of the pack's nodes: `execute` does the work; errors come out named after the node."""

    CATEGORY = "Show-1"
    FUNCTION = "run"

    def run(self, **inputs):
        try:
            return self.execute(**inputs)
        except Show1Error as e:
            raise Show1NodeError(f"{type(self).__name__}: {e}") from None

    def execute(self, **inputs):
        raise NotImplementedError


def stage_hooks(model: Show1Model | None = None) -> dict:
    """placement, progress callback and cancellation check for one stage call."""
    policy = model.offload if model is not None else Offload.STAGE
    return {"placement": comfy.ComfyPlacement(policy), "callback": comfy.progress_callback(),
            "check_cancel": comfy.check_interrupt}


def seed_input(tooltip: str = "Random seed; the same seed gives the same video.") -> tuple:
    return ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "tooltip": tooltip})


# --- model folders ------------------------------------------------------------------------------

def stage_choices(*kinds: StageKind) -> list[str]:
    """Combo entries "<folder> (<stage>)" for the stage folders under models/show1."""
    found = find_stages(*comfy.model_roots())
    entries = [f"{info.folder.name} ({info.kind.value})" for kind, infos in found.items() if not kinds or kind in kinds
               for info in infos]
    return sorted(entries) or [NO_MODELS]


def find_stage(choice: str, *kinds: StageKind) -> StageInfo:
    """The stage folder a combo entry (or a bare folder name, for API users) names."""
    name = choice.rsplit(" (", 1)[0] if choice.endswith(")") else choice
    found = find_stages(*comfy.model_roots())
    for kind, infos in found.items():
        for info in infos:
            if info.folder.name == name and (not kinds or kind in kinds):
                return info
    roots = ", ".join(str(r) for r in comfy.model_roots()) or "models/show1"
    wanted = " or ".join(k.label for k in kinds) if kinds else "a Show-1 stage"
    raise Show1Error(f"model: {choice!r} is not a folder holding {wanted} under {roots}; download it with "
                     f"`python -m show1_core download --dest <ComfyUI>/models/show1` or pick another entry")


def validate_choice(choice: str, *kinds: StageKind) -> bool | str:
    try:
        find_stage(choice, *kinds)
        return True
    except Show1Error as e:
        return str(e)


# --- ComfyUI types <-> show1_core tensors --------------------------------------------------------

def image_to_video(images: torch.Tensor, argument: str = "images") -> torch.Tensor:
    """IMAGE [frames, H, W, 3] in 0..1 -> (1, 3, frames, H, W) in [-1, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise Show1Error(f"{argument}: expected an IMAGE batch [frames, height, width, 3], got "
                         f"{tuple(getattr(images, 'shape', ()))}")
    return images_to_video(images.cpu())


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    return video_to_images(video).to(comfy.output_device())


def latent_samples(latent: dict, argument: str = "latent") -> torch.Tensor:
    """LATENT -> (1, C, frames, h, w). A native 4-D batch [frames, C, h, w] is read as frames."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dim() not in (4, 5):
        raise Show1Error(f"{argument}: expected a LATENT with 'samples' [B, C, frames, h, w] (or a 4-D image batch)")
    if samples.dim() == 4:
        samples = samples.transpose(0, 1).unsqueeze(0)
    if samples.shape[1] != 4:
        raise Show1Error(f"{argument}: {samples.shape[1]}-channel latents; Show-1's latent stage uses the 4-channel "
                         "SD-style VAE of show-1-sr2: encode the frames with Show1VAEEncode")
    return samples.float()


def to_latent(samples: torch.Tensor) -> dict:
    return {"samples": samples.to(comfy.output_device())}
