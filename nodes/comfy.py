"""Everything the pack needs from ComfyUI, in one place.

Inside ComfyUI these use folder_paths, comfy.model_management, comfy.model_patcher, comfy.ops and
comfy.utils.ProgressBar. In a plain Python process (tests, tooling) the same functions fall back to
plain behaviour: the CPU, plain torch layers, no progress bar, no interruption, model folders from
SHOW1_MODELS_DIR.

Every Show-1 model is built from ComfyUI's cast-capable layers (`comfy.ops`, picked by ComfyUI for
the device and the weight dtype), wrapped in ComfyUI's model patcher (the class ComfyUI names when
the model is wrapped, so its dynamic-VRAM patcher where it has one) and brought to the compute
device with `load_models_gpu` when a stage runs, with the stage's activation estimate as
`memory_required`: ComfyUI frees what it must and loads the model whole, or in part when it does
not fit, casting the rest layer by layer.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..show1_core.memory import (
    Offload,
    empty_cache,
    is_out_of_memory,
    module_device,
    should_offload,
)
from ..show1_core.precision import Precision, parse_precision

log = logging.getLogger("show1")

try:  # ComfyUI is importable only inside a ComfyUI process (or with its checkout on sys.path)
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops
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


def free_memory(device: torch.device) -> int | None:
    """Bytes a stage can have on `device`: on a GPU under ComfyUI, the free memory plus what its
    models hold and could give back; on the CPU, the system's available memory."""
    from ..show1_core.budget import free_bytes

    if not IN_COMFYUI or device.type == "cpu":
        return free_bytes(device) if device.type == "cpu" else None
    held = sum(m.model_loaded_memory() for m in mm.current_loaded_models if m.device == device)
    return int(mm.get_free_memory(device) + held)


def resolve_precision(compute: str, weights: str = "default", device: torch.device | None = None) -> Precision:
    """"auto": bf16 or fp16 where ComfyUI deems the device fit for it, else fp32."""
    device = device or compute_device()
    if compute == "auto" and IN_COMFYUI:
        compute = "bf16" if mm.should_use_bf16(device) else "fp16" if mm.should_use_fp16(device) else "fp32"
    return parse_precision(compute, weights, device)


def layer_set(precision: Precision, device: torch.device):
    """ComfyUI's layers for this weight and compute dtype (None outside ComfyUI: plain torch)."""
    if not IN_COMFYUI:
        return None
    base = comfy.ops.pick_operations(precision.storage, precision.compute, load_device=device)
    offloadable = hasattr(comfy.ops, "uncast_bias_weight")  # e.g. 0.33; 0.3.64 has the legacy cast only

    class ComfyOps:
        Linear, Conv2d, Conv3d, GroupNorm, LayerNorm, Embedding = (base.Linear, base.Conv2d, base.Conv3d,
                                                                   base.GroupNorm, base.LayerNorm, base.Embedding)

        @staticmethod
        def weights(module: torch.nn.Module, like: torch.Tensor):
            """As the layer's own forward would: cast when ComfyUI switched the layer to casting, with
            the offloadable cast where ComfyUI has it (handed back by `release_casts`)."""
            if not (module.comfy_cast_weights or module.weight_function or module.bias_function):
                return module.weight, module.bias
            if not offloadable:
                return comfy.ops.cast_bias_weight(module, like)
            release_casts()
            weight, bias, handle = comfy.ops.cast_bias_weight(module, like, offloadable=True)
            _open_casts.append((module, weight, bias, handle))
            return weight, bias

    return ComfyOps


_open_casts: list[tuple] = []


def release_casts() -> None:
    """Hand back the offloadable casts of the layer sets' `weights` (ComfyUI's uncast_bias_weight,
    due after the last use of the cast weights). Their callers issue the op that uses the weights
    before they ask for the next ones, so the next functional cast, and the end of a model's scope
    (`ComfyPlacement.use`), find every earlier cast used. ComfyUI runs one prompt at a time."""
    while _open_casts:
        comfy.ops.uncast_bias_weight(*_open_casts.pop())


def patcher_class():
    """The patcher ComfyUI wraps models in, looked up now: ComfyUI 0.16+ rebinds CoreModelPatcher at
    start to its dynamic-VRAM patcher; older releases have only ModelPatcher."""
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)


