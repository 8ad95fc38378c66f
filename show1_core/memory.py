"""Where each model lives while it runs.

A `Placement` moves a module to the compute device for the duration of a `with` block and decides
where it goes afterwards. The policies trade speed for memory:

* `keep`:   models stay on the compute device once used (fastest, most memory);
* `stage`:  a model goes back to the offload device when its stage ends;
* `window`: it goes back after every window of a windowed stage (least memory).

The ComfyUI nodes supply a placement that registers every model with ComfyUI's model manager
instead (the same policies, through `should_offload`), so our models and ComfyUI's own share the
GPU cooperatively.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import ContextManager, Iterator, Protocol

import torch

from .errors import InputError


class Offload(str, Enum):
    KEEP = "keep"
    STAGE = "stage"
    WINDOW = "window"


class Placement(Protocol):
    policy: Offload

    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> ContextManager[torch.device]:
        """Hold `module` on the compute device inside the block (a whole stage, or one window)."""


def should_offload(policy: Offload, scope: Offload) -> bool:
    """Whether a model leaves the compute device when a `use` block of `scope` ends: after every
    window under the `window` policy, after its stage under `stage`, never under `keep`."""
    return policy is Offload.WINDOW or (policy is Offload.STAGE and scope is Offload.STAGE)


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation failure on any device (CUDA's own error, or the allocators' RuntimeError)."""
    text = str(error)
    return isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text))


def module_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def empty_cache(device: torch.device) -> None:
    """Hand the memory a finished stage freed back to the system: the allocator's cached blocks on
    a GPU, the free part of the C heap on the CPU (the next stage allocates other shapes anyway)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
    elif device.type == "cpu" and (libc := glibc()) is not None:
        libc.malloc_trim(0)


@lru_cache(maxsize=1)
def glibc():
    """The C library where it is glibc (Linux), else None."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@dataclass
class DevicePlacement:
    """Plain device moves: to `device` while in use, back to `offload_device` per the policy."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    offload_device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    policy: Offload = Offload.KEEP

    def __post_init__(self):
        self.device = torch.device(self.device)
        self.offload_device = torch.device(self.offload_device)
        self.policy = Offload(self.policy)

    @contextmanager
    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> Iterator[torch.device]:
        """Run `module` on the compute device; `scope` says whether this block is a whole stage or
        one window, so the `window` policy offloads more often than `stage`."""
        module.to(self.device)
        try:
            yield self.device
        finally:
            offload = should_offload(self.policy, scope)
            if offload and self.offload_device != self.device:
                module.to(self.offload_device)
            if offload or scope is Offload.STAGE:
                empty_cache(self.device)


def default_placement(device: str | torch.device | None = None, policy: Offload | str = Offload.KEEP) -> DevicePlacement:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return DevicePlacement(torch.device(device), torch.device("cpu"), Offload(policy))


def parse_device(name: str, value: str) -> torch.device:
    """A device torch knows and this machine has, checked whole ("cpu:7" is refused)."""
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"{name}: {value!r} is not a device; use auto, cpu, cuda, cuda:1, mps") from None
    if device.type == "cpu" and device.index not in (None, 0):
        raise InputError(f"{name}: {value!r}: there is one CPU device; use cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{name}: {value!r}, but this machine has no CUDA GPU usable by torch "
                             f"{torch.__version__}; use {name} cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"{name}: {value!r}, but there are {torch.cuda.device_count()} CUDA device(s); use "
                             f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"{name}: 'mps' is not available here; use {name} cpu (or auto)")
        if device.index not in (None, 0):
            raise InputError(f"{name}: {value!r}: there is one MPS device; use mps")
    elif device.type != "cpu":
        raise InputError(f"{name}: {value!r} is not a device this pack runs on; use auto, cpu, cuda or mps")
    return device
