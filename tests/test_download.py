"""The download command's file selection and its failures, without any network."""

from __future__ import annotations

import pytest
from huggingface_hub.utils import GatedRepoError

from show1_core.download import download_stages, require_online, select_files
from show1_core.errors import Show1Error
from show1_core.stage import StageKind

# show-1-base as the hub lists it: the UNet as one .bin, T5-XXL as two .bin shards and their index.
BASE_REPO = [
    ".gitattributes", "README.md", "model_index.json", "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json", "text_encoder/config.json",
    "text_encoder/pytorch_model-00001-of-00002.bin", "text_encoder/pytorch_model-00002-of-00002.bin",
    "text_encoder/pytorch_model.bin.index.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
]
# A repository with every layout side by side, as save_pretrained writes them.
MIXED_REPO = [
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
    "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
    "text_encoder/model.safetensors.index.fp16.json", "text_encoder/model-00001-of-00002.safetensors",
    "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
    "text_encoder/pytorch_model.bin", "tokenizer/spiece.model", "unet/config.json",
    "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
]
IF_II_REPO = [
    "model_index.json", "scheduler/scheduler_config.json", "image_noising_scheduler/scheduler_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
    "safety_checker/model.safetensors", "watermarker/diffusion_pytorch_model.safetensors",
    "text_encoder/model.fp16-00001-of-00002.safetensors",
]


def test_the_hub_layout_of_show_1_base_is_fetched_whole():
    assert select_files(StageKind.BASE, BASE_REPO) == sorted(
        f for f in BASE_REPO if not f.startswith((".", "README", "feature_extractor")))


def test_safetensors_and_the_variant_first_with_shards_and_index():
    assert select_files(StageKind.BASE, MIXED_REPO) == sorted([
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
        "text_encoder/model.safetensors.index.fp16.json", "tokenizer/spiece.model", "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors"])
    full = select_files(StageKind.BASE, MIXED_REPO, variant=None)
    assert "unet/diffusion_pytorch_model.safetensors" in full and "text_encoder/model.safetensors.index.json" in full
    assert not any(".fp16" in f for f in full)


def test_bin_only_when_there_is_nothing_else():
    picked = select_files(StageKind.IF_II, IF_II_REPO)
    assert picked == ["image_noising_scheduler/scheduler_config.json", "model_index.json",
                      "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.bin"]


def test_what_download_fetches_is_what_the_loader_reads(tmp_path, demo_root):
    """The selection, applied to a demo stage's own files, keeps exactly the weights the loader opens."""
    import shutil

    from show1_core.loading import load_stage, load_text_encoder

    source = demo_root / "show-1-base"
    files = sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    chosen = select_files(StageKind.BASE, files)
    target = tmp_path / "show-1-base"
    for f in chosen:
        (target / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / f, target / f)
    assert {f for f in files if f.endswith((".bin", ".json"))} - set(chosen) == set()
    load_stage(target)
    load_text_encoder(target)


def test_offline_fails_at_once_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Show1Error, match="HF_HUB_OFFLINE is set: downloading is off"):
        require_online()


def test_unreachable_hub_fails_with_what_to_do(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(Show1Error, match=r"cannot reach huggingface.co \(Name or service not known\); check the "
                                         r"network"):
        download_stages("/tmp/nowhere", ["base"])


class GatedHub:
    def list_repo_files(self, repo, token=None):
        return IF_II_REPO

    def auth_check(self, repo, token=None):
        error = GatedRepoError.__new__(GatedRepoError)  # its constructor wants an HTTP response, which differs
        Exception.__init__(error, "403 gated")  # between huggingface_hub releases
        raise error


def test_gated_if_ii_without_accepted_licence(tmp_path):
    with pytest.raises(Show1Error, match=r"DeepFloyd/IF-II-L-v1.0 is gated: open https://huggingface.co/DeepFloyd/"
                                         r"IF-II-L-v1.0, accept its licence.*hf auth login.*--token"):
        download_stages(tmp_path, ["if_ii"], api=GatedHub())
    assert not any(tmp_path.iterdir()), "nothing may be written before the licence check"
