"""Loader nodes: stage models, the latent stage's VAE and the text encoders.

Each loads its weights once, onto ComfyUI's offload device (never a second copy), and registers
the model with ComfyUI's model manager; the stage nodes bring it to the GPU when they run.
"""

from __future__ import annotations

import torch

from ..show1_core.errors import InputError, Show1Error
from ..show1_core.loading import StageKind, load_stage, load_vae
from ..show1_core.memory import Offload
from ..show1_core.text import load_text_encoder
from . import comfy, widgets
from .common import MODEL, NO_MODELS, TEXT_ENCODER, VAE, Show1Model, Show1Node, Show1TextEncoders, Show1VAE, \
    find_stage, stage_choices


def folder_signature(choice: str, *kinds: StageKind) -> str:
    """Changes when any file of the folder changes, so a re-downloaded stage is loaded again."""
    try:
        folder = find_stage(choice, *kinds).folder
    except Show1Error:
        return str(choice)
    stamps = sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    return repr(stamps)


class Show1ModelLoader(Show1Node):
    DESCRIPTION = ("Loads one Show-1 stage folder from models/show1 (show-1-base, show-1-interpolation, show-1-sr1, "
                   "show-1-sr2 or IF-II-L-v1.0). The stage is recognised from its configs and shown in brackets.")
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded stage, for the sampler, interpolation or upscale node of that stage.",)
    DYNAMIC = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (stage_choices(), {"tooltip": "A stage folder under models/show1; download the official ones "
                                                   "with `python -m show1_core download`."}),
            "dtype": widgets.dtype(),
            "offload": widgets.OFFLOAD,
        }}

    @classmethod
    def check(cls, values):
        if values.get("model") is not None:
            find_stage(values["model"])

    @classmethod
    def IS_CHANGED(cls, model, **_):
        return folder_signature(model)

    def execute(self, model, dtype, offload):
        info = find_stage(model)
        stage = load_stage(info.folder, comfy.resolve_dtype(dtype), comfy.offload_device())
        return (Show1Model(stage, Offload(offload), comfy.managed(stage.unet)),)


class Show1VAELoader(Show1Node):
    DESCRIPTION = "Loads the VAE of a show-1-sr2 folder: it turns frames into Show-1 latents and back."
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)
    DYNAMIC = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (stage_choices(StageKind.SR2), {"tooltip": "The show-1-sr2 folder (it holds the VAE)."}),
            "dtype": widgets.dtype("fp32", "fp32 avoids VAE overflow artefacts; fp16/bf16 halve its memory."),
        }}

    @classmethod
    def check(cls, values):
        if values.get("model") is not None:
            find_stage(values["model"], StageKind.SR2)

    @classmethod
    def IS_CHANGED(cls, model, **_):
        return folder_signature(model, StageKind.SR2)

    def execute(self, model, dtype):
        info = find_stage(model, StageKind.SR2)
        vae = load_vae(info.folder, comfy.resolve_dtype(dtype), comfy.offload_device())
        return (Show1VAE(vae, comfy.managed(vae)),)


T5_COST = ("T5-XXL has 4.7 B parameters: about 9.5 GB in fp16/bf16, 19 GB in fp32. gpu: a second per prompt, but "
           "it needs that much free VRAM while it encodes. cpu: no VRAM, that much RAM instead, and tens of seconds "
           "per prompt. Save the embeddings with Show1SaveEmbeds to skip T5 next time.")


class Show1TextEncoderLoader(Show1Node):
    DESCRIPTION = ("Loads Show-1's text encoders: T5-XXL of show-1-base for the pixel stages and/or CLIP of "
                   "show-1-sr2 for the latent stage. " + T5_COST)
    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    DYNAMIC = ("t5_model", "clip_model")

    @classmethod
    def INPUT_TYPES(cls):
        none = ["none"]
        return {"required": {
            "t5_model": (none + [c for c in stage_choices(StageKind.BASE) if c != NO_MODELS], {
                "default": "none", "tooltip": "show-1-base folder whose T5 encodes prompts for the pixel stages."}),
            "clip_model": (none + [c for c in stage_choices(StageKind.SR2) if c != NO_MODELS], {
                "default": "none", "tooltip": "show-1-sr2 folder whose CLIP encodes prompts for the latent stage."}),
            "device": (["gpu", "cpu"], {"default": "gpu", "tooltip": "Where the encoders run. " + T5_COST}),
            "dtype": widgets.dtype("auto", "auto: bf16 or fp16 on a GPU (T5's overflow-prone layers stay fp32 in "
                                           "fp16), fp32 on the CPU (fastest there; bf16 halves the RAM but most CPUs "
                                           "compute it slowly)."),
            "offload_after_encoding": ("BOOLEAN", {
                "default": True, "tooltip": "Give the GPU memory back as soon as the prompt is encoded (T5 is only "
                                            "needed once per prompt). Off: it stays loaded for the next prompt, "
                                            "until ComfyUI needs the room."}),
        }}

    @classmethod
    def check(cls, values):
        t5, clip = values.get("t5_model"), values.get("clip_model")
        if t5 == "none" and clip == "none":
            raise InputError("t5_model / clip_model: both are 'none'; choose a T5 (show-1-base) and/or a CLIP "
                             "(show-1-sr2) folder")
        for choice, kind, argument in ((t5, StageKind.BASE, "t5_model"), (clip, StageKind.SR2, "clip_model")):
            if choice not in (None, "none"):
                find_stage(choice, kind, argument=argument)

    @classmethod
    def IS_CHANGED(cls, t5_model, clip_model, **_):
        return folder_signature(t5_model, StageKind.BASE) + folder_signature(clip_model, StageKind.SR2)

    def execute(self, t5_model, clip_model, device, dtype, offload_after_encoding=True):
        gpu = device == "gpu"
        target = comfy.compute_device() if gpu else torch.device("cpu")
        precision = comfy.resolve_dtype(dtype, target)

        def load(choice, kind, argument):
            if choice == "none":
                return None
            return load_text_encoder(find_stage(choice, kind, argument=argument).folder, precision,
                                     comfy.offload_device() if gpu else target)

        t5, clip = load(t5_model, StageKind.BASE, "t5_model"), load(clip_model, StageKind.SR2, "clip_model")
        patchers = [comfy.managed(e.model, target) for e in (t5, clip) if e is not None] if gpu else []
        return (Show1TextEncoders(t5, clip, patchers, Offload.STAGE if offload_after_encoding else Offload.KEEP),)
