"""Finding and reading the weight files of one model component, safely and strictly.

Safetensors files are preferred; a `.bin` is read only with `torch.load(weights_only=True)`.
Broken downloads are recognised before any tensor is read (git-lfs pointers, truncated files) and
reported with the file and what to do.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

from .errors import ModelLoadError

LFS_POINTER_PREFIX = b"version https://git-lfs"
REDOWNLOAD = "re-download the stage folder (python -m show1_core download --dest <folder> --stages <stage>)"


def candidate_files(directory: Path, stem: str, variant: str | None) -> list[Path]:
    """Weight files to try, best first: safetensors before .bin, the preferred variant first,
    each as a single file or as a sharded index."""
    variants = [variant, None] if variant else [None, "fp16"]
    names = []
    for ext in ("safetensors", "bin"):
        for v in variants:
            base = f"{stem}.{v}.{ext}" if v else f"{stem}.{ext}"
            names += [base, base + ".index.json"]
    return [directory / n for n in names]


def find_weights(directory: Path, stem: str, variant: str | None = None) -> Path:
    for path in candidate_files(directory, stem, variant):
        if path.is_file():
            return path
    tried = ", ".join(p.name for p in candidate_files(directory, stem, variant) if not p.name.endswith(".json"))
    raise ModelLoadError(f"{directory}: no weight file found (looked for {tried}); {REDOWNLOAD}")


def shard_paths(path: Path) -> list[Path]:
    """The files holding the tensors of `path` (itself, or the shards its index names)."""
    if not path.name.endswith(".index.json"):
        return [path]
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (ValueError, KeyError) as e:
        raise ModelLoadError(f"{path}: not a valid shard index ({e}); {REDOWNLOAD}") from None
    shards = sorted({path.parent / name for name in weight_map.values()})
    for shard in shards:
        if not shard.is_file():
            raise ModelLoadError(f"{shard}: shard listed in {path.name} is missing; {REDOWNLOAD}")
    return shards


def check_file(path: Path) -> None:
    """Raise a clear error for a git-lfs pointer or a truncated / corrupt safetensors file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if head.startswith(LFS_POINTER_PREFIX):
            raise ModelLoadError(
                f"{path} is a git-lfs pointer file ({size} bytes), not the weights: run `git lfs pull` in that "
                f"repository or {REDOWNLOAD}")
        if path.suffix != ".safetensors":
            return
        if size < 8:
            raise ModelLoadError(f"{path} is truncated ({size} bytes); {REDOWNLOAD}")
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len > size - 8:
            raise ModelLoadError(f"{path} is truncated or not a safetensors file (header of {header_len} bytes in a "
                                 f"{size}-byte file); {REDOWNLOAD}")
        f.seek(8)
        try:
            header = json.loads(f.read(header_len))
        except ValueError:
            raise ModelLoadError(f"{path} has a corrupt safetensors header; {REDOWNLOAD}") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        raise ModelLoadError(f"{path} is truncated: {size} bytes on disk, {8 + header_len + end} expected; {REDOWNLOAD}")


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) from a checked weight file, one tensor at a time where the format allows."""
    for shard in shard_paths(path):
        check_file(shard)
        if shard.suffix == ".safetensors":
            with safe_open(str(shard), framework="pt") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        else:
            try:
                state = torch.load(shard, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:  # pickle errors, truncated zip archives, code objects
                raise ModelLoadError(
                    f"{shard} cannot be read as a PyTorch state dict with weights_only loading ({type(e).__name__}: "
                    f"it is damaged or holds Python objects besides tensors, which are never executed here); "
                    f"{REDOWNLOAD}, preferably as .safetensors") from None
            yield from state.items()


def load_state_dict(path: Path, dtype: torch.dtype, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Read every tensor converted to `dtype` on `device`; integer buffers keep their dtype."""
    state = {}
    for key, tensor in iter_tensors(path):
        target = dtype if tensor.is_floating_point() else tensor.dtype
        state[key] = tensor.to(device=device, dtype=target)
    return state


def assign_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into a model built on the meta device, failing on any missing, unexpected or
    misshapen tensor with a message that names the file."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
                parts.append(f"{label}: {shown}")
        raise ModelLoadError(
            f"{path}: the weights do not match {path.parent / 'config.json'} ({'; '.join(parts)}). The file belongs "
            f"to another model or the folder is incomplete; {REDOWNLOAD}")
    model.load_state_dict(state, strict=True, assign=True)