class Adopter:
    """The `adopt` hook of show1_core's loaders: wraps the freshly built model in ComfyUI's patcher
    before its weights arrive, as ComfyUI's own loaders do, so a dynamic patcher can take them over."""

    def __init__(self, load_device: torch.device | None = None):
        self.load_device = load_device
        self.patcher = None

    def __call__(self, model: torch.nn.Module) -> None:
        if IN_COMFYUI:
            self.patcher = patcher_class()(model, load_device=self.load_device or compute_device(),
                                           offload_device=offload_device())

    @property
    def dynamic(self) -> bool:
        is_dynamic = getattr(self.patcher, "is_dynamic", None)
        return bool(is_dynamic()) if callable(is_dynamic) else False


def stop_if_interrupted() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel (clears the flag)."""
    if IN_COMFYUI:
        mm.throw_exception_if_processing_interrupted()


def is_interrupt(error: BaseException) -> bool:
    return IN_COMFYUI and isinstance(error, mm.InterruptProcessingException)


def executing_node() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return None if context is None else str(context.node_id)


def warn(message: str) -> None:
    """A warning the user sees: in the log, and as text on the running node in the UI."""
    log.warning("Show-1: %s", message)
    node = executing_node() if IN_COMFYUI else None
    if node is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(f"⚠ {message}", node)
    except (ImportError, AttributeError):
        pass


def progress_callback(preview: bool = True):
    """A show1_core step callback that drives the node's progress bar, with frame previews when the
    user enabled previews (--preview-method)."""
    if not IN_COMFYUI:
        return None
    from comfy.cli_args import LatentPreviewMethod, args

    bar = comfy.utils.ProgressBar(1)
    want_preview = preview and args.preview_method != LatentPreviewMethod.NoPreviews
    latent_previewer = []

    def callback(event) -> None:
        image = None
        if want_preview and event.preview is not None and event.preview.shape[1] == 3:
            image = ("JPEG", preview_image(event.preview), args.preview_size)
        elif want_preview and event.preview is not None and event.preview.shape[1] == 4:
            image = latent_preview(event.preview, latent_previewer)
        bar.update_absolute(event.step, event.total, image)

    return callback


def latent_preview(latents: torch.Tensor, cache: list):
    """The middle frame of a Show-1 latent video (B, 4, F, h, w) (scaled SD-VAE latents) through
    ComfyUI's own previewer for SD 1.x latents: its latent2rgb map, or TAESD where the user chose it,
    as the preview setting says; None where it gives none."""
    import latent_preview as comfy_latent_preview
    from comfy import latent_formats

    if not cache:
        cache.append(comfy_latent_preview.get_previewer(compute_device(), latent_formats.SD15()))
    previewer = cache[0]
    if previewer is None:
        return None
    frame = latents[:1, :, latents.shape[2] // 2].float()
    return previewer.decode_latent_to_preview_image("JPEG", frame)


def preview_image(video: torch.Tensor):
    """The middle frame of a pixel video (B, 3, F, H, W) in [-1, 1] as a PIL image (previews show
    the middle frame of the video being denoised)."""
    from PIL import Image

    frame = video[0, :, video.shape[2] // 2].float().clamp(-1, 1).add(1).mul(127.5).byte()
    return Image.fromarray(frame.permute(1, 2, 0).cpu().numpy())


# --- models under ComfyUI's model manager ----------------------------------------------------------

def unload(patcher) -> None:
    """Hand one model back to its offload device, as ComfyUI does when it needs room."""
    loaded = getattr(mm, "current_loaded_models", [])
    for entry in list(loaded):
        if entry.model is patcher:
            if entry.model_unload():
                loaded.remove(entry)
            break
    mm.soft_empty_cache()


def show1_model_classes() -> tuple[type, ...]:
    from ..show1_core.models.clip import CLIPTextEncoder
    from ..show1_core.models.t5 import T5Encoder
    from ..show1_core.models.unet import Show1UNet
    from ..show1_core.models.vae import AutoencoderKL

    return Show1UNet, AutoencoderKL, T5Encoder, CLIPTextEncoder


def loaded_show1_models() -> list[dict]:
    """Show-1 models ComfyUI's model manager holds, for the pack's status route and the tests."""
    found = []
    for patcher in (mm.loaded_models() if IN_COMFYUI else []):
        inner = getattr(patcher, "model", None)
        if isinstance(inner, show1_model_classes()):
            found.append({"class": type(inner).__name__, "device": str(patcher.current_loaded_device()),
                          "bytes": int(patcher.model_size()), "loaded_bytes": int(patcher.loaded_size())})
    return found


class ComfyPlacement:
    """A show1_core placement that lets ComfyUI's model manager place each model.

    `use(module)` loads the module's patcher with `load_models_gpu`, asking for the stage's
    activation estimate on top (`memory_required`, by module): ComfyUI frees room, evicting only
    what it must, and loads the module whole or in part. When the offload policy says the scope is
    over, the module goes back with ComfyUI's own unload. Modules without a patcher run where they
    are.
    """

    def __init__(self, policy: Offload | str = Offload.STAGE, patchers=(), memory_required: dict | None = None):
        self.policy = Offload(policy)
        self.patchers = {id(p.model): p for p in patchers if p is not None}
        self.memory_required = memory_required or {}

    def add(self, module, patcher, memory_required: int = 0) -> None:
        self.patchers[id(module)] = patcher
        self.memory_required[id(module)] = memory_required

    @contextmanager
    def use(self, module: torch.nn.Module, scope: Offload = Offload.STAGE) -> Iterator[torch.device]:
        patcher = self.patchers.get(id(module))
        if patcher is None:
            device = module_device(module)
            try:
                yield device
            finally:
                if device.type == "cpu" and scope is Offload.STAGE:
                    empty_cache(device)
            return
        mm.load_models_gpu([patcher], memory_required=int(self.memory_required.get(id(module), 0)))
        try:
            yield patcher.load_device
        finally:
            release_casts()
            # where the compute device is the offload device (--cpu) there is nothing to move: the
            # model stays in ComfyUI's list until ComfyUI lets it go
            if should_offload(self.policy, scope) and patcher.load_device != patcher.offload_device:
                unload(patcher)
            elif scope is Offload.STAGE:
                empty_cache(patcher.load_device)


def run_context_for(placement: ComfyPlacement):
    """The run context of a node's call: this placement, the node's progress bar, Cancel, warnings."""
    from ..show1_core.context import RunContext

    return RunContext(placement, progress_callback(), stop_if_interrupted, on_warning=warn)


def out_of_memory(error: BaseException) -> bool:
    """Allocation failures, ComfyUI's own OOM exception included."""
    return is_out_of_memory(error) or (IN_COMFYUI and isinstance(error, mm.OOM_EXCEPTION))


