"""What the headless commands (`generate`, `batch`) share: finding the stage folders (or writing the
tiny demo weights), checking every setting against the models' configs before any weight loads,
loading the cascade's models, and writing videos whole or not at all.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .budget import (
    CascadePlan,
    StageNeed,
    free_bytes,
    require_fit,
    scaled_weights,
    text_call_bytes,
    vae_call_bytes,
)
from .cascade import CascadeModels
from .demo import is_current_demo_folder, is_demo_folder, write_demo_models
from .errors import InputError
from .folders import find_stages, inspect_stage, read_json, vae_folder
from .loading import (
    as_stored,
    build_on_meta,
    build_unet,
    load_stage,
    load_text_encoder,
    load_vae,
    text_model_on_meta,
)
from .models.vae import AutoencoderKL
from .options import CascadeSettings
from .precision import WEIGHT_DTYPES, Precision, dtype_name
from .registry import CASCADE, STAGES, StageKind
from .settings import VAEDecodeSettings
from .video import to_uint8_frames, write_mp4
from .weights import WEIGHTED_COMPONENTS, component_library, find_weights, refuse_broken_file, shard_paths


def default_demo_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "show1" / "demo-weights"


@dataclass
class Folders:
    """The stage folders a run loads from."""

    stages: dict[StageKind, Path]
    demo: bool

    def multiples(self, settings: CascadeSettings) -> dict[str, int]:
        """Size multiples of the models that run, by stage key, read from their configs (no
        weights); a latent stage's sizes are its VAE's."""
        found = {}
        for spec in settings.specs():
            if spec.kind in self.stages:
                info = inspect_stage(self.stages[spec.kind])
                found[spec.key] = info.vae_config.size_multiple if spec.latent else info.size_multiple
        return found

    def require_weights(self, settings: CascadeSettings, with_t5: bool = True) -> None:
        """Every weight file the run will read is there and whole, before the first one loads (a
        broken sr2 folder is named before T5 and the pixel stages spend minutes loading)."""
        for spec in settings.specs():
            folder = self.stages.get(spec.kind)
            if folder is None:
                continue
            for component in spec.components:
                if component in WEIGHTED_COMPONENTS and (component != "text_encoder" or spec.kind != StageKind.BASE or with_t5):
                    directory = vae_folder(folder) if component == "vae" else folder / component
                    path, _ = find_weights(directory, component_library(component))
                    for shard in shard_paths(path):
                        refuse_broken_file(shard)


def find_folders(models: Path | None, force_demo: bool, last_stage: str, flag: str = "--models") -> Folders:
    """Stage folders found under `models`, or the demo weights when no folder is given (said on
    stderr). Optional stages (IF-II: without it sr1 starts from a softer first frame) may be absent."""
    last = CASCADE.index(last_stage) if last_stage in CASCADE else len(CASCADE) - 1
    needed = [s.kind for s in STAGES if not s.optional and CASCADE.index(s.step) <= last]
    if models is not None and not force_demo:
        if not models.is_dir():
            raise InputError(f"{flag}: {models} is not a folder; give the folder that holds the stage folders "
                             f"(show-1-base, ...), or leave {flag} out to run the tiny demo weights")
        scan = find_stages(models)
        found = {kind: scan.first(kind).folder for kind in StageKind if scan.first(kind) is not None}
        missing = [k for k in needed if k not in found]
        if missing:
            reasons = scan.why_missing(missing)
            raise InputError(f"{flag}: {models}: {reasons}; download them with `python -m show1_core download --dest "
                             f"{models} --stages {' '.join(k.value for k in missing)}`, choose an earlier "
                             f"--last-stage, or leave {flag} out to run the demo weights")
        return Folders(found, all(is_demo_folder(found[k]) for k in needed))
    demo_dir = default_demo_dir()
    if not all(is_current_demo_folder(demo_dir / k.folder) for k in StageKind):
        write_demo_models(demo_dir)
    print(f"No {flag} given: running on the tiny built-in DEMO weights in {demo_dir}.\n"
          "These weights are random, so the video is noise; download the real checkpoints with "
          "`python -m show1_core download` for real videos.", file=sys.stderr)
    return Folders({k: demo_dir / k.folder for k in StageKind}, True)


def load_cascade(folders: Folders, settings: CascadeSettings, precision: Precision, offload_device: torch.device,
                 with_t5: bool = True, steps: tuple[str, ...] | None = None,
                 text_weights: torch.dtype | None = None) -> CascadeModels:
    """The models of the steps that run (all of `settings.steps()` unless `steps` names some),
    weights on `offload_device`. T5 is loaded only `with_t5`. The text encoders compute in float32
    and keep their weights in `text_weights` (None: as their files store them)."""
    steps = steps or settings.steps()
    models = CascadeModels()
    stages = folders.stages
    if "text" in steps and with_t5:
        models.t5 = load_text_encoder(stages[StageKind.BASE], text_weights, offload_device)
    for spec in settings.specs():
        if spec.step in steps and spec.kind in stages:
            models.stages[spec.key] = load_stage(stages[spec.kind], precision, offload_device)
    if "sr2" in steps:
        models.vae = load_vae(stages[StageKind.SR2], Precision(torch.float32), offload_device)
        models.clip = load_text_encoder(stages[StageKind.SR2], text_weights, offload_device)
    return models


@lru_cache(maxsize=16)
def meta_unet(folder: Path) -> torch.nn.Module:
    """A stage's UNet on the meta device, built once per folder (plans of several precisions reuse it)."""
    return build_unet(read_json(folder / "unet" / "config.json"))


