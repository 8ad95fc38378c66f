"""Loading Show-1 stage folders exactly as the hub ships them.

A stage folder holds `model_index.json` and one sub-folder per component (`unet/`, `scheduler/`,
`vae/`, ...). The stage is recognised from the component configs, never from the folder's name.
Models are built on the meta device and the weights assigned, so they are never materialised twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from .errors import ModelLoadError
from .models.blocks import DOWN_BLOCKS
from .models.unet3d import Show1UNet3D, UNet3DConfig
from .schedulers import build_scheduler, timesteps
from .weights import REDOWNLOAD, assign_strict, find_weights, load_state_dict

log = logging.getLogger(__name__)


class StageKind(str, Enum):
    BASE = "base"
    INTERPOLATION = "interpolation"
    SR1 = "sr1"
    IF_II = "if_ii"
    SR2 = "sr2"

    @property
    def label(self) -> str:
        return STAGE_LABELS[self]


STAGE_LABELS = {
    StageKind.BASE: "keyframes (show-1-base)",
    StageKind.INTERPOLATION: "pixel interpolation (show-1-interpolation)",
    StageKind.SR1: "pixel super-resolution (show-1-sr1)",
    StageKind.IF_II: "first-frame super-resolution (DeepFloyd IF-II)",
    StageKind.SR2: "latent super-resolution (show-1-sr2)",
}

# Hub repositories of the published cascade and the folder names the pack expects under models/show1.
STAGE_REPOS = {
    StageKind.BASE: "showlab/show-1-base",
    StageKind.INTERPOLATION: "showlab/show-1-interpolation",
    StageKind.SR1: "showlab/show-1-sr1",
    StageKind.IF_II: "DeepFloyd/IF-II-L-v1.0",
    StageKind.SR2: "showlab/show-1-sr2",
}
STAGE_FOLDERS = {kind: repo.split("/")[1] for kind, repo in STAGE_REPOS.items()}

PIXEL_STAGES = (StageKind.BASE, StageKind.INTERPOLATION, StageKind.SR1, StageKind.IF_II)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; {REDOWNLOAD}") from None
    except ValueError as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e}); {REDOWNLOAD}") from None


def classify_unet(config: dict, where: Path) -> StageKind:
    """Which stage a UNet config belongs to."""
    name = config.get("_class_name")
    down = config.get("down_block_types") or []
    if name == "UNet2DConditionModel":
        if config.get("class_embed_type") == "timestep" and config.get("in_channels") == 6:
            return StageKind.IF_II
        raise ModelLoadError(f"{where}: a 2D UNet that is not DeepFloyd IF-II (stage I or another image model); "
                             "Show-1 uses only IF-II-L-v1.0 for the first frame of its super-resolution stage")
    if name == "UNet3DConditionModel" and down and all(t in DOWN_BLOCKS for t in down):
        if all(DOWN_BLOCKS[t].if_family for t in down):
            noise = (config.get("out_channels") or 6) // 2
            inp = config.get("in_channels")
            if inp == noise:
                return StageKind.BASE
            if inp == 2 * noise + 1:
                return StageKind.INTERPOLATION
            if inp == 2 * noise and config.get("class_embed_type") == "timestep":
                return StageKind.SR1
        elif not any(DOWN_BLOCKS[t].if_family for t in down):
            return StageKind.SR2
    raise ModelLoadError(f"{where}: this UNet ({name}, in_channels {config.get('in_channels')}, blocks "
                         f"{', '.join(map(str, down)) or 'none'}) is not one of the Show-1 stages (show-1-base, "
                         "-interpolation, -sr1, -sr2, IF-II-L-v1.0)")


@dataclass
class StageInfo:
    """What a folder holds, read from its configs without loading any weights."""

    folder: Path
    kind: StageKind
    components: list[str]

    @property
    def size_multiple(self) -> int:
        return unet_size_multiple(read_json(self.folder / "unet" / "config.json"))

    @property
    def has_t5(self) -> bool:
        return "text_encoder" in self.components and self.kind is StageKind.BASE

    @property
    def has_clip(self) -> bool:
        return "text_encoder" in self.components and self.kind is StageKind.SR2


def inspect_stage(folder: str | Path) -> StageInfo:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder; point to a downloaded Show-1 stage folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(f"{folder} is not a Show-1 stage folder: it has no model_index.json. Download the stage "
                             "with python -m show1_core download, or select the folder that contains model_index.json")
    index = read_json(index_path)
    if not (folder / "unet" / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a Show-1 stage folder: unet/config.json is missing; {REDOWNLOAD}")
    kind = classify_unet(read_json(folder / "unet" / "config.json"), folder / "unet")
    components = [k for k, v in index.items()
                  if not k.startswith("_") and isinstance(v, list) and v[0] is not None and (folder / k).is_dir()]
    return StageInfo(folder, kind, components)


@dataclass
class Stage:
    """One loaded stage: its UNet and schedulers. The VAE and text encoders load separately."""

    kind: StageKind
    folder: Path
    unet: nn.Module
    scheduler_config: dict
    noising_scheduler_config: dict | None = None
    dtype: torch.dtype = torch.float32

    @property
    def label(self) -> str:
        return f"{self.kind.label} from {self.folder}"

    def scheduler(self):
        """A fresh scheduler (schedulers hold per-run state)."""
        return build_scheduler(self.scheduler_config, self.folder / "scheduler" / "scheduler_config.json")

    def schedule_length(self, steps: int) -> int:
        """Model calls of one sampling run (second-order schedulers call the model twice a step)."""
        return len(timesteps(self.scheduler(), steps))

    def noising_scheduler(self):
        if self.noising_scheduler_config is None:
            raise ModelLoadError(f"{self.folder}: image_noising_scheduler/scheduler_config.json is missing; {REDOWNLOAD}")
        return build_scheduler(self.noising_scheduler_config,
                               self.folder / "image_noising_scheduler" / "scheduler_config.json")


def unet_size_multiple(config) -> int:
    """Height and width multiple a UNet config (a dict, or a loaded model's config) needs."""
    if isinstance(config, UNet3DConfig):
        return config.size_multiple
    down = list(config.get("down_block_types") or [])
    if down and all(t in DOWN_BLOCKS for t in down):
        return UNet3DConfig.from_dict(dict(config)).size_multiple
    return 2 ** (len(config["block_out_channels"]) - 1)  # IF-II's 2D UNet halves with every block but the last


def vae_size_multiple(folder: Path) -> int:
    """The VAE's downsampling factor, read from its config (a show-1-sr2 folder or its vae/)."""
    vae_dir = folder / "vae" if (folder / "vae").is_dir() else folder
    return 2 ** (len(read_json(vae_dir / "config.json").get("block_out_channels", [0])) - 1)


def build_on_meta(factory) -> nn.Module:
    with torch.device("meta"):
        return factory()


def build_unet(config: dict, kind: StageKind) -> nn.Module:
    """A stage's UNet on the meta device, from its config: no memory, no weights."""
    if kind is StageKind.IF_II:
        from diffusers import UNet2DConditionModel

        return build_on_meta(lambda: UNet2DConditionModel.from_config(config))
    cfg = UNet3DConfig.from_dict(config)
    return build_on_meta(lambda: Show1UNet3D(cfg))


def load_unet(folder: Path, kind: StageKind, dtype: torch.dtype, device, variant: str | None) -> nn.Module:
    model = build_unet(read_json(folder / "unet" / "config.json"), kind)
    path, _ = find_weights(folder / "unet", "diffusers", variant)
    assign_strict(model, load_state_dict(path, dtype, device), path)
    if isinstance(model, Show1UNet3D):
        model.use_channels_last()
    return model.eval().requires_grad_(False)


def load_stage(folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               variant: str | None = None, expect: StageKind | tuple[StageKind, ...] | None = None) -> Stage:
    """Load the UNet and schedulers of a stage folder.

    `expect` names the stage(s) the caller can use; a folder of another stage gives a clear error.
    `variant` prefers e.g. the "fp16" weight files when both exist; by default the full-precision
    files are taken when present.
    """
    info = inspect_stage(folder)
    if expect is not None:
        allowed = (expect,) if isinstance(expect, StageKind) else tuple(expect)
        if info.kind not in allowed:
            wanted = " or ".join(k.label for k in allowed)
            raise ModelLoadError(f"{info.folder} holds {info.kind.label}, but {wanted} is needed here; "
                                 f"select the {' or '.join(STAGE_FOLDERS[k] for k in allowed)} folder")
    scheduler_config = read_json(info.folder / "scheduler" / "scheduler_config.json")
    noising = info.folder / "image_noising_scheduler" / "scheduler_config.json"
    noising_config = read_json(noising) if noising.is_file() else None
    if info.kind in (StageKind.SR1, StageKind.IF_II) and noising_config is None:
        raise ModelLoadError(f"{noising} is missing; {REDOWNLOAD}")
    unet = load_unet(info.folder, info.kind, dtype, device, variant)
    stage = Stage(info.kind, info.folder, unet, scheduler_config, noising_config, dtype)
    stage.scheduler()  # a scheduler that cannot drive the stage fails now, not at its first step
    if noising_config is not None:
        stage.noising_scheduler()
    return stage


def load_vae(folder: str | Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
             variant: str | None = None):
    """The latent stage's AutoencoderKL (from a show-1-sr2 folder, or a bare `vae/` folder)."""
    from diffusers import AutoencoderKL

    folder = Path(folder)
    vae_dir = folder / "vae" if (folder / "vae").is_dir() else folder
    if not (vae_dir / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no vae/ sub-folder (nor a VAE config.json): it is not a show-1-sr2 folder; "
                             "select the show-1-sr2 folder, which holds the VAE")
    config = read_json(vae_dir / "config.json")
    if config.get("_class_name") != "AutoencoderKL":
        raise ModelLoadError(f"{vae_dir}/config.json describes {config.get('_class_name')}, not the AutoencoderKL "
                             "of show-1-sr2; select the show-1-sr2 folder")
    model = build_on_meta(lambda: AutoencoderKL.from_config(config))
    path, _ = find_weights(vae_dir, "diffusers", variant)
    assign_strict(model, load_state_dict(path, dtype, device), path)
    return model.eval().requires_grad_(False)


def find_stages(*roots: str | Path) -> dict[StageKind, list[StageInfo]]:
    """Every stage folder directly under (or at) the given roots, grouped by the stage its configs
    describe. Folders that are not Show-1 stages are skipped."""
    found: dict[StageKind, list[StageInfo]] = {}
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            if not (folder / "model_index.json").is_file():
                continue
            try:
                info = inspect_stage(folder)
            except ModelLoadError as e:
                log.info("skipping %s: %s", folder, e)
                continue
            found.setdefault(info.kind, []).append(info)
    return found
