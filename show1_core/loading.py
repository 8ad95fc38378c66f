"""Loading the models of stage folders: UNets, the VAE and the text encoders.

Every model is built on the meta device from its config, with the layers of a layer set, and its
weights are assigned from the files, so they are never materialised twice. Weights are stored in
the precision's storage dtype (fp8 storage keeps biases and norm scales in the compute dtype: they
are a rounding error of the memory and not of the output), and the model computes in its compute
dtype. `adopt(model)`, if given, sees the model after it is built and before its weights arrive
(ComfyUI wraps it in its model patcher there, as ComfyUI's own loaders do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import ModelLoadError
from .folders import inspect_stage, read_json, vae_folder
from .models.clip import CLIPTextConfig, CLIPTextEncoder
from .models.ops import operations_for
from .models.t5 import T5Config, T5Encoder
from .models.unet import Show1UNet, UNetConfig
from .models.vae import AutoencoderKL, VAEConfig, convert_legacy_keys
from .precision import Precision, is_fp8
from .stage import Stage, StageKind
from .text import TextEncoder
from .weights import REDOWNLOAD, assign_strict, find_weights, load_state_dict, stored_dtype

Adopt = Callable[[nn.Module], None]


def build_on_meta(factory) -> nn.Module:
    with torch.device("meta"):
        return factory()


def storage_dtype(precision: Precision) -> Callable[[str, torch.Tensor], torch.dtype]:
    """The dtype each tensor is stored in: the storage dtype, but one-dimensional tensors (biases,
    norm scales) stay in the compute dtype when the storage is fp8."""
    def dtype(key: str, tensor: torch.Tensor) -> torch.dtype:
        if is_fp8(precision.storage) and tensor.dim() < 2:
            return precision.compute
        return precision.storage
    return dtype


def as_stored(model: nn.Module, precision: Precision) -> None:
    """Give the meta model's parameters the dtypes their weights will have, so that what looks at
    it before the weights arrive (a model manager counting its bytes) sees the right sizes."""
    dtype = storage_dtype(precision)
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(torch.empty_like(p, dtype=dtype(name, p), device="meta"),
                                               requires_grad=False))


def load_model(factory: Callable[[object], nn.Module], directory: Path, library: str, precision: Precision,
               device: str | torch.device, ops=None, variant: str | None = None, adopt: Adopt | None = None,
               convert: Callable[[dict], dict] | None = None) -> nn.Module:
    """Build `factory(ops)` on the meta device and assign it the weights found in `directory`."""
    ops = ops or operations_for(precision.casts)
    model = build_on_meta(lambda: factory(ops))
    as_stored(model, precision)
    if adopt is not None:
        adopt(model)
    path, _ = find_weights(directory, library, variant)
    state = load_state_dict(path, storage_dtype(precision), device)
    for key in getattr(model, "IGNORED_KEYS", ()):
        state.pop(key, None)
    assign_strict(model, convert(state) if convert else state, path)
    model.compute_dtype = precision.compute
    return model.eval().requires_grad_(False)


def build_unet(config: dict, ops=None) -> Show1UNet:
    """A UNet of the cascade on the meta device, from its config: no memory, no weights."""
    cfg = UNetConfig.from_dict(config)
    return build_on_meta(lambda: Show1UNet(cfg, ops or operations_for(False)))


def load_stage(folder: str | Path, precision: Precision = Precision(), device: str | torch.device = "cpu",
               ops=None, variant: str | None = None, expect: StageKind | tuple[StageKind, ...] | None = None,
               adopt: Adopt | None = None) -> Stage:
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
                                 f"select the {' or '.join(k.folder for k in allowed)} folder")
    scheduler_config = read_json(info.folder / "scheduler" / "scheduler_config.json")
    noising = info.folder / "image_noising_scheduler" / "scheduler_config.json"
    noising_config = read_json(noising) if noising.is_file() else None
    if info.kind in (StageKind.SR1, StageKind.IF_II) and noising_config is None:
        raise ModelLoadError(f"{noising} is missing; {REDOWNLOAD}")
    config = info.unet_config
    unet = load_model(lambda ops: Show1UNet(config, ops), info.folder / "unet", "diffusers", precision, device, ops,
                      variant, adopt)
    unet.use_channels_last()
    stage = Stage(info.kind, info.folder, unet, scheduler_config, noising_config)
    stage.scheduler()  # a scheduler that cannot drive the stage fails now, not at its first step
    if noising_config is not None:
        stage.noising_scheduler()
    return stage


def load_vae(folder: str | Path, precision: Precision = Precision(), device: str | torch.device = "cpu", ops=None,
             variant: str | None = None, adopt: Adopt | None = None) -> AutoencoderKL:
    """The latent stage's AutoencoderKL (from a show-1-sr2 folder, or a bare `vae/` folder)."""
    folder = Path(folder)
    directory = vae_folder(folder)
    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no vae/ sub-folder (nor a VAE config.json): it is not a show-1-sr2 folder; "
                             "select the show-1-sr2 folder, which holds the VAE")
    raw = read_json(directory / "config.json")
    if raw.get("_class_name") != "AutoencoderKL":
        raise ModelLoadError(f"{directory}/config.json describes {raw.get('_class_name')}, not the AutoencoderKL "
                             "of show-1-sr2; select the show-1-sr2 folder")
    config = VAEConfig.from_dict(raw)
    return load_model(lambda ops: AutoencoderKL(config, ops), directory, "diffusers", precision, device, ops,
                      variant, adopt, convert_legacy_keys)


