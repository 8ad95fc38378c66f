"""Loader nodes: stage models, the latent stage's VAE and the text encoders."""

from __future__ import annotations

from ..show1_core.errors import Show1Error
from ..show1_core.loading import StageKind, load_stage, load_vae
from ..show1_core.memory import Offload
from ..show1_core.text import load_text_encoder
from . import comfy
from .common import MODEL, NO_MODELS, TEXT_ENCODER, VAE, Show1Model, Show1Node, Show1TextEncoders, find_stage, \
    stage_choices, validate_choice

DTYPES = ["auto", "fp32", "fp16", "bf16"]
DTYPE_TIP = "Weights' precision. auto: bf16/fp16 where the GPU supports it, fp32 on the CPU."


def folder_signature(choice: str, *kinds: StageKind) -> str:
    """Changes when any file of the folder changes, so a re-downloaded stage is loaded again."""
    try:
        folder = find_stage(choice, *kinds).folder
    except Show1Error:
        return choice
    stamps = sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    return repr(stamps)


class Show1ModelLoader(Show1Node):
    DESCRIPTION = ("Loads one Show-1 stage folder from models/show1 (show-1-base, show-1-interpolation, show-1-sr1, "
                   "show-1-sr2 or IF-II-L-v1.0). The stage is recognised from its configs and shown in brackets.")
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded stage, for the sampler, interpolation or upscale node of that stage.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (stage_choices(), {"tooltip": "A stage folder under models/show1; download the official ones "
                                                   "with `python -m show1_core download`."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TIP}),
            "offload": ([o.value for o in Offload], {
                "default": "stage", "tooltip": "keep: stay on the GPU (fastest). stage: back to the CPU after each "
                                               "node. window: back after every window (least VRAM)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        return validate_choice(model)

    @classmethod
    def IS_CHANGED(cls, model, **_):
        return folder_signature(model)

    def execute(self, model, dtype, offload):
        info = find_stage(model)
        stage = load_stage(info.folder, comfy.resolve_dtype(dtype), comfy.offload_device())
        return (Show1Model(stage, Offload(offload)),)


class Show1VAELoader(Show1Node):
    DESCRIPTION = "Loads the VAE of a show-1-sr2 folder: it turns frames into Show-1 latents and back."
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (stage_choices(StageKind.SR2), {"tooltip": "The show-1-sr2 folder (it holds the VAE)."}),
            "dtype": (DTYPES, {"default": "fp32", "tooltip": "fp32 avoids VAE overflow artefacts; " + DTYPE_TIP}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        return validate_choice(model, StageKind.SR2)

    @classmethod
    def IS_CHANGED(cls, model, **_):
        return folder_signature(model, StageKind.SR2)

    def execute(self, model, dtype):
        info = find_stage(model, StageKind.SR2)
        return (load_vae(info.folder, comfy.resolve_dtype(dtype), comfy.offload_device()),)


class Show1TextEncoderLoader(Show1Node):
    DESCRIPTION = ("Loads Show-1's text encoders: T5-XXL of show-1-base for the pixel stages and/or CLIP of "
                   "show-1-sr2 for the latent stage. T5 is 4.7 B parameters: run it on the CPU if VRAM is short, "
                   "and save its embeddings with Show1SaveEmbeds to skip it next time.")
    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)

    @classmethod
    def INPUT_TYPES(cls):
        none = ["none"]
        return {"required": {
            "t5_model": (none + [c for c in stage_choices(StageKind.BASE) if c != NO_MODELS], {
                "default": "none", "tooltip": "show-1-base folder whose T5 encodes prompts for the pixel stages."}),
            "clip_model": (none + [c for c in stage_choices(StageKind.SR2) if c != NO_MODELS], {
                "default": "none", "tooltip": "show-1-sr2 folder whose CLIP encodes prompts for the latent stage."}),
            "device": (["gpu", "cpu"], {"default": "gpu", "tooltip": "cpu keeps the large T5 off the GPU."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": DTYPE_TIP}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, t5_model, clip_model):
        if t5_model == "none" and clip_model == "none":
            return "Show1TextEncoderLoader: choose a T5 (show-1-base) and/or a CLIP (show-1-sr2) folder"
        for choice, kind in ((t5_model, StageKind.BASE), (clip_model, StageKind.SR2)):
            if choice != "none" and (msg := validate_choice(choice, kind)) is not True:
                return msg
        return True

    @classmethod
    def IS_CHANGED(cls, t5_model, clip_model, **_):
        return folder_signature(t5_model, StageKind.BASE) + folder_signature(clip_model, StageKind.SR2)

    def execute(self, t5_model, clip_model, device, dtype):
        target = comfy.compute_device() if device == "gpu" else comfy.offload_device()
        precision = comfy.resolve_dtype(dtype, target)

        def load(choice, kind):
            return None if choice == "none" else load_text_encoder(find_stage(choice, kind).folder, precision, target)

        return (Show1TextEncoders(load(t5_model, StageKind.BASE), load(clip_model, StageKind.SR2)),)
