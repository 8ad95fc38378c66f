"""What the headless commands (`generate`, `batch`) share: finding the stage folders (or writing the
tiny demo weights), checking every setting against the models' configs before any weight loads,
loading the cascade's models, and writing videos whole or not at all.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import rules
from .budget import (
    CascadePlan,
    StageNeed,
    free_bytes,
    require_fit,
    scaled_weights,
    text_call_bytes,
    unet_call_bytes,
    vae_call_bytes,
)
from .cascade import CascadeModels, steps_to_run
from .demo import is_current_demo_folder, is_demo_folder, write_demo_models
from .errors import InputError
from .folders import find_stages, inspect_stage, read_json
from .loading import (
    build_on_meta,
    build_unet,
    load_stage,
    load_text_encoder,
    load_vae,
    text_model_on_meta,
)
from .models.vae import AutoencoderKL
from .precision import WEIGHT_DTYPES, Precision
from .settings import CascadeSettings, VAEDecodeSettings
from .stage import StageKind
from .video import to_uint8_frames, write_mp4

STAGE_KINDS = {"keyframes": StageKind.BASE, "interpolation": StageKind.INTERPOLATION, "sr1": StageKind.SR1,
               "sr2": StageKind.SR2}
STAGE_FPS = {"base_video": 2.0, "interp_video": 7.5, "sr1_video": 7.5, "sr2_video": 7.5}


def default_demo_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "show1" / "demo-weights"


@dataclass
class Folders:
    """The stage folders a run loads from."""

    stages: dict[StageKind, Path]
    demo: bool

    def multiples(self, settings: CascadeSettings) -> dict[str, int]:
        """Size multiples of the models that run, read from their configs (no weights)."""
        found = {}
        for step, kind in STAGE_KINDS.items():
            if settings.runs(step) and kind in self.stages:
                found[step] = inspect_stage(self.stages[kind]).size_multiple
        if settings.runs("sr1") and StageKind.IF_II in self.stages:
            found["if_ii"] = inspect_stage(self.stages[StageKind.IF_II]).size_multiple
        if settings.runs("sr2"):
            found["vae"] = inspect_stage(self.stages[StageKind.SR2]).vae_config.size_multiple
        return found


def find_folders(models: Path | None, force_demo: bool, last_stage: str, flag: str = "--models") -> Folders:
    """Stage folders found under `models`, or the demo weights when no folder is given (said on
    stderr). IF-II is optional: without it sr1 starts from a softer first frame."""
    upto = list(STAGE_KINDS).index(last_stage) if last_stage in STAGE_KINDS else 3
    needed = list(STAGE_KINDS.values())[: upto + 1]
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
                 with_t5: bool = True, steps: tuple[str, ...] | None = None) -> CascadeModels:
    """The models of the steps that run (all of `steps_to_run(settings)` unless `steps` names
    some), weights on `offload_device`. T5 is loaded only `with_t5`. The text encoders compute in
    float32 and keep their weights in the precision's weight dtype, fp16 by default (the hub's
    files hold fp16 values, so nothing is lost)."""
    steps = steps or steps_to_run(settings)
    models = CascadeModels()
    stages = folders.stages
    te = precision.weights or torch.float16  # the hub's text encoder files hold fp16 values: no loss
    if "text" in steps and with_t5:
        models.t5 = load_text_encoder(stages[StageKind.BASE], te, offload_device)
    for step, attr in (("keyframes", "base"), ("interpolation", "interpolation"), ("sr1", "sr1")):
        if step in steps:
            setattr(models, attr, load_stage(stages[STAGE_KINDS[step]], precision, offload_device))
    if "sr1" in steps and StageKind.IF_II in stages:
        models.if_ii = load_stage(stages[StageKind.IF_II], precision, offload_device)
    if "sr2" in steps:
        models.sr2 = load_stage(stages[StageKind.SR2], precision, offload_device)
        models.vae = load_vae(stages[StageKind.SR2], Precision(torch.float32), offload_device)
        models.clip = load_text_encoder(stages[StageKind.SR2], te, offload_device)
    return models


def cascade_plan(folders: Folders, settings: CascadeSettings, precision: Precision, device: torch.device,
                 t5_device: torch.device) -> CascadePlan:
    """What each step of the run will hold on `device`, from the configs alone (models built on the
    meta device). UNet calls are counted at one video a call: the stages split the guidance pair
    when memory is short."""
    stages, needs = folders.stages, []
    text_weights = Precision(torch.float32, precision.weights or torch.float16)

    def meta_unet(kind: StageKind):
        unet = build_unet(read_json(stages[kind] / "unet" / "config.json"))
        unet.compute_dtype = precision.compute
        return unet

    def unet_need(name, kind, frames, h, w, extra: int = 0, extra_act: int = 0):
        unet = meta_unet(kind)
        act = unet_call_bytes(unet, frames, h, w, 1, precision.casts)
        return StageNeed(name, scaled_weights(unet, precision) + extra, max(act, extra_act))

    if settings.runs("keyframes") and t5_device == device:
        t5 = text_model_on_meta(stages[StageKind.BASE])
        needs.append(StageNeed("T5", scaled_weights(t5, text_weights), text_call_bytes(t5), transient=True))
    kf = settings.keyframes
    needs.append(unet_need("keyframes", StageKind.BASE, kf.num_frames, kf.height, kf.width))
    if settings.runs("interpolation"):
        needs.append(unet_need("interpolation", StageKind.INTERPOLATION, rules.INTERPOLATION_WINDOW, kf.height,
                               kf.width))
    if settings.runs("sr1"):
        h, w = kf.height * settings.sr1.scale, kf.width * settings.sr1.scale
        if StageKind.IF_II in stages:
            needs.append(unet_need("IF-II", StageKind.IF_II, 1, h, w))
        frames = min(settings.sr1.window, rules.interpolated_frames(kf.num_frames, rules.PIXEL_NEW_PER_GAP))
        needs.append(unet_need("sr1", StageKind.SR1, frames, h, w))
    if settings.runs("sr2"):
        s2 = settings.sr2
        vae = build_on_meta(lambda: AutoencoderKL(inspect_stage(stages[StageKind.SR2]).vae_config))
        clip = text_model_on_meta(stages[StageKind.SR2])
        frames = rules.interpolated_frames(kf.num_frames, rules.PIXEL_NEW_PER_GAP)
        factor = vae.size_multiple
        others = scaled_weights(vae, Precision(torch.float32)) + scaled_weights(clip, text_weights)
        needs.append(unet_need("sr2", StageKind.SR2, frames, s2.height // factor, s2.width // factor, others,
                               vae_call_bytes(vae, VAEDecodeSettings().frames_per_chunk, s2.height, s2.width)))
    return CascadePlan(tuple(needs), resident=device.type == "cpu")


def require_cascade_fits(folders: Folders, settings: CascadeSettings, compute: torch.dtype, weights: str,
                         offload: str, device: torch.device, t5_device: torch.device) -> None:
    """Refuse, before any weight loads, a run that cannot fit the device; name the lever that makes
    it fit (`DoesNotFit`, exit 3)."""
    free = free_bytes(device)
    if free is None:
        return
    names = [weights, *(name for name in ("default", "fp16", "bf16", "fp8_e4m3fn") if name not in (weights, "default"))]

    def plans(text_device: torch.device) -> dict[str, CascadePlan]:
        return {name: cascade_plan(folders, settings, Precision(compute, WEIGHT_DTYPES[name]), device, text_device)
                for name in names}

    cpu = torch.device("cpu")
    elsewhere = plans(cpu) if device.type != "cpu" and t5_device == device else None
    require_fit(plans(t5_device), (weights, offload), free, str(device), {
        "offload": "--offload", "weights": "--weight-dtype", "text": "--t5-device cpu",
        "smaller": "use fewer --frames, smaller --height/--width or --sr2-height/--sr2-width, or an earlier "
                   "--last-stage"}, elsewhere)


def if_ii_note(folders: Folders, settings: CascadeSettings) -> str | None:
    if settings.runs("sr1") and StageKind.IF_II not in folders.stages:
        return ("IF-II-L-v1.0 not found: sr1's first frame is conditioned on a bilinear upscale (softer video). "
                "Accept its licence on the hub and download it with --stages if_ii.")
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


def output_fps(settings: CascadeSettings) -> float:
    return STAGE_FPS["base_video"] if settings.upto == 0 else STAGE_FPS["interp_video"]