def text_model_on_meta(folder: str | Path) -> torch.nn.Module:
    """The text encoder of a stage folder on the meta device, from its config (no weights)."""
    info = inspect_stage(folder)
    raw = read_json(info.folder / "text_encoder" / "config.json")
    if info.kind is StageKind.BASE:
        config = T5Config.from_dict(raw)
        return build_on_meta(lambda: T5Encoder(config))
    config = CLIPTextConfig.from_dict(raw)
    return build_on_meta(lambda: CLIPTextEncoder(config))


def load_text_encoder(folder: str | Path, weights: torch.dtype | None = None, device: str | torch.device = "cpu",
                      ops=None, variant: str | None = None, adopt: Adopt | None = None) -> TextEncoder:
    """T5 from a show-1-base folder, or CLIP from a show-1-sr2 folder. Both compute in float32;
    `weights` is the dtype their weights are stored in (None: as the files store them; fp8
    saturates)."""
    from transformers import CLIPTokenizer, T5Tokenizer

    info = inspect_stage(folder)
    if not (info.has_t5 or info.has_clip):
        raise ModelLoadError(
            f"{info.folder} ({info.kind.label}) has no text encoder: T5 comes from the show-1-base folder, CLIP from "
            "the show-1-sr2 folder")
    for sub in ("tokenizer", "text_encoder"):
        if not (info.folder / sub).is_dir():
            raise ModelLoadError(f"{info.folder / sub} is missing; {REDOWNLOAD}")
    t5 = info.kind is StageKind.BASE
    try:
        if t5:
            tokenizer = T5Tokenizer.from_pretrained(str(info.folder / "tokenizer"), legacy=True, local_files_only=True)
        else:
            tokenizer = CLIPTokenizer.from_pretrained(str(info.folder / "tokenizer"), local_files_only=True)
    except (OSError, ValueError, TypeError, ImportError) as e:
        raise ModelLoadError(f"{info.folder / 'tokenizer'}: the tokenizer cannot be read ({type(e).__name__}: {e}); "
                             f"install the pack's requirements (sentencepiece, protobuf) or {REDOWNLOAD}") from None
    directory = info.folder / "text_encoder"
    raw = read_json(directory / "config.json")
    if t5:
        config = T5Config.from_dict(raw)
        factory = lambda ops: T5Encoder(config, ops)  # noqa: E731
    else:
        config = CLIPTextConfig.from_dict(raw)
        factory = lambda ops: CLIPTextEncoder(config, ops)  # noqa: E731
    if weights is None:
        weights = stored_dtype(find_weights(directory, "transformers", variant)[0])
    model = load_model(factory, directory, "transformers", Precision(torch.float32, weights), device, ops, variant,
                       adopt)
    return TextEncoder("t5" if t5 else "clip", tokenizer, model, info.folder)
