"""Everything the pack needs from ComfyUI, in one place.

Inside ComfyUI these use folder_paths, comfy.model_management and comfy.utils.ProgressBar. In a
plain Python process (tests, tooling) the same functions fall back to plain behaviour: the CPU,
no progress bar, no interruption, model folders from SHOW1_MODELS_DIR.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..show1_core.memory import Offload, empty_cache, module_device
from ..show1_core.progress import StepEvent

log = logging.getLogger("show1")

try:  # ComfyUI is importable only inside a ComfyUI process (or with its checkout on sys.path)
    import comfy.model_management as mm
    import comfy.utils
    import folder_paths
except ImportError:
    mm = folder_paths = None

IN_COMFYUI = folder_paths is not None
FOLDER_KEY = "show1"
EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_workflows" / "input"


def register_model_folder() -> None:
    """models/show1 (also reachable with a `show1:` key in extra_model_paths.yaml)."""
    if IN_COMFYUI:
        folder_paths.add_model_folder_path(FOLDER_KEY, os.path.join(folder_paths.models_dir, FOLDER_KEY))


def model_roots() -> list[Path]:
    if IN_COMFYUI:
        return [Path(p) for p in folder_paths.get_folder_paths(FOLDER_KEY)]
    env = os.environ.get("SHOW1_MODELS_DIR")
    return [Path(p) for p in env.split(os.pathsep)] if env else []


def output_directory() -> Path:
    if IN_COMFYUI:
        return Path(folder_paths.get_output_directory())
    return Path(os.environ.get("SHOW1_OUTPUT_DIR", "output"))


def install_example_inputs() -> None:
    """Copy the example keyframe PNGs into ComfyUI's input folder once, for the example workflows."""
    if not IN_COMFYUI or not EXAMPLE_INPUTS.is_dir():
        return
    target = Path(folder_paths.get_input_directory())
    for png in EXAMPLE_INPUTS.glob("*.png"):
        if not (target / png.name).exists():
            try:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(png, target / png.name)
            except OSError as e:
                log.warning("Show-1: could not copy example input %s: %s", png.name, e)


def compute_device() -> torch.device:
    return mm.get_torch_device() if IN_COMFYUI else torch.device("cpu")


def offload_device() -> torch.device:
    return mm.unet_offload_device() if IN_COMFYUI else torch.device("cpu")


def output_device() -> torch.device:
    return mm.intermediate_device() if IN_COMFYUI else torch.device("cpu")


def resolve_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """"auto": bf16 or fp16 where ComfyUI deems the device fit for it, else fp32."""
    fixed = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name in fixed:
        return fixed[name]
    device = device or compute_device()
    if IN_COMFYUI and mm.should_use_bf16(device):
        return torch.bfloat16
    if IN_COMFYUI and mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel (clears the flag)."""
    if IN_COMFYUI:
        mm.throw_exception_if_processing_interrupted()


def progress_callback(preview: bool = True):
    """A show1_core step callback that drives the node's progress bar, with frame previews when the
    user enabled previews (--preview-method)."""
    if not IN_COMFYUI:
        return None
    from comfy.cli_args import LatentPreviewMethod, args

    bar = comfy.utils.ProgressBar(1)
    want_preview = preview and args.preview_method != LatentPreviewMethod.NoPreviews

    def callback(event: StepEvent) -> None:
        image = None
        if want_preview and event.preview is not None and event.preview.shape[1] == 3:
            image = ("JPEG", preview_image(event.preview), args.preview_size)
        bar.update_absolute(event.step, event.total, image)

    return callback


def preview_image(video: torch.Tensor):
    """The middle frame of a pixel video (B, 3, F, H, W) in [-1, 1] as a PIL image."""
    from PIL import Image

    frame = video[0, :, video.shape[2] // 2].float().clamp(-1, 1).add(1).mul(127.5).byte()
    return Image.fromarray(frame.permute(1, 2, 0).cpu().numpy())


class ComfyPlacement:
    """Moves a Show-1 model to ComfyUI's compute device while it runs, after asking ComfyUI to free
    room for it, and back to the offload device per the policy; ComfyUI's own models stay managed."""

    def __init__(self, policy: Offload | str = Offload.STAGE):
        self.policy = Offload(policy)

    @contextmanager
    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> Iterator[torch.device]:
        device = compute_device()
        if module_device(module) != device:
            if IN_COMFYUI:
                mm.free_memory(mm.module_size(module) * 1.2, device)
            module.to(device)
        try:
            yield device
        finally:
            offload = self.policy is Offload.WINDOW or (self.policy is Offload.STAGE and scope is Offload.STAGE)
            target = offload_device()
            if offload and target != device:
                module.to(target)
                if IN_COMFYUI:
                    mm.soft_empty_cache()
            if device.type == "cpu" and scope is Offload.STAGE:
                empty_cache(device)