def free_after_failure() -> None:
    """Give back what a failed or interrupted stage held (its tensors are unreachable by now), or
    whatever else was freed."""
    gc.collect()
    if IN_COMFYUI:
        release_casts()
        mm.soft_empty_cache()
    empty_cache(compute_device())


# --- ComfyUI's own T5-XXL as a Show-1 text encoder ------------------------------------------------

class ComfyT5(torch.nn.Module):
    """The T5-XXL of a ComfyUI `CLIP` (CLIPLoader type pixart, or the t5xxl of an SD3 / Flux pair)
    as show1_core's text model: token ids and their attention mask in, the last hidden states of
    all positions out, float32. The CLIP's patcher loads it."""

    def __init__(self, transformer: torch.nn.Module, patcher):
        super().__init__()
        self.transformer = [transformer]  # a list: not a sub-module, ComfyUI owns and places it
        self.patcher = patcher
        self.width = transformer.shared.embedding_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out, _ = self.transformer[0](ids, mask, dtype=torch.float32)
        return out.float()


def comfy_t5(clip):
    """(tokenizer, T5 transformer, patcher) of a ComfyUI CLIP holding T5-XXL, or None."""
    model = getattr(getattr(clip, "cond_stage_model", None), "t5xxl", None)
    tokenizers = getattr(clip, "tokenizer", None)
    tokenizer = getattr(tokenizers, "t5xxl", None) or getattr(tokenizers, "clip_t5xxl", None)
    transformer = getattr(model, "transformer", None)
    if transformer is None or tokenizer is None or not hasattr(transformer, "shared"):
        return None
    return tokenizer.tokenizer, transformer, clip.patcher
