"""Prompt encoding: T5 (pixel stages, from show-1-base) and CLIP (latent stage, from show-1-sr2).

Both run through transformers and return every one of the 77 positions, padding included, as the
published pipelines do. `PromptEmbeddings` carries a prompt and its negative through the cascade
so the 4.7 B-parameter T5 runs once per prompt.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from .captions import preprocess_prompt
from .errors import InputError, ModelLoadError
from .loading import StageKind, inspect_stage
from .weights import REDOWNLOAD, check_file, find_weights, shard_paths

MAX_LENGTH = 77


@dataclass
class TextEncoder:
    """A tokenizer and its encoder model (T5 or CLIP)."""

    kind: str  # "t5" or "clip"
    tokenizer: object
    model: torch.nn.Module
    folder: Path

    @property
    def width(self) -> int:
        cfg = self.model.config
        return cfg.d_model if self.kind == "t5" else cfg.hidden_size


@dataclass
class Encoding:
    embeds: torch.Tensor  # (B, 77, D)
    input_ids: torch.Tensor  # (B, 77)
    attention_mask: torch.Tensor  # (B, 77)


@dataclass
class PromptEmbeddings:
    """Positive and negative embeddings of one prompt for one text encoder (both (1, 77, D))."""

    positive: torch.Tensor
    negative: torch.Tensor
    encoder: str  # "t5" or "clip"

    def pair(self, device=None, dtype=None) -> torch.Tensor:
        """The classifier-free-guidance pair, (2, 77, D) in [negative, positive] order."""
        return torch.cat([self.negative, self.positive]).to(device=device, dtype=dtype)

    @property
    def width(self) -> int:
        return self.positive.shape[-1]


def load_encoder_model(cls, directory: Path, dtype: torch.dtype, device, variant: str | None) -> torch.nn.Module:
    """A transformers text encoder from the weight files the shared table picks (safetensors first;
    shards by their index). transformers reads them itself, as each of its releases names the
    modules (the key layout of CLIP changed in transformers 5), on the meta device so the weights
    are never held twice, and pickles only with weights_only; the files are checked first and
    every key must match."""
    import transformers

    path, found = find_weights(directory, "transformers", variant)
    for shard in shard_paths(path):
        check_file(shard)
    dtype_key = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
    try:
        model, info = cls.from_pretrained(
            str(directory), variant=found.variant, use_safetensors=found.ext == "safetensors", local_files_only=True,
            output_loading_info=True, **{dtype_key: dtype})
    except (OSError, ValueError, RuntimeError, EnvironmentError) as e:
        raise ModelLoadError(f"{path}: {cls.__name__} cannot be loaded from {directory} ({type(e).__name__}: "
                             f"{str(e)[:300]}); {REDOWNLOAD}") from None
    problems = {k: sorted(v)[:6] for k, v in info.items() if v}
    if problems:
        raise ModelLoadError(f"{path}: the weights do not match {directory / 'config.json'} ({problems}); {REDOWNLOAD}")
    return model.to(device).eval().requires_grad_(False)


def load_text_encoder(folder: str | Path, dtype: torch.dtype = torch.float32, device="cpu",
                      variant: str | None = None) -> TextEncoder:
    """T5 from a show-1-base folder, or CLIP from a show-1-sr2 folder."""
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer

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
    model = load_encoder_model(T5EncoderModel if t5 else CLIPTextModel, info.folder / "text_encoder", dtype, device,
                               variant)
    return TextEncoder("t5" if t5 else "clip", tokenizer, model, info.folder)


@torch.inference_mode()
def encode(encoder: TextEncoder, texts: list[str]) -> Encoding:
    """Tokenize (padded and truncated to 77) and encode already-preprocessed texts."""
    tokens = encoder.tokenizer(texts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                               add_special_tokens=True, return_tensors="pt")
    device = next(encoder.model.parameters()).device
    ids = tokens.input_ids.to(device)
    mask = tokens.attention_mask.to(device)
    if encoder.kind == "t5":
        embeds = encoder.model(ids, attention_mask=mask)[0]
    else:  # CLIP: causal mask only, unless the config asks for the padding mask
        use_mask = getattr(encoder.model.config, "use_attention_mask", False)
        embeds = encoder.model(ids, attention_mask=mask if use_mask else None)[0]
    return Encoding(embeds.float().cpu(), tokens.input_ids, tokens.attention_mask)


def encode_prompt(encoder: TextEncoder, prompt: str, negative_prompt: str = "", clean_caption: bool = False,
                  placement=None) -> PromptEmbeddings:
    """Embeddings of a prompt and its negative.

    T5 (pixel stages): the text is lower-cased and stripped, or passed twice through DeepFloyd IF's
    caption cleaning when `clean_caption`. CLIP (latent stage): the tokenizer's own normalisation only.
    `placement` (see `memory`) brings the encoder to its device for the call; by default it runs
    where it is.
    """
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if text is not None and not isinstance(text, str):
            raise InputError(f"{name}: {type(text).__name__} given; a prompt is text")
    if encoder.kind == "t5":
        texts = [preprocess_prompt(prompt, clean_caption), preprocess_prompt(negative_prompt or "", clean_caption)]
    else:
        texts = [prompt, negative_prompt or ""]
    with (placement.use(encoder.model) if placement is not None else nullcontext()):
        out = encode(encoder, texts)
    if not bool(torch.isfinite(out.embeds).all()):
        raise InputError(f"prompt: the {encoder.kind.upper()} encoder gave NaN or infinite embeddings; load it in bf16 "
                         "or fp32 (float16 overflows)")
    return PromptEmbeddings(out.embeds[:1], out.embeds[1:], encoder.kind)


@dataclass
class TextConditioning:
    """What one prompt gives the stages: T5 embeddings (pixel stages) and/or CLIP embeddings (latent
    stage), with the texts they came from."""

    prompt: str
    t5: PromptEmbeddings | None = None
    clip: PromptEmbeddings | None = None
    negative_prompt: str = ""
    pixel_negative_prompt: str = ""
    clean_caption: bool = False

    def require(self, encoder: str, who: str) -> PromptEmbeddings:
        found = self.t5 if encoder == "t5" else self.clip
        if found is None:
            where = "show-1-base (T5)" if encoder == "t5" else "show-1-sr2 (CLIP)"
            raise ModelLoadError(f"{who} needs {encoder.upper()} embeddings, but this conditioning has none; load the "
                                 f"{where} text encoder in Show1TextEncoderLoader and encode the prompt again")
        return found


def encode_conditioning(t5: TextEncoder | None, clip: TextEncoder | None, prompt: str, negative_prompt: str = "",
                        pixel_negative_prompt: str = "", clean_caption: bool = False,
                        placement=None) -> TextConditioning:
    """Encode a prompt with whichever encoders are given. As in the published cascade, the pixel
    stages take `pixel_negative_prompt` (empty there) and the latent stage `negative_prompt`."""
    if t5 is None and clip is None:
        raise ModelLoadError("no text encoder given: load T5 (show-1-base) and/or CLIP (show-1-sr2)")
    return TextConditioning(
        prompt=prompt, negative_prompt=negative_prompt, pixel_negative_prompt=pixel_negative_prompt,
        clean_caption=clean_caption,
        t5=encode_prompt(t5, prompt, pixel_negative_prompt, clean_caption, placement) if t5 is not None else None,
        clip=encode_prompt(clip, prompt, negative_prompt, placement=placement) if clip is not None else None)


def save_conditioning(cond: TextConditioning, path: str | Path) -> Path:
    """Write embeddings and their texts to a safetensors file (written whole, then renamed)."""
    import os

    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for name in ("t5", "clip"):
        emb = getattr(cond, name)
        if emb is not None:
            tensors[f"{name}.positive"] = emb.positive.contiguous()
            tensors[f"{name}.negative"] = emb.negative.contiguous()
    meta = {"format": "show1-embeddings", "prompt": cond.prompt, "negative_prompt": cond.negative_prompt,
            "pixel_negative_prompt": cond.pixel_negative_prompt, "clean_caption": str(cond.clean_caption)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_conditioning(path: str | Path) -> TextConditioning:
    from safetensors import safe_open

    path = Path(path)
    resave = "save the embeddings again with Show1SaveEmbeds (or encode the prompt)"
    try:
        check_file(path)
    except ModelLoadError as e:  # the file's own fix, not a stage folder's
        raise ModelLoadError(str(e).replace(REDOWNLOAD, resave)) from None
    try:
        f = safe_open(str(path), framework="pt")
    except Exception as e:
        raise ModelLoadError(f"{path} cannot be read as a safetensors file ({e}); {resave}") from None
    with f:
        meta = f.metadata() or {}
        if meta.get("format") != "show1-embeddings":
            raise ModelLoadError(f"{path} is not a Show-1 embeddings file (save one with Show1SaveEmbeds)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    found = {name: PromptEmbeddings(tensors[f"{name}.positive"], tensors[f"{name}.negative"], name)
             for name in ("t5", "clip") if f"{name}.positive" in tensors}
    return TextConditioning(prompt=meta.get("prompt", ""), negative_prompt=meta.get("negative_prompt", ""),
                            pixel_negative_prompt=meta.get("pixel_negative_prompt", ""),
                            clean_caption=meta.get("clean_caption") == "True", **found)
