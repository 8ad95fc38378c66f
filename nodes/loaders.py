"""Loader nodes: stage models, the latent stage's VAE and the text encoders.

Each builds its model from ComfyUI's cast-capable layers (picked for the device and the weight
dtype), hands it to ComfyUI's model patcher before the weights arrive, and loads the weights once
onto ComfyUI's offload device; the stage nodes bring it to the GPU, whole or in part, when they run.
"""

from __future__ import annotations

import torch

from ..show1_core.errors import InputError, Show1Error
from ..show1_core.loading import load_stage, load_text_encoder, load_vae
from ..show1_core.memory import Offload
from ..show1_core.precision import COMPUTE_CHOICES, WEIGHT_CHOICES, Precision
from ..show1_core.stage import StageKind
from . import comfy
from .common import (
    MODEL,
    NO_MODELS,
    TEXT_ENCODER,
    VAE,
    Show1Model,
    Show1TextEncoders,
    Show1VAE,
    find_stage,
    stage_choices,
)
from .declare import Input, Node, Output, combo

CATEGORY = "Show-1/loaders"
DTYPE_TIP = ("The arithmetic. auto: bf16 or fp16 where ComfyUI deems the GPU fit for it, fp32 on the CPU. fp16 and "
             "bf16 halve the memory of fp32; bf16 has fewer overflows.")
WEIGHT_DTYPE_TIP = ("How the weights are stored, as ComfyUI's UNETLoader offers it: default (as computed), fp16, "
                    "bf16, or fp8_e4m3fn / fp8_e5m2 (a quarter of fp32; each layer casts its weights as it runs). "
                    "fp8 moves the video a little (see the README for how much).")
OFFLOAD_TIP = ("Where the model waits between uses, managed by ComfyUI's model manager (which can always evict it "
               "for other models, or load it in part when the GPU is small). keep: stays on the GPU (fastest). "
               "stage: back to the CPU after each node. window: back after every window (least VRAM, slowest).")


def folder_signature(choice: str, *kinds: StageKind) -> str:
    """Changes when any file of the folder changes, so a re-downloaded stage is loaded again."""
    try:
        folder = find_stage(choice, *kinds).folder
    except Show1Error:
        return str(choice)
    stamps = sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    return repr(stamps)


def weight_dtype_input() -> Input:
    return combo("weight_dtype", WEIGHT_CHOICES, "default", WEIGHT_DTYPE_TIP, optional=True)


def load_on_comfy(load, layers: Precision, load_device=None, **kwargs):
    """Run a show1_core loader with ComfyUI's layers for `layers` (the precision the model will have)
    and its patcher: (model, patcher)."""
    adopter = comfy.Adopter(load_device)
    model = load(ops=comfy.layer_set(layers, load_device or comfy.compute_device()), adopt=adopter, **kwargs)
    return model, adopter.patcher


class Show1ModelLoader(Node):
    id, display_name, category = "Show1ModelLoader", "Show-1 Model Loader", CATEGORY
    description = ("Loads one Show-1 stage folder from models/show1 (show-1-base, show-1-interpolation, show-1-sr1, "
                   "show-1-sr2 or IF-II-L-v1.0). The stage is recognised from its configs and shown in brackets.")
    outputs = (Output(MODEL, "model", "The loaded stage, for the sampler, interpolation or upscale node of that "
                                      "stage."),)

    @classmethod
    def inputs(cls):
        return [combo("model", stage_choices, None, "A stage folder under models/show1; download the official ones "
                      "with `python -m show1_core download`.", dynamic=True),
                combo("dtype", COMPUTE_CHOICES, "auto", DTYPE_TIP),
                combo("offload", tuple(o.value for o in Offload), "stage", OFFLOAD_TIP),
                weight_dtype_input()]

    @classmethod
    def validate_across(cls, values):
        if values.get("model") is not None:
            find_stage(values["model"])

    @classmethod
    def fingerprint(cls, model=None, **_):
        return folder_signature(model)

    @classmethod
    def execute(cls, model, dtype, offload, weight_dtype="default"):
        info = find_stage(model)
        precision = comfy.resolve_precision(dtype, weight_dtype)
        stage, patcher = load_on_comfy(load_stage, precision, folder=info.folder, precision=precision,
                                       device=comfy.offload_device())
        return (Show1Model(stage, Offload(offload), patcher),)


