"""Model configs from the `config.json` that ships with the weights."""

from __future__ import annotations

from dataclasses import fields

from ..errors import ModelLoadError


def from_config(cls, config: dict, where: str, what: str, activation: tuple[str, tuple] | None = None):
    """A config dataclass from a config dict: the keys the dataclass knows (others are ignored, as
    diffusers and transformers ignore them); a missing or mistyped key names the file and what the
    folder should hold. `activation` is (attribute, the activations the model can build)."""
    names = {f.name for f in fields(cls)}
    try:
        cfg = cls(**{k: v for k, v in config.items() if k in names})
    except TypeError as e:
        raise ModelLoadError(f"{where}: {e}; is this {what}?") from None
    if activation is not None and getattr(cfg, activation[0]) not in activation[1]:
        raise ModelLoadError(f"{where}: {activation[0]} {getattr(cfg, activation[0])!r} is not an activation of "
                             f"{what}; use one of {', '.join(sorted(activation[1]))}")
    return cfg
