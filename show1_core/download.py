"""Downloading the official stage folders, only when the user asks (`python -m show1_core download`).

Each hub repository goes into `<dest>/<repository name>` (show-1-base, show-1-interpolation,
show-1-sr1, show-1-sr2, IF-II-L-v1.0): the folders the loader nodes list, never a hidden cache.
Only what the stages use is fetched: configs, tokenizers and one set of weights per component,
the fp16 variant where the repository has one. Interrupted downloads resume.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path, PurePosixPath

from .errors import Show1Error
from .registry import StageKind
from .weights import choose_files, component_library, is_weight_file

HUB_HOST = "huggingface.co"


def select_files(kind: StageKind, repo_files: list[str], variant: str | None = "fp16") -> list[str]:
    """The files of a repository that the stage needs: model_index.json, every non-weight file of
    its components, and per component the one weight set the loader will read (with its shards and
    index), the `variant` first where the repository has it."""
    chosen = [f for f in repo_files if f == "model_index.json"]
    for component in kind.spec.components:
        names = [PurePosixPath(f).name for f in repo_files if PurePosixPath(f).parent.as_posix() == component]
        weights = [n for n in names if is_weight_file(n)]
        chosen += [f"{component}/{n}" for n in names if n not in weights]
        picked = choose_files(weights, component_library(component), variant)
        if picked is not None:
            chosen += [f"{component}/{n}" for n in picked[1]]
    return sorted(chosen)


def require_online(timeout: float = 5.0) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise Show1Error("HF_HUB_OFFLINE is set: downloading is off. Unset it, or copy the stage folders into place "
                         "by hand (see the README)")
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
    except OSError as e:
        raise Show1Error(f"cannot reach {HUB_HOST} ({e}); check the network or proxy, or download the repositories "
                         "elsewhere and copy them into the destination folder") from None


def download_stages(dest: str | Path, stages: list[str], token: str | None = None, variant: str | None = "fp16",
                    api=None) -> list[Path]:
    """Download the given stages (names like "base", "sr2", "if_ii") into `dest`; returns the folders."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    kinds = [StageKind(s) for s in stages]
    dest = Path(dest)
    token = token or os.environ.get("HF_TOKEN") or None
    if api is None:
        require_online()
        api = HfApi()
    folders = []
    for kind in kinds:
        repo, folder = kind.spec.repo, dest / kind.folder
        try:
            files = select_files(kind, api.list_repo_files(repo, token=token), variant)
            if kind.spec.optional:
                api.auth_check(repo, token=token)  # gated (IF-II): fail before any file is written
            snapshot_download(repo, local_dir=str(folder), allow_patterns=files, token=token)
        except GatedRepoError:
            raise Show1Error(
                f"{repo} is gated: open https://huggingface.co/{repo}, accept its licence while logged in, then run "
                "`hf auth login` (`huggingface-cli login` before huggingface_hub 1.0) or pass --token (or set "
                "HF_TOKEN) and try again. Show-1 runs without IF-II, with a softer first frame") from None
        except RepositoryNotFoundError:
            raise Show1Error(f"{repo} was not found or needs a token ({'given' if token else 'none given'}); check "
                             "the name and your access") from None
        except HfHubHTTPError as e:
            raise Show1Error(f"downloading {repo} failed ({e}); run the command again to resume") from None
        folders.append(folder)
        print(f"{repo} -> {folder} ({len(files)} files)")
    return folders
