"""A loaded Show-1 stage: its kind (declared in `registry`), its UNet and schedulers.

Shared by every module that talks about loaded stages (text encoding, the stages, the nodes);
reading folders and weights lives in `folders` and `loading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .errors import ModelLoadError
from .registry import StageKind
from .schedulers import build_scheduler, timesteps
from .weights import REDOWNLOAD


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
