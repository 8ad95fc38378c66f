"""The run context: what a stage needs besides its inputs and settings.

* `placement` decides where each model runs and where it waits (see `memory`); by default a model
  runs where it is;
* `on_step` hears of every denoising step (`StepEvent`), e.g. to drive a progress bar;
* `cancel` is called before every UNet call and after every step; it stops the run by raising
  (ComfyUI's interrupt exception, KeyboardInterrupt, ...);
* `record` receives intermediate tensors by name (the parity checks and `--save-stages` read them);
* `on_warning` hears of silent changes the user should know of (a prompt cut to 77 tokens, ...).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .memory import Offload, Placement, empty_cache, module_device

log = logging.getLogger("show1")


@dataclass(frozen=True)
class StepEvent:
    stage: str  # "keyframes", "interpolation", "if_ii", "sr1", "sr2", "latent_interpolation", "vae"
    step: int  # steps done so far in this stage call, 1-based
    total: int
    preview: torch.Tensor | None = None  # current estimate (B, C, F, H, W); read-only, may be None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0


StepCallback = Callable[[StepEvent], None]
CancelCheck = Callable[[], None]
Recorder = Callable[[str, torch.Tensor], None]


@dataclass
class RunContext:
    placement: Placement | None = None
    on_step: StepCallback | None = None
    cancel: CancelCheck | None = None
    record: Recorder | None = None
    on_warning: Callable[[str], None] | None = None

    @contextmanager
    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> Iterator[torch.device]:
        """Hold `module` on its compute device inside the block (a whole stage, or one window)."""
        if self.placement is not None:
            with self.placement.use(module, scope) as device:
                yield device
            return
        device = module_device(module)
        try:
            yield device
        finally:
            if scope is Offload.STAGE:
                empty_cache(device)

    def stop_if_cancelled(self) -> None:
        if self.cancel is not None:
            self.cancel()

    def progress(self, stage: str, total: int) -> "Progress":
        return Progress(self, stage, total)

    def emit(self, name: str, tensor: torch.Tensor) -> None:
        if self.record is not None:
            self.record(name, tensor)

    def warn(self, message: str) -> None:
        (self.on_warning or log.warning)(message)


class Progress:
    """Counts the steps of one stage call across its windows and reports them."""

    def __init__(self, ctx: RunContext, stage: str, total: int):
        self.ctx, self.stage, self.total, self.done = ctx, stage, total, 0

    def step(self, preview: torch.Tensor | None = None) -> None:
        self.done += 1
        if self.ctx.on_step is not None:
            self.ctx.on_step(StepEvent(self.stage, self.done, self.total, preview))
        self.ctx.stop_if_cancelled()
