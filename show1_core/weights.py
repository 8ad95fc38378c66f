"""Finding and reading the weight files of one model component, safely and strictly.

One table says which file names diffusers' and transformers' `save_pretrained` write: the loader,
the downloader's file selection and the error messages all read it, so what `download` fetches is
what the loader reads. Safetensors files are preferred; a `.bin` is read only with
`torch.load(weights_only=True)`. Broken downloads are recognised before any tensor is read
(git-lfs pointers, truncated files, missing shards) and reported with the file and what to do.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from safetensors import safe_open

from .errors import ModelLoadError
from .precision import to_storage

LFS_POINTER_PREFIX = b"version https://git-lfs"
REDOWNLOAD = "re-download the stage folder (python -m show1_core download --dest <folder> --stages <stage>)"

# File stems per library and format: what `save_pretrained` names the weights of a component.
WEIGHT_STEMS = {
    "diffusers": {"safetensors": "diffusion_pytorch_model", "bin": "diffusion_pytorch_model"},
    "transformers": {"safetensors": "model", "bin": "pytorch_model"},
}
FORMATS = ("safetensors", "bin")  # best first
COMPONENT_LIBRARY = {"text_encoder": "transformers"}  # every other component is a diffusers model
WEIGHTED_COMPONENTS = ("unet", "vae", "text_encoder")  # the components that hold weights
SHARD = re.compile(r"-\d{5}-of-\d{5}")


def component_library(component: str) -> str:
    return COMPONENT_LIBRARY.get(component, "diffusers")


@dataclass(frozen=True)
class WeightSet:
    """One way a component's weights are stored: a format, a variant, one file or shards + index."""

    stem: str
    ext: str
    variant: str | None

    @property
    def file(self) -> str:
        return f"{self.stem}{self._v}.{self.ext}"

    @property
    def index(self) -> str:
        """The shard index: both libraries put the variant before the last extension."""
        return f"{self.stem}.{self.ext}.index{self._v}.json"

    def is_shard(self, name: str) -> bool:
        return re.fullmatch(re.escape(f"{self.stem}{self._v}") + SHARD.pattern + re.escape(f".{self.ext}"),
                            name) is not None

    @property
    def _v(self) -> str:
        return f".{self.variant}" if self.variant else ""


VARIANT_IN_NAME = re.compile(r"^(?P<stem>[A-Za-z_]+)\.(?P<variant>[A-Za-z0-9_]+?)(?:-\d{5}-of-\d{5})?\.(?:safetensors|bin)")


def is_weight_file(name: str) -> bool:
    """A weight file or shard index of either library (any variant)."""
    stems = {stem for formats in WEIGHT_STEMS.values() for stem in formats.values()}
    return name.split(".")[0].split("-")[0] in stems and (name.endswith((".safetensors", ".bin"))
                                                         or ".index" in name and name.endswith(".json"))


def weight_sets(library: str, names: Iterable[str] = (), prefer: str | None = None) -> list[WeightSet]:
    """Candidate weight sets, best first: safetensors before .bin; within a format the preferred
    variant (or the default names), then the default names, then any other variant in `names`."""
    names = list(names)
    found = sorted({m["variant"] for n in names if (m := VARIANT_IN_NAME.match(n))
                    and m["stem"] in WEIGHT_STEMS[library].values()} - {prefer, "safetensors", "bin"})
    order = [prefer, None] if prefer else [None]
    order += [v for v in ("fp16", *found) if v not in order]
    return [WeightSet(WEIGHT_STEMS[library][ext], ext, v) for ext in FORMATS for v in order]


def choose_files(names: Iterable[str], library: str, prefer: str | None = None) -> tuple[WeightSet, list[str]] | None:
    """Of the file names of one component folder, the best weight set and the files that hold it: a
    single file, or an index and its shards (the index first). None when no weight set is there."""
    names = set(names)
    for ws in weight_sets(library, names, prefer):
        if ws.file in names:
            return ws, [ws.file]
        if ws.index in names:
            return ws, [ws.index, *sorted(n for n in names if ws.is_shard(n))]
    return None