def cascade_plan(folders: Folders, settings: CascadeSettings, precision: Precision, device: torch.device,
                 t5_device: torch.device, text_weights: torch.dtype | None = None) -> CascadePlan:
    """What each step of the run will hold on `device`, from the configs alone (models built on the
    meta device): each stage's weights and the estimate of its largest UNet call
    (`StageSpec.estimate`, split as the device allows), in the order they run."""
    stages, needs = folders.stages, []
    text = Precision(torch.float32, text_weights or torch.float16)  # the hub's text files hold fp16 values

    if settings.runs("keyframes") and t5_device == device:
        t5 = text_model_on_meta(stages[StageKind.BASE])
        needs.append(StageNeed("T5", scaled_weights(t5, text), text_call_bytes(t5), transient=True))
    shape = (0, 0, 0)
    for spec in settings.specs():
        if spec.kind not in stages:
            continue
        output = spec.shape(settings, shape)
        if spec.in_cascade:
            shape = output
        unet = meta_unet(stages[spec.kind])
        as_stored(unet, precision)  # so the estimate sees whether its layers cast their weights
        unet.compute_dtype = precision.compute
        extra_weights = extra_activations = 0
        if spec.latent:
            vae = build_on_meta(lambda: AutoencoderKL(inspect_stage(stages[spec.kind]).vae_config))
            clip = text_model_on_meta(stages[spec.kind])
            extra_weights = scaled_weights(vae, Precision(torch.float32)) + scaled_weights(clip, text)
            extra_activations = vae_call_bytes(vae, VAEDecodeSettings().frames_per_chunk, *output[1:])
            output = (output[0], *(n // vae.size_multiple for n in output[1:]))
        act = spec.estimate(unet, settings.stage(spec.key), output, device)
        needs.append(StageNeed(spec.name,
                               scaled_weights(unet, precision) + extra_weights, max(act, extra_activations)))
    return CascadePlan(tuple(needs), resident=device.type == "cpu")


def require_cascade_fits(folders: Folders, settings: CascadeSettings, precision: Precision, offload: str,
                         device: torch.device, t5_device: torch.device) -> None:
    """Refuse, before any weight loads, a run that cannot fit the device; name the lever that makes
    it fit (`DoesNotFit`, exit 3)."""
    free = free_bytes(device)
    if free is None:
        return
    weights = dtype_name(precision.weights) if precision.weights is not None else "default"
    names = [weights, *(name for name in ("default", "fp16", "bf16", "fp8_e4m3fn") if name not in (weights, "default"))]

    def plans(text_device: torch.device) -> dict[str, CascadePlan]:
        return {name: cascade_plan(folders, settings, precision.with_weights(WEIGHT_DTYPES[name]), device, text_device,
                                   precision.text)
                for name in names}

    cpu = torch.device("cpu")
    elsewhere = plans(cpu) if device.type != "cpu" and t5_device == device else None
    require_fit(plans(t5_device), (weights, offload), free, str(device), {
        "offload": "--offload", "weights": "--weight-dtype", "text": "--t5-device cpu",
        "smaller": "use fewer --frames, smaller --height/--width or --sr2-height/--sr2-width, or an earlier "
                   "--last-stage"}, elsewhere)


def if_ii_note(folders: Folders, settings: CascadeSettings) -> str | None:
    missing = [spec for spec in settings.specs() if spec.optional and spec.kind not in folders.stages]
    if missing:
        return "; ".join(f"{spec.folder} not found: sr1's first frame is conditioned on a bilinear upscale (softer "
                         f"video). Accept its licence on the hub and download it with --stages {spec.kind.value}."
                         for spec in missing)
    return None


def require_writable_file(flag: str, path: Path, suffix: str) -> None:
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give a file name, e.g. {path / ('show1' + suffix)}")
    if path.suffix.lower() != suffix:
        raise InputError(f"{flag}: {str(path)!r} is not a {suffix} file; the CLI writes H.264 {suffix} videos (name it "
                         f"{path.with_suffix(suffix).name})")
    require_writable_folder(flag, path.parent, what=f"the folder of {path.name}")


def require_writable_folder(flag: str, folder: Path, what: str = "the folder") -> None:
    """`folder` exists as a writable folder, or can be made (its nearest existing ancestor is one)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag}: {what} cannot be made: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: {what} is not writable ({existing} is read-only for this user); choose a folder "
                         "you can write to")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise InputError(f"{flag}: cannot write in {existing} ({e.strerror}); choose another folder") from None


def write_video(path: Path, video: torch.Tensor, fps: float) -> Path:
    return write_mp4(path, to_uint8_frames(video), fps)


