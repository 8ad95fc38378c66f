"""Stage folders as the hub ships them, read from their configs alone (no weights).

A stage folder holds `model_index.json` and one sub-folder per component (`unet/`, `scheduler/`,
`vae/`, ...). The stage is recognised from the component configs, never from the folder's name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError
from .models.unet import UNetConfig
from .models.vae import VAEConfig
from .registry import STAGES, StageKind, recognise
from .weights import REDOWNLOAD

log = logging.getLogger(__name__)


def read_json(path: Path) -> dict:
    """A config file; a missing file and a broken one are named as what they are."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; {REDOWNLOAD}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path} is broken: not valid JSON ({e}); {REDOWNLOAD}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is broken: it holds a {type(data).__name__}, not a JSON object; {REDOWNLOAD}")
    return data


def classify_unet(config: dict, where: Path) -> StageKind:
    """Which stage a UNet config belongs to (each stage's declaration recognises its own)."""
    kind = recognise(config)
    if kind is not None:
        return kind
    name, down = config.get("_class_name"), config.get("down_block_types") or []
    if name == "UNet2DConditionModel":
        raise ModelLoadError(f"{where}: a 2D UNet that is not DeepFloyd IF-II (stage I or another image model); "
                             "Show-1 uses only IF-II-L-v1.0 for the first frame of its super-resolution stage")
    raise ModelLoadError(f"{where}: this UNet ({name}, in_channels {config.get('in_channels')}, blocks "
                         f"{', '.join(map(str, down)) or 'none'}) is not one of the Show-1 stages "
                         f"({', '.join(spec.folder for spec in STAGES)})")


@dataclass
class StageInfo:
    """What a folder holds, read from its configs without loading any weights."""

    folder: Path
    kind: StageKind
    components: list[str]

    @property
    def unet_config(self) -> UNetConfig:
        return UNetConfig.from_dict(read_json(self.folder / "unet" / "config.json"))

    @property
    def size_multiple(self) -> int:
        return self.unet_config.size_multiple

    @property
    def vae_config(self) -> VAEConfig:
        return VAEConfig.from_dict(read_json(vae_folder(self.folder) / "config.json"))

    @property
    def has_t5(self) -> bool:
        return "text_encoder" in self.components and self.kind is StageKind.BASE

    @property
    def has_clip(self) -> bool:
        return "text_encoder" in self.components and self.kind is StageKind.SR2


def vae_folder(folder: Path) -> Path:
    """The VAE's folder: `vae/` of a show-1-sr2 folder, or a bare VAE folder itself."""
    return folder / "vae" if (folder / "vae").is_dir() else folder


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
                  if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None and (folder / k).is_dir()]
    return StageInfo(folder, kind, components)


@dataclass
class StageScan:
    """The stage folders under some roots: those recognised, by stage, and those that look like
    stage folders (a model_index.json) but cannot be read, with why."""

    found: dict[StageKind, list[StageInfo]] = field(default_factory=dict)
    broken: dict[Path, str] = field(default_factory=dict)

    def first(self, kind: StageKind) -> StageInfo | None:
        infos = self.found.get(kind)
        return infos[0] if infos else None

    def why_missing(self, kinds: list[StageKind]) -> str:
        """Why no folder of these stages was found: a broken folder of that name, or none at all."""
        broken = {folder.name: f"{folder} is broken: {why}" for folder, why in self.broken.items()}
        reasons = [broken[k.folder] for k in kinds if k.folder in broken]
        absent = [k.folder for k in kinds if k.folder not in broken]
        if absent:
            reasons.insert(0, f"no folder for {', '.join(absent)}")
        return "; ".join(reasons)


def find_stages(*roots: str | Path) -> StageScan:
    """Every stage folder directly under (or at) the given roots."""
    scan = StageScan()
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
                scan.broken[folder] = str(e)
                continue
            scan.found.setdefault(info.kind, []).append(info)
    return scan
