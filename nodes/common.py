"""What every Show-1 node shares: the custom types, ComfyUI <-> show1_core conversions, the hooks
each stage call gets, input validation from the core's rules, and errors that name the node."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..show1_core import rules
from ..show1_core.errors import InputError, Show1Error
from ..show1_core.frames import images_to_video, video_to_images
from ..show1_core.loading import Stage, StageInfo, StageKind, find_stages
from ..show1_core.memory import Offload
from . import comfy

MODEL = "SHOW1_MODEL"
VAE = "SHOW1_VAE"
TEXT_ENCODER = "SHOW1_TEXT_ENCODER"
COND = "SHOW1_COND"
NO_MODELS = "(no Show-1 stage folders in models/show1)"
OOM_LEVERS = ("lower the memory it needs: set offload to 'window' on the loaders, enable tile on the VAE nodes, "
              "decode fewer frames_per_chunk, use a smaller window or fewer frames, or load the models in fp16/bf16")


class Show1NodeError(RuntimeError):
    """A Show-1 error, prefixed with the node that raised it."""


@dataclass
class Show1Model:
    """A loaded stage, its ModelPatcher (inside ComfyUI) and how it waits between uses."""

    stage: Stage
    offload: Offload
    patcher: object | None = None

    @property
    def kind(self) -> StageKind:
        return self.stage.kind


@dataclass
class Show1VAE:
    vae: torch.nn.Module
    patcher: object | None = None


@dataclass
class Show1TextEncoders:
    t5: object | None
    clip: object | None
    patchers: list = field(default_factory=list)
    offload: Offload = Offload.STAGE


class Show1Node:
    """Base of the pack's nodes: `execute` does the work; inputs are checked first, and errors come
    out named after the node.

    `RANGES` names the numeric inputs and their rule; list-form combos are checked against their
    choices (except `DYNAMIC` ones, folder listings the node resolves itself); `check` adds the rules
    across inputs. `VALIDATE_INPUTS` (at queue time) and `run` (every call, API or UI) use the same
    checks, so what the browser is told and what the node enforces cannot differ.
    """

    CATEGORY = "Show-1"
    FUNCTION = "run"
    RANGES: dict[str, rules.Range] = {}
    DYNAMIC: tuple[str, ...] = ()

    @classmethod
    def check_inputs(cls, values: dict) -> None:
        spec = cls.INPUT_TYPES()
        declared = {**spec.get("required", {}), **spec.get("optional", {})}
        for name, value in values.items():
            if value is None or name not in declared:
                continue  # a link (ComfyUI validates before it has a value) or a hidden input
            kind = declared[name][0]
            if name in cls.RANGES:
                cls.RANGES[name].check(name, value)
            elif isinstance(kind, list) and name not in cls.DYNAMIC:
                rules.check_choice(name, value, kind)
        cls.check(values)

    @classmethod
    def check(cls, values: dict) -> None:
        """Rules across inputs; `values` holds None for inputs that arrive through links."""

    @classmethod
    def VALIDATE_INPUTS(cls, **inputs):
        try:
            cls.check_inputs(inputs)
        except Show1Error as e:
            return f"{cls.__name__}: {e}"
        return True

    def run(self, **inputs):
        name = type(self).__name__
        try:
            type(self).check_inputs(inputs)
            return self.execute(**inputs)
        except Show1Error as e:
            raise Show1NodeError(f"{name}: {e}") from None
        except BaseException as e:
            if comfy.is_interrupt(e) or not comfy.out_of_memory(e):
                raise
            comfy.free_after_failure()
            raise Show1NodeError(f"{name}: out of memory on {comfy.compute_device()} ({str(e).splitlines()[0][:200]}); "
                                 f"{OOM_LEVERS}") from None

    def execute(self, **inputs):
        raise NotImplementedError


def stage_hooks(*models) -> dict:
    """placement, progress callback and cancellation check for one stage call. The placement
    follows the first model's offload policy and knows every given model's ModelPatcher."""
    policy = next((m.offload for m in models if isinstance(m, Show1Model)), Offload.STAGE)
    patchers = [getattr(m, "patcher", None) for m in models]
    return {"placement": comfy.ComfyPlacement(policy, patchers), "callback": comfy.progress_callback(),
            "check_cancel": comfy.check_interrupt}


# --- model folders ------------------------------------------------------------------------------

def stage_choices(*kinds: StageKind) -> list[str]:
    """Combo entries "<folder> (<stage>)" for the stage folders under models/show1."""
    found = find_stages(*comfy.model_roots())
    entries = [f"{info.folder.name} ({info.kind.value})" for kind, infos in found.items() if not kinds or kind in kinds
               for info in infos]
    return sorted(entries) or [NO_MODELS]


def find_stage(choice: str, *kinds: StageKind, argument: str = "model") -> StageInfo:
    """The stage folder a combo entry (or a bare folder name, for API users) names."""
    if not isinstance(choice, str):
        raise InputError(f"{argument}: {choice!r} is not a folder name; pick an entry of the list")
    name = choice.rsplit(" (", 1)[0] if choice.endswith(")") else choice
    found = find_stages(*comfy.model_roots())
    for kind, infos in found.items():
        for info in infos:
            if info.folder.name == name and (not kinds or kind in kinds):
                return info
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
