"""Prompt encoding: T5 (pixel stages, from show-1-base) and CLIP (latent stage, from show-1-sr2).

Both return every one of the 77 positions, padding included, as the published pipelines do.
`PromptEmbeddings` carries a prompt and its negative through the cascade so the 4.8 B-parameter T5
runs once per prompt. A text encoder is a tokenizer and a model that maps token ids and their
attention mask to hidden states: the pack's own T5 and CLIP, or ComfyUI's T5-XXL (the nodes wrap
it), which are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .captions import preprocess_prompt
from .context import RunContext
from .errors import InputError, ModelLoadError
from .storyboard import validate_prompts
from .weights import REDOWNLOAD, refuse_broken_file

MAX_LENGTH = 77


@dataclass
class TextEncoder:
    """A tokenizer and its encoder model (T5 or CLIP): `model(ids, mask)` -> (B, 77, width) float32."""

    kind: str  # "t5" or "clip"
    tokenizer: object
    model: torch.nn.Module
    folder: Path | None = None  # None for an encoder that did not come from a stage folder

    @property
    def width(self) -> int:
        return self.model.width


@dataclass
class Encoding:
    embeds: torch.Tensor  # (B, 77, D)
    input_ids: torch.Tensor  # (B, 77)
    attention_mask: torch.Tensor  # (B, 77)


@dataclass
class PromptEmbeddings:
    """Embeddings of a prompt (or of a storyboard's prompts, one per shot) and its negative, for one
    text encoder: positive (K, 77, D) for K shots, negative (1, 77, D)."""

    positive: torch.Tensor
    negative: torch.Tensor
    encoder: str  # "t5" or "clip"

    @property
    def shots(self) -> int:
        return self.positive.shape[0]

    def pair(self, device=None, dtype=None) -> torch.Tensor:
        """The classifier-free-guidance pair of a single prompt, (2, 77, D) as [negative, positive]."""
        return torch.cat([self.negative, self.positive[:1]]).to(device=device, dtype=dtype)

    def shot(self, i: int) -> "PromptEmbeddings":
        """The embeddings of shot `i` alone."""
        return PromptEmbeddings(self.positive[i:i + 1], self.negative, self.encoder)

    def frame_texts(self, *positives: torch.Tensor) -> torch.Tensor:
        """Guidance rows with a text per frame, (1 + N, F, 77, D): the negative on every frame, then
        each of the N per-frame positive texts (F, 77, D) (a storyboard's frames, see `storyboard`)."""
        frames = positives[0].shape[0]
        return torch.stack([self.negative[0].expand(frames, *self.negative.shape[1:]), *positives])

    @property
    def width(self) -> int:
        return self.positive.shape[-1]


def tokenize(encoder: TextEncoder, texts: list[str]):
    """Padded and truncated to 77 tokens, with the end token, as the published pipelines do."""
    return encoder.tokenizer(texts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                             add_special_tokens=True, return_tensors="pt")


def dropped_words(encoder: TextEncoder, text: str) -> str:
    """The end of `text` that falls past the 77 tokens the encoder reads ("" if nothing does)."""
    ids = encoder.tokenizer(text, add_special_tokens=True, truncation=False).input_ids
    if len(ids) <= MAX_LENGTH:
        return ""
    kept = MAX_LENGTH - 1  # the last position holds the end token
    return encoder.tokenizer.decode(ids[kept:], skip_special_tokens=True).strip()


@torch.inference_mode()
def encode(encoder: TextEncoder, texts: list[str], ctx: RunContext | None = None) -> Encoding:
    """Tokenize and encode already-preprocessed texts."""
    ctx = ctx or RunContext()
    tokens = tokenize(encoder, texts)
    with ctx.use(encoder.model) as device:
        embeds = encoder.model(tokens.input_ids.to(device), tokens.attention_mask.to(device)).float().cpu()
    return Encoding(embeds, tokens.input_ids, tokens.attention_mask)


def encode_prompt(encoder: TextEncoder, prompt: str | list[str] | tuple[str, ...], negative_prompt: str = "",
                  clean_caption: bool = False, ctx: RunContext | None = None) -> PromptEmbeddings:
    """Embeddings of a prompt, or of a storyboard's prompts (a list: one per shot), and one negative.

    T5 (pixel stages): the text is lower-cased and stripped, or passed twice through DeepFloyd IF's
    caption cleaning when `clean_caption`. CLIP (latent stage): the tokenizer's own normalisation only.
    A prompt longer than 77 tokens and an empty prompt are encoded as published, with a warning.
    """
    ctx = ctx or RunContext()
    prompts = validate_prompts(list(prompt) if isinstance(prompt, (list, tuple)) else [prompt])
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise InputError(f"negative_prompt: {type(negative_prompt).__name__} given; a prompt is text")
    if encoder.kind == "t5":
        texts = [preprocess_prompt(p, clean_caption) for p in prompts]
        texts.append(preprocess_prompt(negative_prompt or "", clean_caption))
    else:
        texts = [*prompts, negative_prompt or ""]
    name = encoder.kind.upper()
    if not texts[0].strip():
        ctx.warn(f"prompt: empty, so {name} encodes no text; the video follows no description")
    labels = ["prompt" if len(prompts) == 1 else f"prompt (shot {i})" for i in range(1, len(prompts) + 1)]
    for label, text in zip([*labels, "negative_prompt"], texts):
        if dropped := dropped_words(encoder, text):
            ctx.warn(f"{label}: longer than the {MAX_LENGTH} tokens {name} reads; dropped: \"{dropped[:80]}\"")
    out = encode(encoder, texts, ctx)
    if not bool(torch.isfinite(out.embeds).all()):
        raise InputError(f"prompt: the {name} encoder gave NaN or infinite embeddings; load its weights in bf16 "
                         "or fp32 (float16 overflows)")
    return PromptEmbeddings(out.embeds[:-1], out.embeds[-1:], encoder.kind)


@dataclass
class TextConditioning:
    """What one prompt gives the stages: T5 embeddings (pixel stages) and/or CLIP embeddings (latent
    stage), with the texts they came from."""

    prompt: str | tuple[str, ...]  # one prompt, or a storyboard's (one per shot)
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


def encode_conditioning(t5: TextEncoder | None, clip: TextEncoder | None, prompt: str | tuple[str, ...] | list[str],
                        negative_prompt: str = "",
                        pixel_negative_prompt: str = "", clean_caption: bool = False,
                        ctx: RunContext | None = None) -> TextConditioning:
    """Encode a prompt with whichever encoders are given. As in the published cascade, the pixel
    stages take `pixel_negative_prompt` (empty there) and the latent stage `negative_prompt`."""
    if t5 is None and clip is None:
        raise ModelLoadError("no text encoder given: load T5 (show-1-base) and/or CLIP (show-1-sr2)")
    prompt = tuple(prompt) if isinstance(prompt, list) else prompt
    shots = list(prompt) if isinstance(prompt, tuple) else prompt
    return TextConditioning(
        prompt=prompt, negative_prompt=negative_prompt, pixel_negative_prompt=pixel_negative_prompt,
        clean_caption=clean_caption,
        t5=encode_prompt(t5, shots, pixel_negative_prompt, clean_caption, ctx) if t5 is not None else None,
        clip=encode_prompt(clip, shots, negative_prompt, ctx=ctx) if clip is not None else None)


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
    prompt = "\n".join(cond.prompt) if isinstance(cond.prompt, tuple) else cond.prompt
    meta = {"format": "show1-embeddings", "prompt": prompt, "negative_prompt": cond.negative_prompt,
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
        refuse_broken_file(path)
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
