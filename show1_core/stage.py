"""What a Show-1 stage is: its kind, where the hub keeps it, and a loaded stage.

These types are shared by every module that talks about stages (text encoding, the stages, the
nodes); reading folders and weights lives in `folders` and `loading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from torch import nn

from .errors import ModelLoadError
from .schedulers import build_scheduler, timesteps
from .weights import REDOWNLOAD


class StageKind(str, Enum):
    BASE = "base"
    INTERPOLATION = "interpolation"
    SR1 = "sr1"
    IF_II = "if_ii"
    SR2 = "sr2"

    @property
    def label(self) -> str:
        return STAGE_LABELS[self]

    @property
    def folder(self) -> str:
        """The folder name the pack expects under models/show1: the hub repository's name."""
        return STAGE_REPOS[self].split("/")[1]


STAGE_LABELS = {
    StageKind.BASE: "keyframes (show-1-base)",
    StageKind.INTERPOLATION: "pixel interpolation (show-1-interpolation)",
    StageKind.SR1: "pixel super-resolution (show-1-sr1)",
    StageKind.IF_II: "first-frame super-resolution (DeepFloyd IF-II)",
    StageKind.SR2: "latent super-resolution (show-1-sr2)",
}

# Hub repositories of the published cascade.
STAGE_REPOS = {
    StageKind.BASE: "showlab/show-1-base",
    StageKind.INTERPOLATION: "showlab/show-1-interpolation",
    StageKind.SR1: "showlab/show-1-sr1",
    StageKind.IF_II: "DeepFloyd/IF-II-L-v1.0",
    StageKind.SR2: "showlab/show-1-sr2",
}


@dataclass
class Stage:
    """One loaded stage: its UNet and schedulers. The VAE and text encoders load separately."""

    kind: StageKind
    folder: Path
    unet: nn.Module
    scheduler_config: dict
    noising_scheduler_config: dict | None = None

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
