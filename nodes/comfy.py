"""Everything the pack needs from ComfyUI, in one place.

Inside ComfyUI these use folder_paths, comfy.model_management, comfy.model_patcher and
comfy.utils.ProgressBar. In a plain Python process (tests, tooling) the same functions fall back to
plain behaviour: the CPU, no progress bar, no interruption, model folders from SHOW1_MODELS_DIR.

Every Show-1 model is registered with ComfyUI's model manager through a `ModelPatcher`, and
brought to the compute device with `load_models_gpu` whenever a stage runs: ComfyUI sees it,
counts it, and can evict it when its own models need room.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..show1_core.memory import Offload, empty_cache, is_out_of_memory, module_dtype, should_offload

log = logging.getLogger("show1")

try:  # ComfyUI is importable only inside a ComfyUI process (or with its checkout on sys.path)
    import comfy.model_management as mm
    import comfy.model_patcher
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


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_CHOICES = ["auto", *DTYPES]


def resolve_dtype(name: str, device: torch.device | None = None) -> torch.dtype:
    """"auto": bf16 or fp16 where ComfyUI deems the device fit for it, else fp32."""
    if name in DTYPES:
        return DTYPES[name]
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


def is_interrupt(error: BaseException) -> bool:
    return IN_COMFYUI and isinstance(error, mm.InterruptProcessingException)


def progress_callback(preview: bool = True):
    """A show1_core step callback that drives the node's progress bar, with frame previews when the
    user enabled previews (--preview-method)."""
    if not IN_COMFYUI:
        return None
    from comfy.cli_args import LatentPreviewMethod, args

    bar = comfy.utils.ProgressBar(1)
    want_preview = preview and args.preview_method != LatentPreviewMethod.NoPreviews

    def callback(event) -> None:
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


# --- models under ComfyUI's model manager ----------------------------------------------------------

class Holder(torch.nn.Module):
    """A plain container for ModelPatcher, which sets `.device` on its model: diffusers and
    transformers models have a read-only `device` property."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def get_dtype(self) -> torch.dtype:
        return module_dtype(self.module)


def managed(module: torch.nn.Module, load_device: torch.device | None = None):
    """A ModelPatcher for `module` (None outside ComfyUI). Weights stay where the loader put them
    (the offload device) until a stage asks for them."""
    if not IN_COMFYUI or module is None:
        return None
    return comfy.model_patcher.ModelPatcher(Holder(module), load_device=load_device or compute_device(),
                                            offload_device=offload_device())


def unload(patcher) -> None:
    """Hand one model back to its offload device, as ComfyUI does when it needs room."""
    loaded = getattr(mm, "current_loaded_models", [])
    for i, entry in enumerate(list(loaded)):
        if entry.model is patcher:
            if entry.model_unload():
                loaded.remove(entry)
            break
    mm.soft_empty_cache()


def loaded_show1_models() -> list[dict]:
    """Show-1 models ComfyUI's model manager holds, for the pack's status route and the tests."""
    found = []
    for patcher in (mm.loaded_models() if IN_COMFYUI else []):
        inner = getattr(patcher, "model", None)
        if isinstance(inner, Holder):
            found.append({"class": type(inner.module).__name__, "device": str(patcher.current_loaded_device()),
                          "bytes": int(patcher.model_size())})
    return found


class ComfyPlacement:
    """A show1_core placement that lets ComfyUI's model manager place each model.

    `use(module)` loads the module's ModelPatcher with `load_models_gpu` (ComfyUI frees room for
    it, evicting only what it must) and, when the offload policy says the scope is over, hands it
    back with ComfyUI's own unload. Modules without a patcher (outside ComfyUI) run where they are.
    """

    def __init__(self, policy: Offload | str = Offload.STAGE, patchers=()):
        self.policy = Offload(policy)
        self.patchers = {id(p.model.module): p for p in patchers if p is not None}

    @contextmanager
    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> Iterator[torch.device]:
        patcher = self.patchers.get(id(module))
        if patcher is None:
            device = next(module.parameters()).device
            try:
                yield device
            finally:
                if device.type == "cpu" and scope is Offload.STAGE:
                    empty_cache(device)
            return
        mm.load_models_gpu([patcher], force_full_load=True)
        try:
            yield patcher.load_device
        finally:
            # where the compute device is the offload device (--cpu) there is nothing to move: the
            # model stays in ComfyUI's list until ComfyUI lets it go
            if should_offload(self.policy, scope) and patcher.load_device != patcher.offload_device:
                unload(patcher)
            elif scope is Offload.STAGE:
                empty_cache(patcher.load_device)


def out_of_memory(error: BaseException) -> bool:
    """Allocation failures, ComfyUI's own OOM exception included."""
    return is_out_of_memory(error) or (IN_COMFYUI and isinstance(error, mm.OOM_EXCEPTION))


def free_after_failure() -> None:
    """Give back what a failed or interrupted stage held (its tensors are unreachable by now), or
    whatever else was freed."""
    import gc

    gc.collect()
    if IN_COMFYUI:
        mm.soft_empty_cache()
    empty_cache(compute_device())
