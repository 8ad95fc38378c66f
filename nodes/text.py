"""Prompt nodes: encode, and save / load embeddings so T5 runs once per prompt."""

from __future__ import annotations

from ..show1_core.errors import InputError
from ..show1_core.text import encode_conditioning, load_conditioning, save_conditioning
from . import comfy
from .common import COND, TEXT_ENCODER, Show1Node, file_in

EMBEDS_DIR = "show1_embeds"
SUFFIX = ".safetensors"
NONE_SAVED = "(none saved yet)"


def embeds_dir():
    return comfy.output_directory() / EMBEDS_DIR


def saved_embeds() -> list[str]:
    folder = embeds_dir()
    files = sorted(p.name for p in folder.glob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []
    return files or [NONE_SAVED]


class Show1TextEncode(Show1Node):
    DESCRIPTION = ("Encodes a prompt for the Show-1 stages: T5 embeddings for the pixel stages, CLIP embeddings for "
                   "the latent stage (whichever encoders are loaded).")
    RETURN_TYPES = (COND,)
    RETURN_NAMES = ("cond",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder": (TEXT_ENCODER, {"tooltip": "From Show1TextEncoderLoader."}),
            "prompt": ("STRING", {"multiline": True, "default": "A burning lamborghini driving on rainbow.",
                                  "tooltip": "What the video shows."}),
            "negative_prompt": ("STRING", {"multiline": True, "default": "low resolution, blur",
                                           "tooltip": "What to avoid, for the latent stage (CLIP), as published."}),
            "pixel_negative_prompt": ("STRING", {"multiline": True, "default": "",
                                                 "tooltip": "What to avoid in the pixel stages (T5); the published "
                                                            "cascade leaves it empty."}),
            "clean_caption": ("BOOLEAN", {"default": False, "tooltip": "DeepFloyd IF's caption cleaning before T5 "
                                                                      "(off in the published cascade)."}),
        }}

    def execute(self, text_encoder, prompt, negative_prompt, pixel_negative_prompt, clean_caption):
        placement = comfy.ComfyPlacement(text_encoder.offload, text_encoder.patchers)
        return (encode_conditioning(text_encoder.t5, text_encoder.clip, prompt, negative_prompt,
                                    pixel_negative_prompt, clean_caption, placement),)


class Show1SaveEmbeds(Show1Node):
    DESCRIPTION = f"Saves prompt embeddings to output/{EMBEDS_DIR} so Show1LoadEmbeds can reuse them without T5."
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "cond": (COND, {"tooltip": "Embeddings from Show1TextEncode."}),
            "name": ("STRING", {"default": "show1_prompt", "tooltip": "File name (letters, digits, '-', '_', '.'), "
                                                                      f"saved as <name>{SUFFIX} in output/{EMBEDS_DIR}."}),
        }}

    @classmethod
    def check(cls, values):
        if values.get("name") is not None:
            file_in(embeds_dir(), f"{values['name']}{SUFFIX}", "name", SUFFIX)

    def execute(self, cond, name):
        path = save_conditioning(cond, file_in(embeds_dir(), f"{name}{SUFFIX}", "name", SUFFIX))
        return {"ui": {"text": [f"saved {path.name}"]}, "result": ()}


class Show1LoadEmbeds(Show1Node):
    DESCRIPTION = f"Loads prompt embeddings saved by Show1SaveEmbeds (output/{EMBEDS_DIR}); no text encoder needed."
    RETURN_TYPES = (COND,)
    RETURN_NAMES = ("cond",)
    DYNAMIC = ("name",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (saved_embeds(), {"tooltip": f"A file in output/{EMBEDS_DIR}."})}}

    @classmethod
    def check(cls, values):
        name = values.get("name")
        if name == NONE_SAVED:
            raise InputError(f"name: no embeddings are saved in {embeds_dir()} yet; save some with Show1SaveEmbeds")
        if name is not None:
            file_in(embeds_dir(), name, "name", SUFFIX)

    @classmethod
    def IS_CHANGED(cls, name):
        try:
            path = file_in(embeds_dir(), name, "name", SUFFIX)
        except InputError:
            return str(name)
        return path.stat().st_mtime_ns if path.is_file() else name

    def execute(self, name):
        path = file_in(embeds_dir(), name, "name", SUFFIX)
        if not path.is_file():
            raise InputError(f"name: {path} does not exist; save embeddings with Show1SaveEmbeds first")
        return (load_conditioning(path),)
