"""Per-step hooks: progress reports for the caller and a chance to cancel.

Every denoising step of every stage reports a `StepEvent` to the caller's callback and then calls
the caller's cancellation check, which stops the run by raising (ComfyUI's interrupt exception,
KeyboardInterrupt, ...). Stages also check between windows and before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


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


class Progress:
    """Counts the steps of one stage call across its windows and forwards them to the hooks."""

    def __init__(self, stage: str, total: int, callback: StepCallback | None = None,
                 check_cancel: CancelCheck | None = None):
        self.stage, self.total, self.done = stage, total, 0
        self.callback, self.check_cancel = callback, check_cancel

    def check(self) -> None:
        if self.check_cancel is not None:
            self.check_cancel()

    def step(self, preview: torch.Tensor | None = None) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(StepEvent(self.stage, self.done, self.total, preview))
        self.check()
