"""What the Show-1 nodes share: the custom types, what they carry, ComfyUI <-> show1_core
conversions, the run context of a stage call, and the stage folders under models/show1."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..show1_core.errors import InputError
from ..show1_core.folders import StageInfo, find_stages
from ..show1_core.frames import images_to_video, video_to_images
from ..show1_core.memory import Offload
from ..show1_core.models.vae import AutoencoderKL
from ..show1_core.stage import Stage, StageKind
from ..show1_core.text import TextEncoder
from . import comfy

MODEL = "SHOW1_MODEL"
VAE = "SHOW1_VAE"
TEXT_ENCODER = "SHOW1_TEXT_ENCODER"
COND = "SHOW1_COND"
NO_MODELS = "(no Show-1 stage folders in models/show1)"
@dataclass
class Show1Model:
    """A loaded stage, its model patcher (inside ComfyUI) and how it waits between uses."""

    stage: Stage
    offload: Offload
    patcher: object | None = None

    @property
    def kind(self) -> StageKind:
        return self.stage.kind


@dataclass
class Show1VAE:
    vae: AutoencoderKL
    patcher: object | None = None


@dataclass
class Show1TextEncoders:
    t5: TextEncoder | None
    clip: TextEncoder | None
    patchers: list = field(default_factory=list)
    offload: Offload = Offload.STAGE


LEVERS = ("fewer frames or keyframes, a smaller window, smaller sizes, fewer frames_per_chunk or tile on the VAE "
          "nodes, or a GPU with more memory")


def require_room(memory: dict) -> None:
    """Refuse, before any weight moves, a stage whose activations alone exceed what the device can
    give (its free memory plus what ComfyUI's models hold and could give back): weights can be
    loaded in part, activations cannot."""
    from ..show1_core.budget import gib
    from ..show1_core.errors import DoesNotFit

    device = comfy.compute_device()
    room = comfy.free_memory(device)
    need = max(memory.values(), default=0)
    if room is not None and need > room:
        raise DoesNotFit(f"this stage needs about {gib(need)} for its activations on {device}, but at most "
                         f"{gib(room)} can be freed there (weights can stream from the CPU, activations cannot); "
                         f"use {LEVERS}")


def run_context(*models, memory: dict | None = None):
    """The run context of one stage call inside a node: ComfyUI's model manager places the given
    models (the first one's offload policy; `memory` maps a module to its activation estimate, the
    `memory_required` of its load, after `require_room`), the node's progress bar, Cancel, and
    warnings on the node."""
    require_room(memory or {})
    policy = next((m.offload for m in models if isinstance(m, Show1Model)), Offload.STAGE)
    placement = comfy.ComfyPlacement(policy, [getattr(m, "patcher", None) for m in models], memory)
    return comfy.run_context_for(placement)


def require_stage_inputs(model, cond, what: str) -> None:
    """The model and prompt inputs of a stage node, of the right kinds before any attribute is read."""
    from ..show1_core.text import TextConditioning
    from .declare import require_input

    require_input(model, Show1Model, "model", f"{what} from Show1ModelLoader")
    require_input(cond, TextConditioning, "cond", "prompt embeddings from Show1TextEncode or Show1LoadEmbeds")


# --- model folders ------------------------------------------------------------------------------

def stage_choices(*kinds: StageKind) -> list[str]:
    """Combo entries "<folder> (<stage>)" for the stage folders under models/show1."""
    found = find_stages(*comfy.model_roots()).found
    entries = [f"{info.folder.name} ({info.kind.value})" for kind, infos in found.items() if not kinds or kind in kinds
               for info in infos]
    return sorted(entries) or [NO_MODELS]


def find_stage(choice: str, *kinds: StageKind, argument: str = "model") -> StageInfo:
    """The stage folder a combo entry (or a bare folder name, for API users) names."""
    if not isinstance(choice, str):
        raise InputError(f"{argument}: {choice!r} is not a folder name; pick an entry of the list")
    name = choice.rsplit(" (", 1)[0] if choice.endswith(")") else choice
    scan = find_stages(*comfy.model_roots())
    for kind, infos in scan.found.items():
        for info in infos:
            if info.folder.name == name and (not kinds or kind in kinds):
                return info
    for folder, why in scan.broken.items():
        if folder.name == name:
            raise InputError(f"{argument}: {choice!r}: {folder} is broken: {why}")
    roots = ", ".join(str(r) for r in comfy.model_roots()) or "models/show1"
    wanted = " or ".join(k.label for k in kinds) if kinds else "a Show-1 stage"
    raise InputError(f"{argument}: {choice!r} is not a folder holding {wanted} under {roots}; download it with "
                     f"`python -m show1_core download --dest <ComfyUI>/models/show1` or pick another entry")


# --- ComfyUI types <-> show1_core tensors --------------------------------------------------------

IMAGE_TOLERANCE = 1e-2  # resamplers overshoot [0, 1] a little; such values are clamped


def image_to_video(images: torch.Tensor, argument: str = "images") -> torch.Tensor:
    """IMAGE [frames, H, W, 3] in 0..1 -> (1, 3, frames, H, W) in [-1, 1].

    Non-finite values and values far outside [0, 1] (8-bit pixels 0..255, a [-1, 1] tensor) are
    refused with what to do; a resampler's small overshoot is clamped."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] not in (3, 4):
        raise InputError(f"{argument}: expected an IMAGE batch [frames, height, width, 3], got "
                         f"{tuple(getattr(images, 'shape', ())) or type(images).__name__}")
    if 0 in images.shape:
        raise InputError(f"{argument}: an empty IMAGE batch {tuple(images.shape)}; connect frames")
    if images.shape[-1] == 4:
        comfy.warn(f"{argument}: RGBA frames; the alpha channel is dropped (Show-1 works on RGB; composite the frames "
                   "on a background first if transparency matters)")
    images = images[..., :3].float()
    if not bool(torch.isfinite(images).all()):
        raise InputError(f"{argument}: the IMAGE holds NaN or infinite values; the node that made it failed")
    low, high = float(images.min()), float(images.max())
    if high > 1 + IMAGE_TOLERANCE or low < -IMAGE_TOLERANCE:
        hint = "divide by 255 (they look like 8-bit pixels)" if high > 2 else "map them to [0, 1] (x * 0.5 + 0.5 " \
               "for a [-1, 1] tensor)"
        raise InputError(f"{argument}: IMAGE values span [{low:.3g}, {high:.3g}], but ComfyUI images are in [0, 1]; "
                         f"{hint}")
    return images_to_video(images.clamp(0, 1).cpu())


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    return video_to_images(video).to(comfy.output_device())


def latent_samples(latent: dict, argument: str = "latent") -> torch.Tensor:
    """LATENT -> (1, C, frames, h, w). A native 4-D batch [frames, C, h, w] is read as frames."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dim() not in (4, 5):
        raise InputError(f"{argument}: expected a LATENT with 'samples' [B, C, frames, h, w] (or a 4-D image batch)")
    if samples.dim() == 4:
        samples = samples.transpose(0, 1).unsqueeze(0)
    if samples.shape[1] != 4:
        raise InputError(f"{argument}: {samples.shape[1]}-channel latents; Show-1's latent stage uses the 4-channel "
                         "SD-style VAE of show-1-sr2: encode the frames with Show1VAEEncode")
    return samples.float()


def to_latent(samples: torch.Tensor) -> dict:
    return {"samples": samples.to(comfy.output_device())}


# --- files inside ComfyUI's folders --------------------------------------------------------------

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.]{0,99}")


def file_in(folder: Path, name: str, argument: str, suffix: str) -> Path:
    """`folder / name`, refused unless the resolved path stays inside `folder`: a plain file name of
    letters, digits, '-', '_' and '.', ending in `suffix`."""
    if not isinstance(name, str) or not FILE_NAME.fullmatch(name) or ".." in name or not name.endswith(suffix):
        raise InputError(f"{argument}: {name!r} is not a plain file name ending in {suffix} (letters, digits, '-', "
                         f"'_' and '.'; no folders); files live in {folder}")
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise InputError(f"{argument}: {name!r} leads outside {folder}; use a plain file name")
    return path