def expected_names(library: str, prefer: str | None = None) -> str:
    """The names the loader looks for, for error messages."""
    return ", ".join(dict.fromkeys(ws.file for ws in weight_sets(library, (), prefer)))


def find_weights(directory: Path, library: str = "diffusers", prefer: str | None = None) -> tuple[Path, WeightSet]:
    """The weight file (or shard index) of a component folder, and which weight set it is."""
    names = [p.name for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
    chosen = choose_files(names, library, prefer)
    if chosen is None:
        raise ModelLoadError(f"{directory}: no weight file found (looked for {expected_names(library, prefer)}, "
                             f"single or sharded with an index); {REDOWNLOAD}")
    ws, files = chosen
    return directory / files[0], ws


def shard_paths(path: Path) -> list[Path]:
    """The files holding the tensors of `path` (itself, or the shards its index names)."""
    if not path.name.endswith(".json"):
        return [path]
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
        shards = sorted({path.parent / name for name in weight_map.values()})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{path}: not a valid shard index ({type(e).__name__}: {e}); {REDOWNLOAD}") from None
    for shard in shards:
        if not shard.is_file():
            raise ModelLoadError(f"{shard}: shard listed in {path.name} is missing; {REDOWNLOAD}")
    return shards


def refuse_broken_file(path: Path) -> None:
    """Raise a clear error for a git-lfs pointer or a truncated / corrupt safetensors file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if head.startswith(LFS_POINTER_PREFIX):
            raise ModelLoadError(
                f"{path} is a git-lfs pointer file ({size} bytes), not the weights: run `git lfs pull` in that "
                f"repository or {REDOWNLOAD}")
        if path.suffix != ".safetensors":
            if head.startswith(b"PK") and not zipfile.is_zipfile(path):  # torch's zip format, cut short
                raise ModelLoadError(f"{path} is truncated or damaged (its zip directory is missing, {size} bytes on "
                                     f"disk); {REDOWNLOAD}")
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


def _load_pickle(path: Path) -> dict:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) serialization
    except Exception as e:  # pickle errors, truncated zip archives, code objects
        raise ModelLoadError(
            f"{path} cannot be read as a PyTorch state dict with weights_only loading ({type(e).__name__}: "
            f"it is damaged or holds Python objects besides tensors, which are never executed here); "
            f"{REDOWNLOAD}, preferably as .safetensors") from None


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) from a checked weight file or shard index, shard by shard."""
    shards = shard_paths(path)
    for shard in shards:
        refuse_broken_file(shard)
    for shard in shards:
        if shard.suffix == ".safetensors":
            with safe_open(str(shard), framework="pt") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        else:
            state = _load_pickle(shard)
            if not isinstance(state, dict):
                raise ModelLoadError(f"{shard} holds a {type(state).__name__}, not a state dict; {REDOWNLOAD}")
            yield from state.items()


def stored_dtype(path: Path) -> torch.dtype:
    """The dtype the floating-point tensors of a checked weight file (or shard index) are stored in."""
    for _, tensor in iter_tensors(path):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def load_state_dict(path: Path, dtype: torch.dtype | Callable[[str, torch.Tensor], torch.dtype],
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Read every tensor converted to `dtype` (or to `dtype(key, tensor)`) on `device`; integer
    buffers keep their dtype.

    Both formats are memory-mapped while they are read, so each tensor is copied out of the file
    into memory of the process's own allocator: the model never depends on a file that a
    re-download may replace, and its weights sit at the allocator's alignment, not at whatever
    offset the file gave them (matrix-product kernels may round differently by alignment)."""
    state = {}
    for key, tensor in iter_tensors(path):
        target = (dtype(key, tensor) if callable(dtype) else dtype) if tensor.is_floating_point() else tensor.dtype
        stored = to_storage(tensor, target).to(device)
        state[key] = stored.clone() if stored.data_ptr() == tensor.data_ptr() else stored
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
