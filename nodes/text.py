"""Prompt nodes: encode (with the pack's T5 or ComfyUI's own t5xxl), and save / load embeddings so
T5 runs once per prompt."""

from __future__ import annotations

from ..show1_core.budget import text_call_bytes
from ..show1_core.errors import InputError
from ..show1_core.storyboard import split_lines
from ..show1_core.text import (
    TextEncoder,
    encode_conditioning,
    load_conditioning,
    save_conditioning,
)
from . import comfy
from .common import COND, TEXT_ENCODER, Show1TextEncoders, file_in
from .declare import Input, Node, Output, Result, combo, require_input, socket

CATEGORY = "Show-1/text"
EMBEDS_DIR = "show1_embeds"
SUFFIX = ".safetensors"
NONE_SAVED = "(none saved yet)"
COMFY_T5_TIP = ("ComfyUI's own T5-XXL instead of show-1-base's: connect the CLIP that CLIPLoader (type pixart) makes "
                "from t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors in models/text_encoders (the files Flux, "
                "SD3 and PixArt use), or a DualCLIPLoader's Flux / SD3 pair. It is DeepFloyd's T5 v1.1 XXL, encoded "
                "exactly as Show-1 encodes (77 tokens, padded, with the attention mask).")


def embeds_dir():
    return comfy.output_directory() / EMBEDS_DIR