class Show1VAELoader(Node):
    id, display_name, category = "Show1VAELoader", "Show-1 VAE Loader", CATEGORY
    description = "Loads the VAE of a show-1-sr2 folder: it turns frames into Show-1 latents and back."
    outputs = (Output(VAE, "vae", "The show-1-sr2 VAE, for Show1VAEEncode and Show1FrameDecode."),)

    @classmethod
    def inputs(cls):
        return [combo("model", lambda: stage_choices(StageKind.SR2), None, "The show-1-sr2 folder (it holds the VAE).",
                      dynamic=True),
                combo("dtype", COMPUTE_CHOICES, "fp32", "fp32 avoids VAE overflow artefacts; fp16/bf16 halve its "
                                                        "memory."),
                weight_dtype_input()]

    @classmethod
    def validate_across(cls, values):
        if values.get("model") is not None:
            find_stage(values["model"], StageKind.SR2)

    @classmethod
    def fingerprint(cls, model=None, **_):
        return folder_signature(model, StageKind.SR2)

    @classmethod
    def execute(cls, model, dtype, weight_dtype="default"):
        info = find_stage(model, StageKind.SR2)
        precision = comfy.resolve_precision(dtype, weight_dtype)
        vae, patcher = load_on_comfy(load_vae, precision, folder=info.folder, precision=precision,
                                     device=comfy.offload_device())
        return (Show1VAE(vae, patcher),)


T5_COST = ("T5-XXL has 4.8 B parameters: about 9.5 GB in fp16/bf16, 19 GB in fp32, 4.8 GB in fp8. gpu: a second "
           "per prompt, but it needs that much free VRAM while it encodes (ComfyUI loads it in part when it does not "
           "fit). cpu: no VRAM, that much RAM instead, and tens of seconds per prompt. Save the embeddings with "
           "Show1SaveEmbeds to skip T5 next time, or use the t5xxl file ComfyUI already has (Show1TextEncode's t5 "
           "input).")
TEXT_DTYPES = {"auto": torch.float16, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Show1TextEncoderLoader(Node):
    id, display_name, category = "Show1TextEncoderLoader", "Show-1 Text Encoder Loader", CATEGORY
    description = ("Loads Show-1's text encoders: T5-XXL of show-1-base for the pixel stages and/or CLIP of "
                   "show-1-sr2 for the latent stage. " + T5_COST)
    outputs = (Output(TEXT_ENCODER, "text_encoder", "T5 and/or CLIP, for Show1TextEncode."),)

    @classmethod
    def inputs(cls):
        def listed(kind):
            return lambda: ["none"] + [c for c in stage_choices(kind) if c != NO_MODELS]

        return [combo("t5_model", listed(StageKind.BASE), "none", "show-1-base folder whose T5 encodes prompts for "
                      "the pixel stages.", dynamic=True),
                combo("clip_model", listed(StageKind.SR2), "none", "show-1-sr2 folder whose CLIP encodes prompts for "
                      "the latent stage.", dynamic=True),
                combo("device", ("gpu", "cpu"), "gpu", "Where the encoders run. " + T5_COST),
                combo("dtype", COMPUTE_CHOICES, "auto", "How the weights are held; the encoders compute in fp32 "
                      "whatever they are stored in. auto: fp16, the precision of the hub's files (nothing is lost)."),
                Input("offload_after_encoding", "BOOLEAN", "Give the GPU memory back as soon as the prompt is "
                      "encoded (T5 is only needed once per prompt). Off: it stays loaded for the next prompt, until "
                      "ComfyUI needs the room.", True),
                combo("weight_dtype", WEIGHT_CHOICES, "default", "fp8_e4m3fn / fp8_e5m2 store the weights in a "
                      "quarter of fp32 (T5-XXL: 4.8 GB); default: as dtype says.", optional=True)]

    @classmethod
    def validate_across(cls, values):
        t5, clip = values.get("t5_model"), values.get("clip_model")
        if t5 == "none" and clip == "none":
            raise InputError("t5_model / clip_model: both are 'none'; choose a T5 (show-1-base) and/or a CLIP "
                             "(show-1-sr2) folder")
        for choice, kind, argument in ((t5, StageKind.BASE, "t5_model"), (clip, StageKind.SR2, "clip_model")):
            if choice not in (None, "none"):
                find_stage(choice, kind, argument=argument)

    @classmethod
    def fingerprint(cls, t5_model=None, clip_model=None, **_):
        return folder_signature(t5_model, StageKind.BASE) + folder_signature(clip_model, StageKind.SR2)

    @classmethod
    def execute(cls, t5_model, clip_model, device, dtype, offload_after_encoding=True, weight_dtype="default"):
        gpu = device == "gpu"
        target = comfy.compute_device() if gpu else torch.device("cpu")
        storage = comfy.resolve_precision("fp32", weight_dtype).weights or TEXT_DTYPES[dtype]
        precision = Precision(torch.float32, storage)
        patchers = []

        def load(choice, kind, argument):
            if choice == "none":
                return None
            folder = find_stage(choice, kind, argument=argument).folder
            if not gpu:
                return load_text_encoder(folder, storage, target)
            encoder, patcher = load_on_comfy(load_text_encoder, precision, load_device=target, folder=folder,
                                             weights=storage, device=comfy.offload_device())
            patchers.append(patcher)
            return encoder

        t5, clip = load(t5_model, StageKind.BASE, "t5_model"), load(clip_model, StageKind.SR2, "clip_model")
        return (Show1TextEncoders(t5, clip, patchers, Offload.STAGE if offload_after_encoding else Offload.KEEP),)
