"""The download command's file selection and its failures, without any network."""

from __future__ import annotations

import pytest
from huggingface_hub.utils import GatedRepoError

from show1_core.download import check_online, download_stages, select_files
from show1_core.errors import Show1Error
from show1_core.loading import StageKind

BASE_REPO = [
    ".gitattributes", "README.md", "model_index.json", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.fp16-00001-of-00002.safetensors",
    "text_encoder/model.fp16-00002-of-00002.safetensors", "text_encoder/model.fp16.safetensors.index.json",
    "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
    "text_encoder/model.safetensors.index.json", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json",
    "tokenizer/special_tokens_map.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors", "feature_extractor/preprocessor_config.json",
]
IF_II_REPO = [
    "model_index.json", "scheduler/scheduler_config.json", "image_noising_scheduler/scheduler_config.json",
    "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
    "safety_checker/model.safetensors", "watermarker/diffusion_pytorch_model.safetensors",
    "text_encoder/model.fp16-00001-of-00002.safetensors",
]


def test_base_takes_the_fp16_safetensors_with_its_shards_and_index():
    assert select_files(StageKind.BASE, BASE_REPO) == sorted([
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
        "text_encoder/model.fp16.safetensors.index.json", "tokenizer/spiece.model",
        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors"])


def test_full_precision_when_asked_and_bin_only_when_there_is_nothing_else():
    assert "unet/diffusion_pytorch_model.safetensors" in select_files(StageKind.BASE, BASE_REPO, variant=None)
    picked = select_files(StageKind.IF_II, IF_II_REPO)
    assert picked == ["image_noising_scheduler/scheduler_config.json", "model_index.json",
                      "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.bin"]


def test_offline_fails_at_once_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Show1Error, match="HF_HUB_OFFLINE is set: downloading is off"):
        check_online()


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
        raise GatedRepoError("403 gated")


def test_gated_if_ii_without_accepted_licence(tmp_path):
    with pytest.raises(Show1Error, match=r"DeepFloyd/IF-II-L-v1.0 is gated: open https://huggingface.co/DeepFloyd/"
                                         r"IF-II-L-v1.0, accept its licence.*huggingface-cli login.*--token"):
        download_stages(tmp_path, ["if_ii"], api=GatedHub())
    assert not any(tmp_path.iterdir()), "nothing may be written before the licence check"
