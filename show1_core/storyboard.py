"""Storyboards: a prompt per keyframe, and which text every frame of every stage is conditioned on.

A storyboard of K shots is K prompts, one per keyframe: keyframe i is shot i. The rules:

* keyframes: frame i is conditioned on prompt i;
* interpolation (pixel and latent): a frame between keyframes i and i+1 is conditioned on the blend
  of their embeddings by its position, (1 - w) * e_i + w * e_{i+1}, w = 0 at keyframe i and 1 at
  keyframe i+1, so the text moves from one shot to the next with the motion (a keyframe gets its
  own prompt exactly);
* super-resolution (sr1, sr2) and anything else that works on a whole video: a frame is
  conditioned on the prompt of the shot it belongs to, the nearest keyframe, keyframes spread
  evenly over the video (the layout both interpolators produce); a frame halfway belongs to the
  earlier shot.

One prompt is no storyboard: the stages then take the text of the video as before, unchanged
arithmetic included. The negative prompt is one for all frames.
"""

from __future__ import annotations

import torch

from .errors import InputError


def keyframe_shots(frames: int, shots: int) -> list[int]:
    """The shot of every frame of a keyframe video: frame i is shot i."""
    if shots != frames:
        raise InputError(f"prompt: {shots} prompts for {frames} keyframes; give one prompt per keyframe (one per "
                         "line), or a single prompt for the whole video")
    return list(range(frames))


def anchors_of(frames: int, shots: int) -> list[float]:
    """Where the keyframes of `shots` shots sit in a video of `frames` frames (evenly spread)."""
    if shots == 1:
        return [0.0]
    return [i * (frames - 1) / (shots - 1) for i in range(shots)]


def nearest_shots(frames: int, shots: int) -> list[int]:
    """The shot of every frame: its nearest keyframe (ties go to the earlier shot)."""
    anchors = anchors_of(frames, shots)
    return [min(range(shots), key=lambda i: (abs(f - anchors[i]), i)) for f in range(frames)]


def transition_weights(frames: int, anchors: list[float]) -> list[tuple[int, float]]:
    """For every frame, (i, w): the blend (1 - w) * prompt i + w * prompt i+1 between the keyframes
    around it (w = 0 on keyframe i; frames before the first or after the last keyframe take it)."""
    out = []
    for f in range(frames):
        if f <= anchors[0]:
            out.append((0, 0.0))
        elif f >= anchors[-1]:
            out.append((len(anchors) - 1, 0.0))
        else:
            i = max(j for j in range(len(anchors) - 1) if anchors[j] <= f)
            out.append((i, (f - anchors[i]) / (anchors[i + 1] - anchors[i])))
    return out


def shot_text(positive: torch.Tensor, shots: list[int]) -> torch.Tensor:
    """Per-frame text (F, 77, D) from the prompts (K, 77, D) and the shot of every frame."""
    return positive[torch.tensor(shots, dtype=torch.long)]


def blended_text(positive: torch.Tensor, weights: list[tuple[int, float]]) -> torch.Tensor:
    """Per-frame text (F, 77, D): the blend of neighbouring prompts each frame's weight says."""
    rows = []
    last = positive.shape[0] - 1
    for i, w in weights:
        rows.append(positive[i] if w == 0.0 else positive[i] * (1 - w) + positive[min(i + 1, last)] * w)
    return torch.stack(rows)


def validate_prompts(prompts: list[str], name: str = "prompt") -> list[str]:
    """The shots of a storyboard: text, none empty (an empty shot is a mistake, not a wish)."""
    if not prompts:
        raise InputError(f"{name}: no prompt given; give the prompt as text")
    for i, prompt in enumerate(prompts, 1):
        if not isinstance(prompt, str) and len(prompts) == 1:
            raise InputError(f"{name}: {type(prompt).__name__} given; a prompt is text (an empty one is allowed)")
        if not isinstance(prompt, str):
            raise InputError(f"{name}: shot {i} is {type(prompt).__name__}, not text; give every prompt as a string")
        if len(prompts) > 1 and not prompt.strip():
            raise InputError(f"{name}: shot {i} of {len(prompts)} is empty; describe every shot (one per line), or "
                             "remove the empty line")
    return prompts


def split_lines(text: str) -> list[str]:
    """The shots of a node's multi-line prompt: one per line, a blank line where it separates none
    (leading and trailing blank lines are dropped; an empty line between shots is refused)."""
    return validate_prompts(text.strip("\n").split("\n") if text.strip() else [text])