def saved_embeds() -> list[str]:
    folder = embeds_dir()
    files = sorted(p.name for p in folder.glob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []
    return files or [NONE_SAVED]


def comfy_t5_encoder(clip, placement: comfy.ComfyPlacement) -> TextEncoder:
    """ComfyUI's T5-XXL as a Show-1 text encoder, placed by the CLIP's own patcher."""
    found = comfy.comfy_t5(clip)
    if found is None:
        raise InputError(f"t5: this CLIP ({type(getattr(clip, 'cond_stage_model', clip)).__name__}) holds no T5-XXL; "
                         "load a t5xxl file with CLIPLoader, type pixart")
    tokenizer, transformer, patcher = found
    model = comfy.ComfyT5(transformer, patcher)
    placement.add(model, patcher, text_call_bytes(transformer))
    return TextEncoder("t5", tokenizer, model)


class Show1TextEncode(Node):
    id, display_name, category = "Show1TextEncode", "Show-1 Text Encode", CATEGORY
    description = ("Encodes a prompt for the Show-1 stages: T5 embeddings for the pixel stages, CLIP embeddings for "
                   "the latent stage (whichever encoders are connected).")
    outputs = (Output(COND, "cond", "Prompt embeddings for the Show-1 stages."),)

    @classmethod
    def inputs(cls):
        return [socket("text_encoder", TEXT_ENCODER, "From Show1TextEncoderLoader: T5 (show-1-base) and/or CLIP "
                       "(show-1-sr2, needed by the latent stage).", optional=True),
                Input("prompt", "STRING", "What the video shows.", "A burning lamborghini driving on rainbow.",
                      multiline=True),
                Input("negative_prompt", "STRING", "What to avoid, for the latent stage (CLIP), as published.",
                      "low resolution, blur", multiline=True),
                Input("pixel_negative_prompt", "STRING", "What to avoid in the pixel stages (T5); the published "
                      "cascade leaves it empty.", "", multiline=True),
                Input("clean_caption", "BOOLEAN", "DeepFloyd IF's caption cleaning before T5 (off in the published "
                      "cascade).", False),
                socket("t5", "CLIP", COMFY_T5_TIP, optional=True),
                Input("storyboard", "BOOLEAN", "Each line of the prompt is one shot: keyframe i follows line i, the "
                      "interpolated frames move from one shot's prompt to the next, and the super-resolution stages "
                      "give every frame its shot's prompt. Give as many lines as keyframes.", False, optional=True)]

    @classmethod
    def shots(cls, view) -> int | None:
        """Shots of the conditioning this node makes (for the readout): lines of a storyboard, else 1."""
        prompt, storyboard = view.value("prompt"), view.value("storyboard")
        if not storyboard:
            return 1
        return len(split_lines(prompt)) if isinstance(prompt, str) and prompt.strip() else None

    @classmethod
    def validate_across(cls, values):
        if values.get("storyboard") and isinstance(values.get("prompt"), str):
            split_lines(values["prompt"])

    @classmethod
    def execute(cls, prompt, negative_prompt, pixel_negative_prompt, clean_caption, text_encoder=None, t5=None,
                storyboard=False):
        if text_encoder is None and t5 is None:
            raise InputError("text_encoder / t5: neither is connected; connect Show1TextEncoderLoader and/or a T5-XXL "
                             "CLIP from CLIPLoader (type pixart)")
        if text_encoder is not None:
            require_input(text_encoder, Show1TextEncoders, "text_encoder", "Show1TextEncoderLoader's text encoder")
        encoders = text_encoder or Show1TextEncoders(None, None)
        placement = comfy.ComfyPlacement(encoders.offload, encoders.patchers, {
            id(e.model): text_call_bytes(e.model) for e in (encoders.t5, encoders.clip) if e is not None})
        t5_encoder = comfy_t5_encoder(t5, placement) if t5 is not None else encoders.t5
        ctx = comfy.run_context_for(placement)
        prompts = tuple(split_lines(prompt)) if storyboard else prompt
        if isinstance(prompts, tuple) and len(prompts) == 1:
            prompts = prompts[0]
        return (encode_conditioning(t5_encoder, encoders.clip, prompts, negative_prompt, pixel_negative_prompt,
                                    clean_caption, ctx),)


class Show1SaveEmbeds(Node):
    id, display_name, category = "Show1SaveEmbeds", "Show-1 Save Embeds", CATEGORY
    description = f"Saves prompt embeddings to output/{EMBEDS_DIR} so Show1LoadEmbeds can reuse them without T5."
    output_node = True

    @classmethod
    def inputs(cls):
        return [socket("cond", COND, "Embeddings from Show1TextEncode."),
                Input("name", "STRING", "File name (letters, digits, '-', '_', '.'), saved as "
                      f"<name>{SUFFIX} in output/{EMBEDS_DIR}.", "show1_prompt")]

    @classmethod
    def validate_across(cls, values):
        if values.get("name") is not None:
            file_in(embeds_dir(), f"{values['name']}{SUFFIX}", "name", SUFFIX)

    @classmethod
    def execute(cls, cond, name):
        path = save_conditioning(cond, file_in(embeds_dir(), f"{name}{SUFFIX}", "name", SUFFIX))
        return Result((), {"text": [f"saved {path.name}"]})


class Show1LoadEmbeds(Node):
    id, display_name, category = "Show1LoadEmbeds", "Show-1 Load Embeds", CATEGORY
    description = f"Loads prompt embeddings saved by Show1SaveEmbeds (output/{EMBEDS_DIR}); no text encoder needed."
    outputs = (Output(COND, "cond", "The saved prompt embeddings."),)

    @classmethod
    def inputs(cls):
        return [combo("name", saved_embeds, None, f"A file in output/{EMBEDS_DIR}.", dynamic=True)]

    @classmethod
    def validate_across(cls, values):
        name = values.get("name")
        if name == NONE_SAVED:
            raise InputError(f"name: no embeddings are saved in {embeds_dir()} yet; save some with Show1SaveEmbeds")
        if name is not None:
            file_in(embeds_dir(), name, "name", SUFFIX)

    @classmethod
    def fingerprint(cls, name=None, **_):
        try:
            path = file_in(embeds_dir(), name, "name", SUFFIX)
        except InputError:
            return str(name)
        return path.stat().st_mtime_ns if path.is_file() else name

    @classmethod
    def execute(cls, name):
        path = file_in(embeds_dir(), name, "name", SUFFIX)
        if not path.is_file():
            raise InputError(f"name: {path} does not exist; save embeddings with Show1SaveEmbeds first")
        return (load_conditioning(path),)
